// Every GraphQL operation runs once through Apollo Server's request pipeline, whichever way it
// comes in and however it is answered: a plugin an operator adds (a counting one here) sees each
// request's hooks exactly once, over HTTP (POST, GET), over WebSocket (query and subscription),
// joined to an identical operation in flight, and served from the response cache. As a
// federation subgraph, every response to a router that asks for a trace carries its own.
import type { ApolloServerPlugin } from '@apollo/server';
import type { GatewayConfigFile } from '../src/config.js';
import { Trace } from '@apollo/usage-reporting-protobuf';
import { afterEach, describe, expect, it } from 'vitest';
import type { GatewayContext } from '../src/context.js';
import { ACME_KEY, expectData, sentTogether, startStack, type Stack } from './harness.js';
import { connect } from './live-client.js';

const HOOKS = ['requestDidStart', 'didResolveOperation', 'willSendResponse'] as const;

/**
 * Records, per operation, which of its hooks fired. An HTTP request is known by its request id; a
 * WebSocket operation by its operation name, once the pipeline has resolved it.
 */
function countingPlugin() {
  const all: { label: string; hooks: string[] }[] = [];
  const plugin: ApolloServerPlugin<GatewayContext> = {
    async requestDidStart({ contextValue }) {
      const run = { label: contextValue.requestId, hooks: ['requestDidStart'] };
      all.push(run);
      const labelled = (operationName: string | null | undefined) => {
        if (contextValue.operation.transport === 'websocket') run.label = `ws:${operationName}`;
      };
      return {
        async didResolveOperation({ operationName }) {
          labelled(operationName);
          run.hooks.push('didResolveOperation');
        },
        async willSendResponse({ operationName }) {
          labelled(operationName);
          run.hooks.push('willSendResponse');
        },
      };
    },
  };
  const runs = {
    /** The hooks of the one run with this label; fails when there are several. */
    get(label: string): string[] | undefined {
      const matching = all.filter((run) => run.label === label);
      expect(matching.length, label).toBeLessThanOrEqual(1);
      return matching[0]?.hooks;
    },
  };
  return { plugin, runs };
}

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

async function start(config: GatewayConfigFile = {}) {
  const counting = countingPlugin();
  stack = await startStack({ config, plugins: [counting.plugin], simulator: { jobsPerOrganization: 6 } });
  return { stack, runs: counting.runs };
}

interface Answer {
  status: number;
  body: {
    data?: unknown;
    errors?: unknown[];
    extensions?: { ftv1?: string; upstream?: { entries: { source: string }[] } };
  };
}

const JOBS = 'query Jobs($limit: Int) { fineTuneJobs(limit: $limit) { id status } }';

function post(s: Stack, requestId: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(s.gateway.url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${ACME_KEY}`,
      'content-type': 'application/json',
      'x-request-id': requestId,
      ...headers,
    },
    body: JSON.stringify(body),
  }).then(async (r): Promise<Answer> => ({ status: r.status, body: (await r.json()) as Answer['body'] }));
}

function get(s: Stack, requestId: string, query: string, headers: Record<string, string> = {}) {
  const url = `${s.gateway.url}?query=${encodeURIComponent(query)}`;
  return fetch(url, {
    headers: {
      authorization: `Bearer ${ACME_KEY}`,
      'apollo-require-preflight': 'true',
      'x-request-id': requestId,
      ...headers,
    },
  }).then(async (r): Promise<Answer> => ({ status: r.status, body: (await r.json()) as Answer['body'] }));
}

describe('an operator plugin sees every operation exactly once', () => {
  it('over HTTP: POST with and without variables, GET, a mutation, and a refused document', async () => {
    const { stack: s, runs } = await start();
    const running = s.simulator.store.list(s.simulator.store.organizations[0]!, ['RUNNING'])[0]!;
    expect((await post(s, 'post-variables', { query: JOBS, variables: { limit: 2 } })).status).toBe(200);
    expect((await post(s, 'post-plain', { query: '{ fineTuneJobs(limit: 1) { id } }' })).status).toBe(200);
    expect((await get(s, 'get', '{ fineTuneJobs(limit: 1) { id } }')).status).toBe(200);
    const mutation = `mutation { stopFineTuneJob(id: "${running.id}") { id status } }`;
    expect((await post(s, 'mutation', { query: mutation })).status).toBe(200);
    expect((await post(s, 'invalid', { query: '{ fineTuneJobs { nope } }' })).status).toBe(400);
    for (const id of ['post-variables', 'post-plain', 'get', 'mutation'])
      expect(runs.get(id), id).toEqual(HOOKS);
    // Refused at validation: the pipeline ran, and ended before resolving an operation.
    expect(runs.get('invalid')).toEqual(['requestDidStart', 'willSendResponse']);
  });

  it('joined to an identical query in flight: each request its own run, one execution', async () => {
    const { stack: s, runs } = await start();
    s.simulator.faults.set('listJobs', { delayMs: 300, times: 1 });
    const ids = ['joined-a', 'joined-b', 'joined-c', 'joined-d', 'joined-e'];
    const responses = await Promise.all(
      ids.map((id) => post(s, id, { query: JOBS, variables: { limit: 3 } })),
    );
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(1);
    for (const response of responses) expect(response.body.data).toEqual(responses[0]!.body.data);
    for (const id of ids) expect(runs.get(id), id).toEqual(HOOKS);
    // The requests that shared the answer show the call it came from.
    const sources = responses.map((r) => r.body.extensions?.upstream?.entries[0]?.source);
    expect(sources.filter((source) => source === 'shared')).toHaveLength(4);
    // Each request logged its own line; all but the one that executed say they shared.
    const lines = s.logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === 'graphql operation' && ids.includes(String(line.requestId)));
    expect(lines).toHaveLength(5);
    expect(lines.filter((line) => line.sharedFrom === 'flight')).toHaveLength(4);
  });

  it('served from the response cache (http.responseCacheTtlMs): a run of its own', async () => {
    const { stack: s, runs } = await start({ http: { responseCacheTtlMs: 60_000 } });
    const first = await post(s, 'cache-miss', { query: JOBS, variables: { limit: 2 } });
    const second = await post(s, 'cache-hit', { query: JOBS, variables: { limit: 2 } });
    expect(second.body.data).toEqual(first.body.data);
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(1);
    expect(runs.get('cache-miss')).toEqual(HOOKS);
    expect(runs.get('cache-hit')).toEqual(HOOKS);
  });

  it('over WebSocket: a query and a subscription, however many events it sends', async () => {
    const { stack: s, runs } = await start({ subscriptions: { pollMs: 20, activePollMs: 20 } });
    const acme = s.simulator.store.organizations[0]!;
    const job = s.simulator.store.list(acme, ['RUNNING'])[0]!;
    const live = connect(s.gateway.url, ACME_KEY);
    try {
      const query = live.subscribe('query OverSocket { fineTuneJobs(limit: 1) { id } }');
      await query.finished;
      expect(query.events).toHaveLength(1);
      const updates = live.subscribe(
        'subscription Watch($id: ID!) { fineTuneJobUpdated(id: $id) { id status } }',
        { id: job.id },
      );
      await updates.waitForEvents(1);
      s.simulator.advance(1);
      await updates.waitForEvents(2);
      updates.unsubscribe();
    } finally {
      await live.dispose();
    }
    expect(runs.get('ws:OverSocket')).toEqual(HOOKS);
    expect(runs.get('ws:Watch')).toEqual(HOOKS);
  });
});

function traceOf(response: Answer): Trace {
  const ftv1 = response.body.extensions?.ftv1;
  expect(typeof ftv1, JSON.stringify(response.body)).toBe('string');
  return Trace.decode(Buffer.from(ftv1!, 'base64'));
}

describe('as a federation subgraph, every response to a router that asks carries its own trace', () => {
  const ASK = { 'apollo-federation-include-trace': 'ftv1' };

  it('a POST query, a GET, an _entities fetch, and queries joined to one in flight', async () => {
    const { stack: s } = await start({ federation: { subgraph: true } });
    const ids = s.simulator.store.list(s.simulator.store.organizations[0]!, null).map((j) => j.id);
    const entities = {
      query: 'query ($r: [_Any!]!) { _entities(representations: $r) { ... on FineTuneJob { id name } } }',
      variables: { r: ids.slice(0, 2).map((id) => ({ __typename: 'FineTuneJob', id })) },
    };
    const single = [
      await post(s, 'trace-post', { query: JOBS, variables: { limit: 2 } }, ASK),
      await get(s, 'trace-get', '{ fineTuneJobs(limit: 1) { id } }', ASK),
      await post(s, 'trace-entities', entities, ASK),
    ];
    for (const response of single) {
      expectData(response.body as never);
      // Executed here: the trace has the fields the operation resolved.
      expect(traceOf(response).root?.child?.length).toBeGreaterThan(0);
    }

    s.simulator.resetRequests();
    const joined = await sentTogether(
      s,
      'listJobs',
      ['j1', 'j2', 'j3', 'j4'].map((id) => () => post(s, id, { query: JOBS, variables: { limit: 4 } }, ASK)),
    );
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(1);
    const traces = joined.map((response) => response.body.extensions!.ftv1);
    // One trace per response, none copied from another.
    expect(new Set(traces).size).toBe(4);
    for (const response of joined) expect(traceOf(response).endTime).toBeDefined();
    // The one that executed has its fields; the others say they resolved none.
    expect(joined.filter((response) => (traceOf(response).root?.child?.length ?? 0) > 0)).toHaveLength(1);

    // A caller that does not ask gets none.
    const plain = await post(s, 'no-trace', { query: JOBS, variables: { limit: 1 } });
    expect(plain.body.extensions?.ftv1).toBeUndefined();
  });
});
