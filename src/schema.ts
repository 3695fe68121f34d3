// The SDL in schema/*.graphql, read once at start. The folder sits beside src/ and dist/, so
// the same relative path works from the sources and from the build. The executable schema is
// built once and served by both Apollo Server (HTTP) and graphql-ws (WebSocket).
import { readdirSync, readFileSync } from 'node:fs';
import { makeExecutableSchema } from '@graphql-tools/schema';
import type { GraphQLSchema } from 'graphql';
import { buildFineTuneSubgraphSchema } from './federation/subgraph-schema.js';
import { resolvers } from './resolvers/index.js';

const schemaDir = new URL('../schema/', import.meta.url);

export function loadTypeDefs(): string[] {
  return readdirSync(schemaDir)
    .filter((file) => file.endsWith('.graphql'))
    .sort()
    .map((file) => readFileSync(new URL(file, schemaDir), 'utf8'));
}

/**
 * The executable schema. As a federation subgraph it is the same API plus the federation
 * fields (`_service`, `_entities`); otherwise exactly the SDL in schema/*.graphql.
 */
export function buildGatewaySchema(options: { federation: boolean }): GraphQLSchema {
  if (options.federation) return buildFineTuneSubgraphSchema(loadTypeDefs(), resolvers);
  return makeExecutableSchema({ typeDefs: loadTypeDefs(), resolvers });
}
