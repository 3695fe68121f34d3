// The gateway as an Apollo Federation 2 subgraph, composed with a second subgraph (one that adds
// `owner` to jobs) by the JS composition library, and queried through a real federation gateway
// (@apollo/gateway) in-process, every hop over HTTP on loopback.
import { composeServices } from '@apollo/composition';
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { GraphQLClient } from 'graphql-request';
import { parse } from 'graphql';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACME_KEY, GLOBEX_KEY, expectData, expectErrorCode, startStack, type Stack } from './harness.js';
import { connect } from './live-client.js';

const OWNERS_SDL = `
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"])

  "A fine-tune job, as the owners service knows it."
  type FineTuneJob @key(fields: "id") {
    "The job's id."
    id: ID!
    "Who is responsible for the job."
    owner: String!
  }

  type Query {
    "Jobs someone pinned, as references (ids only), duplicates included."
    pinnedFineTuneJobs: [FineTuneJob!]!
  }
`;

interface Owners {
  url: string;
  pinned: string[];
  stop(): Promise<void>;
}

async function startOwnersSubgraph(): Promise<Owners> {
  const owners: Owners = { url: '', pinned: [], stop: async () => undefined };
  const server = new ApolloServer({
    schema: buildSubgraphSchema({
      typeDefs: parse(OWNERS_SDL),
      resolvers: {
        Query: { pinnedFineTuneJobs: () => owners.pinned.map((id) => ({ id })) },
        FineTuneJob: {
          __resolveReference: (reference: { id: string }) => ({ id: reference.id }),
          owner: (job: { id: string }) => `owner-of-${job.id}`,
        },
      },
    }),
  });
  const { url } = await startStandaloneServer(server, { listen: { port: 0, host: '127.0.0.1' } });
  owners.url = url;
  owners.stop = () => server.stop();
  return owners;
}

let stack: Stack;
let owners: Owners;
let federation: ApolloServer<{ authorization?: string }>;
let supergraphUrl: string;
let jobIds: string[];

function supergraph(apiKey: string) {
  return new GraphQLClient(supergraphUrl, { headers: { authorization: `Bearer ${apiKey}` } });
}

beforeAll(async () => {
  stack = await startStack({
    simulator: { jobsPerOrganization: 5, providerExamples: false },
    config: { federation: { subgraph: true } },
  });
  const acme = stack.simulator.store.organizations[0]!;
  jobIds = stack.simulator.store.list(acme, null).map((j) => j.id);
  owners = await startOwnersSubgraph();

  // What `rover subgraph introspect` does: ask the running subgraph for its SDL.
  const sdl = expectData(await stack.query<{ _service: { sdl: string } }>('{ _service { sdl } }'))._service
    .sdl;
  const composed = composeServices([
    { name: 'fine-tune-jobs', url: stack.gateway.url, typeDefs: parse(sdl) },
    { name: 'owners', url: owners.url, typeDefs: parse(OWNERS_SDL) },
  ]);
  expect(composed.errors, JSON.stringify(composed.errors)).toBeUndefined();

  federation = new ApolloServer({
    gateway: new ApolloGateway({
      supergraphSdl: composed.supergraphSdl!,
      // The caller's key travels to our subgraph, as Apollo Router's header propagation does.
      buildService: ({ url }) =>
        new RemoteGraphQLDataSource<{ authorization?: string }>({
          url,
          willSendRequest({ request, context }) {
            if (context.authorization) request.http?.headers.set('authorization', context.authorization);
          },
        }),
    }),
  });
  ({ url: supergraphUrl } = await startStandaloneServer(federation, {
    listen: { port: 0, host: '127.0.0.1' },
    context: async ({ req }) => ({ authorization: req.headers.authorization }),
  }));
});
afterAll(async () => {
  await federation?.stop();
  await owners?.stop();
  await stack?.stop();
});
beforeEach(() => stack.simulator.resetRequests());

describe('federation subgraph', () => {
  it('declares FineTuneJob as an entity keyed by id in its SDL', async () => {
    const { _service } = expectData(await stack.query<{ _service: { sdl: string } }>('{ _service { sdl } }'));
    expect(_service.sdl).toMatch(/type FineTuneJob\s+@key\(fields: "id"\)/);
    expect(_service.sdl).toContain('specs.apollo.dev/federation/v2.9');
  });

  it('answers a supergraph query that joins our jobs with the owners subgraph', async () => {
    const data = await supergraph(ACME_KEY).request<{
      fineTuneJobs: { id: string; status: string; owner: string }[];
    }>('{ fineTuneJobs(limit: 3) { id status owner } }');
    expect(data.fineTuneJobs.map((j) => j.id)).toEqual(jobIds.slice(0, 3));
    for (const job of data.fineTuneJobs) expect(job.owner).toBe(`owner-of-${job.id}`);
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
  });

  it('resolves job references from another subgraph through the by-id loader, each id once', async () => {
    owners.pinned = [jobIds[0]!, jobIds[2]!, jobIds[0]!, jobIds[4]!, jobIds[2]!];
    const data = await supergraph(ACME_KEY).request<{
      pinnedFineTuneJobs: { id: string; name: string; owner: string; isTerminal: boolean }[];
    }>('{ pinnedFineTuneJobs { id name owner isTerminal } }');
    expect(data.pinnedFineTuneJobs.map((j) => j.id)).toEqual(owners.pinned);
    expect(data.pinnedFineTuneJobs.every((j) => typeof j.name === 'string')).toBe(true);
    const reads = stack.simulator.requestsTo('getJob').map((r) => r.path.split('/').at(-1));
    expect(reads.sort()).toEqual([jobIds[0], jobIds[2], jobIds[4]].sort());
  });

  it('batches and deduplicates an _entities call with repeated representations', async () => {
    const representations = [jobIds[1], jobIds[3], jobIds[1], jobIds[1], 'ftj-nobody'].map((id) => ({
      __typename: 'FineTuneJob',
      id,
    }));
    const data = expectData(
      await stack.query<{ _entities: ({ id: string } | null)[] }>(
        'query ($r: [_Any!]!) { _entities(representations: $r) { ... on FineTuneJob { id status } } }',
        { r: representations },
      ),
    );
    expect(data._entities.map((e) => e?.id ?? null)).toEqual([
      jobIds[1],
      jobIds[3],
      jobIds[1],
      jobIds[1],
      null,
    ]);
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(3);
  });

  it('refuses an _entities call of more jobs than QUERY_MAX_UPSTREAM_CALLS before reading any', async () => {
    // Each representation is a job read by id: 101 are 101 calls, one more than an operation may make.
    const representations = Array.from({ length: 101 }, (_, i) => ({
      __typename: 'FineTuneJob',
      id: `ftj-${i}`,
    }));
    const response = await stack.query(
      'query ($r: [_Any!]!) { _entities(representations: $r) { ... on FineTuneJob { id } } }',
      { r: representations },
    );
    expect(response.status).toBe(400);
    expect(expectErrorCode(response, 'QUERY_LIMIT_EXCEEDED').extensions).toMatchObject({
      limit: 'upstreamCalls',
      calls: 101,
    });
    expect(stack.simulator.requests).toEqual([]);
  });

  it('refuses a representation whose id no URL path can carry, without an upstream call', async () => {
    const response = await stack.query<{ _entities: ({ id: string } | null)[] }>(
      'query ($r: [_Any!]!) { _entities(representations: $r) { ... on FineTuneJob { id } } }',
      {
        r: [
          { __typename: 'FineTuneJob', id: '..' },
          { __typename: 'FineTuneJob', id: jobIds[0] },
        ],
      },
    );
    const error = expectErrorCode(response, 'BAD_USER_INPUT');
    expect(error.path).toEqual(['_entities', 0]);
    expect(response.data?._entities).toEqual([null, { id: jobIds[0] }]);
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(1);
  });

  it("keeps organizations apart: another key's jobs are not resolved", async () => {
    owners.pinned = [jobIds[0]!];
    const response = await supergraph(GLOBEX_KEY)
      .rawRequest<{ pinnedFineTuneJobs: unknown }>('{ pinnedFineTuneJobs { id name } }')
      .catch((error: { response: { data?: unknown } }) => error.response);
    // Our subgraph answers null for a job the key's organization does not have; @apollo/gateway
    // then nulls the non-null list (and reports it under extensions.valueCompletion).
    expect(response.data).toBeNull();
    expect(JSON.stringify(response)).not.toContain(
      stack.simulator.store.get(stack.simulator.store.organizations[0]!, jobIds[0]!)!.name,
    );
    expect(stack.simulator.requestsTo('getJob').map((r) => r.organization)).toEqual(['globex']);
  });

  it('still serves subscriptions over WebSocket as a subgraph', async () => {
    const c = connect(stack.gateway.url, ACME_KEY);
    try {
      const live = c.subscribe('subscription ($id: ID!) { fineTuneJobUpdated(id: $id) { id } }', {
        id: jobIds[0],
      });
      await live.waitForEvents(1);
      expect(live.events[0]).toEqual({ data: { fineTuneJobUpdated: { id: jobIds[0] } } });
    } finally {
      await c.dispose();
    }
  });
});

describe('the gateway without federation.subgraph', () => {
  it('serves exactly the schema in schema/*.graphql, with no federation fields', async () => {
    const plain = await startStack({ simulator: { jobsPerOrganization: 1 } });
    try {
      const introspected = expectData(
        await plain.query<{
          __schema: { queryType: { fields: { name: string }[] }; types: { name: string }[] };
        }>('{ __schema { queryType { fields { name } } types { name } } }'),
      );
      const fields = introspected.__schema.queryType.fields.map((f) => f.name);
      expect(fields.sort()).toEqual(['fineTuneJob', 'fineTuneJobs', 'fineTuneJobsConnection']);
      expect(introspected.__schema.types.map((t) => t.name)).not.toContain('_Any');
      const service = await plain.query('{ _service { sdl } }');
      expect(service.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    } finally {
      await plain.stop();
    }
  });

  it('serves the same API as a subgraph, plus the federation fields only', async () => {
    const introspected = expectData(
      await stack.query<{ __schema: { queryType: { fields: { name: string }[] } } }>(
        '{ __schema { queryType { fields { name } } } }',
      ),
    );
    expect(introspected.__schema.queryType.fields.map((f) => f.name).sort()).toEqual([
      '_entities',
      '_service',
      'fineTuneJob',
      'fineTuneJobs',
      'fineTuneJobsConnection',
    ]);
    const data = expectData(
      await stack.query<{ fineTuneJobs: { id: string }[] }>('{ fineTuneJobs(limit: 2) { id } }'),
    );
    expect(data.fineTuneJobs.map((j) => j.id)).toEqual(jobIds.slice(0, 2));
  });
});
