// The GraphQL clients people use, each with its defaults, against the gateway over the wire:
// Apollo Client (HttpLink, the persisted-queries link, BatchHttpLink), urql's core client with
// its default exchanges (GET queries), graphql-request (POST and GET) and graphql-ws. Each
// client's own fetch is wrapped only to count what it sent.
import { createHash } from 'node:crypto';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, ServerError, gql } from '@apollo/client';
import { BatchHttpLink } from '@apollo/client/link/batch-http';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { Client as UrqlClient, cacheExchange, fetchExchange } from '@urql/core';
import { GraphQLClient } from 'graphql-request';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACME_KEY, startStack, type Stack } from './harness.js';
import { connect } from './live-client.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    simulator: { jobsPerOrganization: 6 },
    config: { limits: { maxBatch: 3, maxUpstreamCalls: 3 } },
  });
});
afterAll(() => stack.stop());

/** What a client sent: each request's method and its parsed JSON body (or query string). */
interface Sent {
  method: string;
  body: unknown;
  url: string;
}

function countingFetch(sent: Sent[]): typeof fetch {
  return async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const body = typeof init?.body === 'string' ? (JSON.parse(init.body) as unknown) : undefined;
    sent.push({ method: init?.method ?? 'GET', body, url });
    return fetch(input, init);
  };
}

const auth = { authorization: `Bearer ${ACME_KEY}` };
const JOBS = gql`
  query Jobs {
    fineTuneJobs(limit: 2) {
      id
      status
    }
  }
`;

/** The demo organization's jobs, as the gateway lists them. */
async function jobs(): Promise<{ id: string; status: string; allowedActions: string[] }[]> {
  const response = await stack.query<{
    fineTuneJobs: { id: string; status: string; allowedActions: string[] }[];
  }>('{ fineTuneJobs { id status allowedActions } }');
  return response.data!.fineTuneJobs;
}

function apolloClient(link: ApolloLink) {
  return new ApolloClient({ link, cache: new InMemoryCache() });
}

describe('Apollo Client', () => {
  it('HttpLink: a query and a mutation', async () => {
    const client = apolloClient(new HttpLink({ uri: stack.gateway.url, headers: auth }));
    const { data } = await client.query<{ fineTuneJobs: { id: string }[] }>({ query: JOBS });
    expect(data?.fineTuneJobs).toHaveLength(2);
    const stopped = await client.mutate<{ stopFineTuneJob: { id: string; status: string } }>({
      mutation: gql`
        mutation Stop($id: ID!) {
          stopFineTuneJob(id: $id) {
            id
            status
          }
        }
      `,
      variables: { id: (await jobs()).find((job) => job.status === 'RUNNING')!.id },
    });
    expect(stopped.data?.stopFineTuneJob.status).toBe('STOPPING');
  });

  it('the persisted-queries link (sha256): registered once, then sent by its hash alone', async () => {
    const sent: Sent[] = [];
    const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
    const link = new PersistedQueryLink({ sha256 }).concat(
      new HttpLink({ uri: stack.gateway.url, headers: auth, fetch: countingFetch(sent) }),
    );
    const query = gql`
      query PersistedJobs {
        fineTuneJobs(limit: 1) {
          id
        }
      }
    `;
    // A fresh client each time, so Apollo's own cache does not answer the second query.
    for (let round = 0; round < 2; round += 1) {
      const { data } = await apolloClient(link).query<{ fineTuneJobs: unknown[] }>({ query });
      expect(data?.fineTuneJobs).toHaveLength(1);
    }
    const withDocument = sent.filter(
      (request) => typeof (request.body as { query?: unknown }).query === 'string',
    );
    // The hash, refused as unknown; the document, registered; then the hash alone.
    expect(sent).toHaveLength(3);
    expect(withDocument).toHaveLength(1);
    expect(
      (sent[2]!.body as { extensions: { persistedQuery: unknown } }).extensions.persistedQuery,
    ).toBeDefined();
  });

  it('BatchHttpLink: queries sent together are one HTTP request, each answered', async () => {
    const sent: Sent[] = [];
    const client = apolloClient(
      new BatchHttpLink({ uri: stack.gateway.url, headers: auth, batchMax: 3, fetch: countingFetch(sent) }),
    );
    const ids = (await jobs()).map((job) => job.id);
    const query = gql`
      query Job($id: ID!) {
        fineTuneJob(id: $id) {
          id
        }
      }
    `;
    const resolvedBefore = stack.operationsResolved;
    const results = await Promise.all(
      ids
        .slice(0, 2)
        .map((id) => client.query<{ fineTuneJob: { id: string } }>({ query, variables: { id } })),
    );
    expect(results.map((result) => result.data?.fineTuneJob.id)).toEqual(ids.slice(0, 2));
    expect(sent).toHaveLength(1);
    expect(sent[0]!.body).toHaveLength(2);
    // Each operation of the batch went through Apollo Server's pipeline.
    expect(stack.operationsResolved - resolvedBefore).toBe(2);
  });

  it('a batch past limits.maxBatch is refused with a message Apollo Client reports', async () => {
    const client = apolloClient(new BatchHttpLink({ uri: stack.gateway.url, headers: auth, batchMax: 4 }));
    const before = stack.simulator.requests.length;
    const outcomes = await Promise.allSettled(
      [1, 2, 3, 4].map((limit) =>
        client.query({
          query: gql`
            query Page($limit: Int) {
              fineTuneJobs(limit: $limit) {
                id
              }
            }
          `,
          variables: { limit },
        }),
      ),
    );
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      const error = (outcome as PromiseRejectedResult).reason as ServerError;
      expect(error).toBeInstanceOf(ServerError);
      expect(error.statusCode).toBe(400);
      expect(error.bodyText).toMatch(/A batch may hold at most 3 operations/);
      expect(error.bodyText).toMatch(/QUERY_LIMIT_EXCEEDED/);
    }
    expect(stack.simulator.requests).toHaveLength(before);
  });
});

describe('batches are limited as one operation', () => {
  async function postBatch(operations: { query: string; variables?: Record<string, unknown> }[]) {
    const response = await fetch(stack.gateway.url, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify(operations),
    });
    const text = await response.text();
    const answers = JSON.parse(text) as {
      data?: unknown;
      errors?: { extensions: Record<string, unknown> }[];
    }[];
    return { status: response.status, answers };
  }

  it('their costs add up: the operation that takes the batch past limits.maxCost is refused', async () => {
    // Each costs 10 + 1,500 × 3 = 4,510 of 5,000.
    const query = '{ fineTuneJobs(limit: 1500) { id name status } }';
    const { status, answers } = await postBatch([{ query }, { query }]);
    expect(status).toBe(200);
    const [first, second] = answers;
    expect(first!.errors).toBeUndefined();
    expect(second!.errors?.[0]?.extensions).toMatchObject({
      code: 'QUERY_LIMIT_EXCEEDED',
      limit: 'cost',
      cost: 9020,
    });
  });

  it('their upstream calls add up: past limits.maxUpstreamCalls, all are refused before any call', async () => {
    const ids = (await jobs()).map((job) => job.id);
    const before = stack.simulator.requests.length;
    // Three operations of two calls each, against a budget of three calls for the batch.
    const { status, answers } = await postBatch(
      [0, 2, 4].map((i) => ({
        query: `{ a: fineTuneJob(id: "${ids[i]}") { id } b: fineTuneJob(id: "${ids[i + 1]}") { id } }`,
      })),
    );
    expect(status).toBe(400);
    for (const answer of answers) {
      expect(answer.errors?.map((error) => error.extensions)).toEqual([
        expect.objectContaining({ code: 'QUERY_LIMIT_EXCEEDED', limit: 'upstreamCalls', calls: 6, max: 3 }),
      ]);
    }
    expect(stack.simulator.requests.length - before).toBe(0);
  });
});

describe('urql with its default exchanges', () => {
  it('sends queries as GET, and they are answered; a mutation goes as POST', async () => {
    const sent: Sent[] = [];
    const client = new UrqlClient({
      url: stack.gateway.url,
      exchanges: [cacheExchange, fetchExchange],
      fetch: countingFetch(sent),
      fetchOptions: { headers: auth },
    });
    const result = await client.query('{ fineTuneJobs(limit: 2) { id status } }', {}).toPromise();
    expect(result.error).toBeUndefined();
    expect((result.data as { fineTuneJobs: unknown[] }).fineTuneJobs).toHaveLength(2);
    expect(sent[0]!.method).toBe('GET');

    const running = (await jobs()).find((job) => job.allowedActions.includes('CANCEL'))!;
    const stopped = await client
      .mutation('mutation ($id: ID!) { cancelFineTuneJob(id: $id) { status } }', { id: running.id })
      .toPromise();
    expect(stopped.error).toBeUndefined();
    expect(sent[1]!.method).toBe('POST');
  });
});

describe('graphql-request', () => {
  it.each(['POST', 'GET'] as const)('%s', async (method) => {
    const client = new GraphQLClient(stack.gateway.url, { method, headers: auth });
    const data = await client.request<{ fineTuneJobs: unknown[] }>('{ fineTuneJobs(limit: 3) { id } }');
    expect(data.fineTuneJobs).toHaveLength(3);
  });
});

describe('graphql-ws', () => {
  it('a query over the socket', async () => {
    const socket = connect(stack.gateway.url, ACME_KEY);
    const subscription = socket.subscribe('{ fineTuneJobs(limit: 1) { id } }');
    const [event] = await subscription.waitForEvents(1);
    expect((event!.data as { fineTuneJobs: unknown[] }).fineTuneJobs).toHaveLength(1);
    await socket.client.dispose();
  });
});
