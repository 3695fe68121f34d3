// The SDL in schema/*.graphql, read once at start. The folder sits beside src/ and dist/, so the
// same relative path works from the sources and from the build. The executable schema is built
// once and served by Apollo Server, over HTTP and over WebSocket alike.
import { readdirSync, readFileSync } from 'node:fs';
import { makeExecutableSchema } from '@graphql-tools/schema';
import type { GraphQLSchema } from 'graphql';
import { resolvers } from '../resolvers/index.js';

const schemaDir = new URL('../../schema/', import.meta.url);

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
export async function buildGatewaySchema(options: { federation: boolean }): Promise<GraphQLSchema> {
  if (options.federation) {
    // Imported only for a subgraph: Apollo's federation libraries would otherwise take memory in
    // every process.
    const { buildFineTuneSubgraphSchema } = await import('./subgraph-schema.js');
    return buildFineTuneSubgraphSchema(loadTypeDefs(), resolvers);
  }
  return makeExecutableSchema({ typeDefs: loadTypeDefs(), resolvers });
}
