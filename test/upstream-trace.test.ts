// `extensions.upstream`: the REST calls one operation made, and the loads answered without one.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACME_KEY, expectData, startStack, type GraphQLResponse, type Stack } from './harness.js';

interface TraceEntry {
  method: string;
  path: string;
  source: 'upstream' | 'loader' | 'coalesced';
  status?: number | null;
  durationMs?: number;
  retries?: number;
}
interface Trace {
  calls: number;
  reused: number;
  entries: TraceEntry[];
}

function traceOf(response: GraphQLResponse): Trace {
  const trace = (response as { extensions?: { upstream?: Trace } }).extensions?.upstream;
  expect(trace, JSON.stringify(response, null, 2)).toBeDefined();
  return trace!;
}

/** The entries without their timings, which vary from run to run. */
function shapeOf(trace: Trace) {
  return trace.entries.map(({ durationMs, ...rest }) => {
    if (rest.source === 'upstream') expect(durationMs).toBeGreaterThanOrEqual(0);
    return rest;
  });
}

let stack: Stack;
let jobIds: string[];
beforeAll(async () => {
  stack = await startStack({ simulator: { jobsPerOrganization: 6, providerExamples: false } });
  const acme = stack.simulator.store.organizations[0]!;
  jobIds = stack.simulator.store.list(acme, null).map((j) => j.id);
});
afterAll(() => stack.stop());
beforeEach(() => {
  stack.simulator.resetRequests();
  stack.simulator.faults.clear();
});

describe('extensions.upstream in development', () => {
  it('lists one call for a list, and the job read from it as served by the loader', async () => {
    const response = await stack.query(
      `query { fineTuneJobs(limit: 3) { id } fineTuneJob(id: "${jobIds[1]}") { name } }`,
    );
    expectData(response);
    const trace = traceOf(response);
    expect(shapeOf(trace)).toEqual([
      {
        method: 'GET',
        path: '/fine-tune/jobs?limit=3&offset=0',
        source: 'upstream',
        status: 200,
        retries: 0,
      },
      { method: 'GET', path: `/fine-tune/jobs/${jobIds[1]}`, source: 'loader' },
    ]);
    expect(trace).toMatchObject({ calls: 1, reused: 1 });
    expect(stack.simulator.requests).toHaveLength(trace.calls);
  });

  it('shows identical fields as coalesced into one call', async () => {
    const response = await stack.query(
      `query { a: fineTuneJob(id: "${jobIds[0]}") { id } b: fineTuneJob(id: "${jobIds[0]}") { name } }`,
    );
    expectData(response);
    expect(shapeOf(traceOf(response))).toEqual([
      { method: 'GET', path: `/fine-tune/jobs/${jobIds[0]}`, source: 'coalesced' },
      { method: 'GET', path: `/fine-tune/jobs/${jobIds[0]}`, source: 'upstream', status: 200, retries: 0 },
    ]);
  });

  it('counts the retries of a call and shows the status of its last attempt', async () => {
    stack.simulator.faults.set('getJob', { status: 503, times: 2 });
    const response = await stack.query(`query { fineTuneJob(id: "${jobIds[2]}") { id } }`);
    expectData(response);
    expect(shapeOf(traceOf(response))).toEqual([
      { method: 'GET', path: `/fine-tune/jobs/${jobIds[2]}`, source: 'upstream', status: 200, retries: 2 },
    ]);
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(3);
  });

  it('shows a failed call with its status, and one that got no answer with null', async () => {
    stack.simulator.faults.set('getJob', { status: 500, times: 1 });
    const failed = await stack.query(`query { fineTuneJob(id: "${jobIds[2]}") { id } }`);
    expect(failed.errors?.[0]?.extensions?.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(shapeOf(traceOf(failed))).toEqual([
      { method: 'GET', path: `/fine-tune/jobs/${jobIds[2]}`, source: 'upstream', status: 500, retries: 0 },
    ]);

    stack.simulator.faults.set('getJob', { drop: 'before' });
    const dropped = await stack.query(`query { fineTuneJob(id: "${jobIds[2]}") { id } }`);
    expect(dropped.errors?.[0]?.extensions?.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(traceOf(dropped).entries).toMatchObject([{ source: 'upstream', status: null }]);
  });

  it('lists each metrics page once, and a repeated page as served by the loader', async () => {
    const response = await stack.query(`query {
      fineTuneJob(id: "${jobIds[0]}") { a: metrics(limit: 2) { entries { step } } b: metrics(limit: 2) { lastCheckpointStep } }
    }`);
    expectData(response);
    const paths = traceOf(response).entries.map((e) => `${e.source} ${e.path}`);
    expect(paths).toEqual([
      `upstream /fine-tune/jobs/${jobIds[0]}`,
      `coalesced /fine-tune/jobs/${jobIds[0]}/metrics?limit=2&offset=0`,
      `upstream /fine-tune/jobs/${jobIds[0]}/metrics?limit=2&offset=0`,
    ]);
  });

  it('lists the writes of a mutation', async () => {
    const response = await stack.query(`mutation {
      createFineTuneJob(input: { name: "traced", model: "m", datasets: [{ name: "d", split: "train", fileIds: ["f"] }] }) { id }
    }`);
    expectData(response);
    expect(traceOf(response).entries).toMatchObject([
      { method: 'POST', path: '/fine-tune/jobs', source: 'upstream', status: 201, retries: 0 },
    ]);
  });

  it('never carries the key, even when a client sends it as an id', async () => {
    const response = await stack.query(`query { fineTuneJob(id: "${ACME_KEY}") { id } }`);
    const text = JSON.stringify(response);
    expect(text).not.toContain(ACME_KEY);
    expect(traceOf(response).entries[0]!.path).toBe('/fine-tune/jobs/[REDACTED]');
    expect(Object.keys(traceOf(response).entries[0]!).sort()).toEqual(
      ['durationMs', 'method', 'path', 'retries', 'source', 'status'].sort(),
    );
  });

  it('gives an operation with no upstream call an empty trace', async () => {
    const response = await stack.query('query { fineTuneJobs(statuses: []) { id } }');
    expect(traceOf(response)).toEqual({ calls: 0, reused: 0, entries: [] });
  });
});

describe('extensions.upstream in production', () => {
  it('is off unless telemetry.upstreamTrace turns it on', async () => {
    const off = await startStack({ env: { NODE_ENV: 'production' } });
    const on = await startStack({
      env: { NODE_ENV: 'production' },
      config: { telemetry: { upstreamTrace: true } },
    });
    try {
      const withoutTrace = await off.query('query { fineTuneJobs(limit: 1) { id } }');
      expectData(withoutTrace);
      expect((withoutTrace as { extensions?: unknown }).extensions).toBeUndefined();
      const withTrace = await on.query('query { fineTuneJobs(limit: 1) { id } }');
      expect(traceOf(withTrace).calls).toBe(1);
    } finally {
      await off.stop();
      await on.stop();
    }
  });
});
