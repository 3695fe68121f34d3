// The gateway's schema as an Apollo Federation 2 subgraph: the same SDL and resolvers, plus
// schema/federation/*.graphql (`FineTuneJob @key(fields: "id")`). `buildSubgraphSchema` adds
// what a router needs (`_service { sdl }`, `_entities`); entities are resolved through the
// request's by-id loader (FineTuneJob.__resolveReference), so a router asking for many jobs in
// one `_entities` call gets them batched and each id fetched once.
import { readdirSync, readFileSync } from 'node:fs';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap.js';
import { parse, type GraphQLSchema } from 'graphql';
import type { Resolvers } from '../generated/graphql.js';

const federationDir = new URL('../../schema/federation/', import.meta.url);

function loadFederationTypeDefs(): string[] {
  return readdirSync(federationDir)
    .filter((file) => file.endsWith('.graphql'))
    .sort()
    .map((file) => readFileSync(new URL(file, federationDir), 'utf8'));
}

export function buildFineTuneSubgraphSchema(typeDefs: string[], resolvers: Resolvers): GraphQLSchema {
  return buildSubgraphSchema({
    typeDefs: parse([...typeDefs, ...loadFederationTypeDefs()].join('\n')),
    resolvers: resolvers as GraphQLResolverMap<unknown>,
  });
}
