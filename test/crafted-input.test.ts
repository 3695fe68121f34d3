// Crafted input is the client's error: deep variables, padded documents and an operator
// plugin's bug each get a well-formed answer with a stable code, and nothing reaches the
// upstream; what still is an internal error is masked for the client and logged with its stack.
import type { ApolloServerPlugin } from '@apollo/server';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { GatewayContext } from '../src/context.js';
import { ACME_KEY, startStack, type Stack } from './harness.js';
import { connect } from './live-client.js';

/** An operator's plugin with a bug, hit by operations named `Buggy`. */
const buggyPlugin: ApolloServerPlugin<GatewayContext> = {
  async requestDidStart() {
    return {
      async didResolveOperation({ operationName }) {
        if (operationName === 'Buggy')
          throw new TypeError('cannot read properties of undefined (reading "x")');
      },
    };
  },
};

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ plugins: [buggyPlugin], config: { limits: { maxBytes: 4096 } } });
});
afterAll(() => stack.stop());
beforeEach(() => stack.simulator.resetRequests());

interface Answer {
  status: number;
  body: { data?: unknown; errors?: { message: string; extensions?: Record<string, unknown> }[] };
}

/** Posts a body written as text: a 5,000-level array cannot go through JSON.stringify. */
async function postText(body: string, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await fetch(stack.gateway.url, {
    method: 'POST',
    headers: { authorization: `Bearer ${ACME_KEY}`, 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: response.status, body: (await response.json()) as Answer['body'] };
}

const deepArray = `${'['.repeat(5000)}${']'.repeat(5000)}`;

function errorLines(): Record<string, unknown>[] {
  return stack.logLines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => (line.level as number) >= 50);
}

describe('deep variables', () => {
  it.each([
    ['a cost argument', 'query ($l: Int) { fineTuneJobs(limit: $l) { id } }', 'l'],
    ['a filter', 'query ($s: [FineTuneJobStatus!]) { fineTuneJobs(statuses: $s, limit: 1) { id } }', 's'],
  ])(
    'in %s: 400 BAD_USER_INPUT, no upstream call, nothing logged as an error',
    async (_name, query, name) => {
      const errorsBefore = errorLines().length;
      const answer = await postText(
        `{"query": ${JSON.stringify(query)}, "variables": {"${name}": ${deepArray}}}`,
      );
      expect(answer.status).toBe(400);
      expect(answer.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(answer.body.errors?.[0]?.message).toMatch(/nest deeper/);
      expect(stack.simulator.requests).toHaveLength(0);
      expect(errorLines()).toHaveLength(errorsBefore);
    },
  );
});

describe('a job id with a lone surrogate (no URL can carry it)', () => {
  it.each([
    ['fineTuneJob', 'query ($id: ID!) { fineTuneJob(id: $id) { id } }'],
    ['stopFineTuneJob', 'mutation ($id: ID!) { stopFineTuneJob(id: $id) { id } }'],
    ['cancelFineTuneJob', 'mutation ($id: ID!) { cancelFineTuneJob(id: $id) { id } }'],
    [
      'createFineTuneJob',
      'mutation ($id: ID!) { createFineTuneJob(input: { id: $id, name: "n", model: "m", datasets: [{ name: "d", split: "train", fileIds: ["f"] }] }) { id } }',
    ],
  ])('in %s: BAD_USER_INPUT, no upstream call, nothing logged as an error', async (_field, query) => {
    const errorsBefore = errorLines().length;
    // Written as JSON text: "\ud800" is a valid JSON escape of a lone surrogate.
    const answer = await postText(`{"query": ${JSON.stringify(query)}, "variables": {"id": "ftj-\\ud800"}}`);
    expect(answer.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(stack.simulator.requests).toHaveLength(0);
    expect(errorLines()).toHaveLength(errorsBefore);
  });
});

describe('an operation name that names nothing', () => {
  it.each([
    ['a document with one operation', '{ fineTuneJobs(limit: 1) { id } }', 'Nope'],
    ['a document with two', 'query A { fineTuneJobs(limit: 1) { id } } query B { __typename }', 'Nope'],
    [
      'no name for two operations',
      'query A { fineTuneJobs(limit: 1) { id } } query B { __typename }',
      undefined,
    ],
  ])('in %s: 400 OPERATION_RESOLUTION_FAILURE, nothing run upstream', async (_name, query, operationName) => {
    const answer = await postText(JSON.stringify({ query, operationName }));
    expect(answer.status).toBe(400);
    expect(answer.body.errors?.[0]?.extensions?.code).toBe('OPERATION_RESOLUTION_FAILURE');
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('a name that matches runs that operation only', async () => {
    const answer = await postText(
      JSON.stringify({
        query: 'query A { fineTuneJobs(limit: 1) { id } } query B { __typename }',
        operationName: 'B',
      }),
    );
    expect(answer.body).toMatchObject({ data: { __typename: 'Query' } });
    expect(stack.simulator.requests).toHaveLength(0);
  });
});

describe('limits.maxBytes', () => {
  const padded = `{ fineTuneJobs(limit: 1) { id } }${' '.repeat(5000)}# and a comment`;

  it('refuses a padded document before parsing it, over POST', async () => {
    const answer = await postText(JSON.stringify({ query: padded }));
    expect(answer.status).toBe(400);
    expect(answer.body.errors?.[0]?.extensions).toEqual({
      code: 'QUERY_LIMIT_EXCEEDED',
      limit: 'bytes',
      maxBytes: 4096,
    });
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('and over GET', async () => {
    const response = await fetch(`${stack.gateway.url}?query=${encodeURIComponent(padded)}`, {
      headers: { authorization: `Bearer ${ACME_KEY}`, 'apollo-require-preflight': 'true' },
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as Answer['body']).errors?.[0]?.extensions?.limit).toBe('bytes');
  });

  it('and over WebSocket, before a subscription could hold it', async () => {
    const live = connect(stack.gateway.url, ACME_KEY);
    try {
      const sub = live.subscribe(`subscription { fineTuneJobsChanged { change } }${' '.repeat(5000)}`);
      await sub.finished;
      expect(JSON.stringify(sub.failure)).toContain('QUERY_LIMIT_EXCEEDED');
      expect(JSON.stringify(sub.failure)).not.toContain('"http"');
    } finally {
      await live.dispose();
    }
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('lets a document within the limit through', async () => {
    const answer = await postText(JSON.stringify({ query: '{ fineTuneJobs(limit: 1) { id } }' }));
    expect(answer.status).toBe(200);
  });
});

describe('an internal error', () => {
  it('is masked for the client and logged at error level with its stack and request id', async () => {
    const answer = await postText(
      JSON.stringify({ query: 'query Buggy { fineTuneJobs(limit: 1) { id } }' }),
      {
        'x-request-id': 'buggy-1',
      },
    );
    expect(answer.body.errors).toEqual([
      { message: 'Internal server error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } },
    ]);
    const logged = errorLines().find((line) => line.requestId === 'buggy-1');
    expect(logged, JSON.stringify(stack.logLines.slice(-5))).toBeDefined();
    expect(JSON.stringify(logged)).toMatch(/TypeError: cannot read properties/);
    expect(JSON.stringify(logged)).toMatch(/"stack":/);
  });
});
