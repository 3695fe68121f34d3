// FineTuneJob.metrics over HTTP against the simulator: the mapping of the provider's example,
// paging pushed upstream, one call per distinct (job, page), bounded concurrency, and drift.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import metricsExample from '../src/simulator/provider-examples/job-metrics.response.json' with { type: 'json' };
import { expectData, expectErrorCode, startStack, type Stack } from './harness.js';
import { jobRecord } from './jobs.js';
import { METRICS_CONCURRENCY } from '../src/loaders/fine-tune-jobs.js';

interface Metrics {
  lastCheckpointStep: number | null;
  entries: {
    step: number | null;
    loss: number | null;
    evalLoss: number | null;
    learningRate: number | null;
    wallTimeSec: number | null;
    raw: Record<string, unknown>;
  }[];
}

const ENTRY = 'step loss evalLoss learningRate wallTimeSec raw';
// Seeded with the provider's examples: this job carries the example metrics.
const EXAMPLE_JOB = 'ftj-my-finetune-run-3de60a5c';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    simulator: { jobsPerOrganization: 12 },
    // Metrics of every job, each of every entry, is over the default cost limit (by design: it is
    // one upstream call per job); these tests are about loading, so they allow it.
    config: { limits: { maxCost: 100000 } },
  });
});
afterAll(() => stack.stop());
beforeEach(() => {
  stack.simulator.faults.clear();
  stack.simulator.resetRequests();
});

const acme = () => stack.simulator.store.organizations[0]!;

describe('metrics', () => {
  it('maps the provider’s example field for field, keeping each whole entry as raw', async () => {
    const data = expectData(
      await stack.query<{ fineTuneJob: { metrics: Metrics } }>(
        `query { fineTuneJob(id: "${EXAMPLE_JOB}") { metrics { lastCheckpointStep entries { ${ENTRY} } } } }`,
      ),
    );
    expect(data.fineTuneJob.metrics).toEqual({
      lastCheckpointStep: 600,
      entries: metricsExample.metrics.map((m) => ({
        step: m.step,
        loss: m.loss,
        evalLoss: m.eval_loss,
        learningRate: m.learning_rate,
        wallTimeSec: m.wall_time_sec,
        raw: m,
      })),
    });
    expect(stack.simulator.requestsTo('getJobMetrics').map((r) => r.path)).toEqual([
      `/v0.5/fine-tune/jobs/${EXAMPLE_JOB}/metrics`,
    ]);
  });

  it('asks for all entries by default (limit -1, offset 0)', async () => {
    expectData(
      await stack.query(`query { fineTuneJob(id: "${EXAMPLE_JOB}") { metrics { entries { step } } } }`),
    );
    expect(stack.simulator.requestsTo('getJobMetrics').map((r) => r.search)).toEqual(['?limit=-1&offset=0']);
  });

  it('pushes limit and offset to the upstream query string and returns that page', async () => {
    const data = expectData(
      await stack.query<{ fineTuneJob: { metrics: Metrics } }>(
        `query { fineTuneJob(id: "${EXAMPLE_JOB}") { metrics(limit: 1, offset: 1) { lastCheckpointStep entries { step loss } } } }`,
      ),
    );
    expect(stack.simulator.requestsTo('getJobMetrics').map((r) => r.search)).toEqual(['?limit=1&offset=1']);
    expect(data.fineTuneJob.metrics).toEqual({
      lastCheckpointStep: 600,
      entries: [{ step: 400, loss: 1.413 }],
    });
  });

  it('is not fetched when it is not asked for', async () => {
    expectData(await stack.query('query { fineTuneJobs { id status } }'));
    expect(stack.simulator.requestsTo('getJobMetrics')).toHaveLength(0);
  });

  it('makes one upstream call per distinct job and page for a list of jobs', async () => {
    const data = expectData(
      await stack.query<{ fineTuneJobs: { id: string; a: Metrics; b: Metrics; c: Metrics }[] }>(`query {
        fineTuneJobs(limit: 10) {
          id
          a: metrics(limit: 2) { entries { step } }
          b: metrics(limit: 2) { entries { loss } }
          c: metrics(limit: 1, offset: 1) { entries { step } }
        }
      }`),
    );
    expect(data.fineTuneJobs).toHaveLength(10);
    const calls = stack.simulator.requestsTo('getJobMetrics');
    expect(calls).toHaveLength(20);
    const expected = data.fineTuneJobs.flatMap((job) => [
      `/v0.5/fine-tune/jobs/${job.id}/metrics?limit=2&offset=0`,
      `/v0.5/fine-tune/jobs/${job.id}/metrics?limit=1&offset=1`,
    ]);
    expect(calls.map((c) => c.path + c.search).sort()).toEqual(expected.sort());
    // And each job got its own entries.
    for (const job of data.fineTuneJobs) {
      const stored = stack.simulator.store.metrics(acme(), job.id)!.entries;
      expect(job.a.entries.map((e) => e.step)).toEqual(stored.slice(0, 2).map((e) => e.step));
      expect(job.c.entries.map((e) => e.step)).toEqual(stored.slice(1, 2).map((e) => e.step));
    }
  });

  it('fetches the same metrics asked twice in one operation once', async () => {
    expectData(
      await stack.query(`query {
        a: fineTuneJob(id: "${EXAMPLE_JOB}") { metrics { entries { step } } }
        b: fineTuneJob(id: "${EXAMPLE_JOB}") { metrics(limit: -1, offset: 0) { lastCheckpointStep } }
        fineTuneJobs(limit: 50) { id metrics { entries { loss } } }
      }`),
    );
    const calls = stack.simulator.requestsTo('getJobMetrics');
    const acmeJobs = stack.simulator.store.list(acme(), null).length;
    // One per job of the list; the two by-id fields share the list's call for that job.
    expect(calls).toHaveLength(acmeJobs);
    expect(calls.filter((c) => c.path.includes(EXAMPLE_JOB))).toHaveLength(1);
  });

  it('does not share metrics between requests', async () => {
    const query = `query { fineTuneJob(id: "${EXAMPLE_JOB}") { metrics { entries { step } } } }`;
    await stack.query(query);
    await stack.query(query);
    expect(stack.simulator.requestsTo('getJobMetrics')).toHaveLength(2);
  });

  it.each([
    ['limit below -1', 'metrics(limit: -2)', 'limit'],
    ['a negative offset', 'metrics(offset: -1)', 'offset'],
  ])('rejects %s as BAD_USER_INPUT with no metrics call', async (_case, field, argument) => {
    const response = await stack.query(
      `query { fineTuneJob(id: "${EXAMPLE_JOB}") { id ${field} { entries { step } } } }`,
    );
    const error = expectErrorCode(response, 'BAD_USER_INPUT');
    expect(error.extensions?.argument).toBe(argument);
    expect(stack.simulator.requestsTo('getJobMetrics')).toHaveLength(0);
  });
});

describe('metrics drift', () => {
  it('shows a typed field of the wrong type as null and keeps every key in raw', async () => {
    const job = jobRecord(acme(), { status: 'RUNNING' });
    const entry = {
      step: '200',
      loss: 1.25,
      eval_loss: null,
      learning_rate: 'warmup',
      wall_time_sec: 5_000_000_000,
      grad_norm: 0.42,
      tokens: { seen: 1024 },
    };
    stack.simulator.store.put(acme(), job, [entry, { step: 4_000_000_000, loss: 0.9 }]);
    const data = expectData(
      await stack.query<{ fineTuneJob: { metrics: Metrics } }>(
        `query { fineTuneJob(id: "${job.id}") { metrics { lastCheckpointStep entries { ${ENTRY} } } } }`,
      ),
    );
    expect(data.fineTuneJob.metrics).toEqual({
      // The last step is past GraphQL's 32-bit Int: shown as missing, not as an error.
      lastCheckpointStep: null,
      entries: [
        {
          step: null,
          loss: 1.25,
          evalLoss: null,
          learningRate: null,
          wallTimeSec: 5_000_000_000,
          raw: entry,
        },
        {
          step: null,
          loss: 0.9,
          evalLoss: null,
          learningRate: null,
          wallTimeSec: null,
          raw: { step: 4_000_000_000, loss: 0.9 },
        },
      ],
    });
  });

  it('answers an empty page for a job without checkpoints', async () => {
    const job = jobRecord(acme(), { status: 'REGISTERED' });
    stack.simulator.store.put(acme(), job);
    const data = expectData(
      await stack.query<{ fineTuneJob: { metrics: Metrics } }>(
        `query { fineTuneJob(id: "${job.id}") { metrics { lastCheckpointStep entries { step } } } }`,
      ),
    );
    expect(data.fineTuneJob.metrics).toEqual({ lastCheckpointStep: null, entries: [] });
  });

  it('reports a metrics body of the wrong shape as UPSTREAM_BAD_RESPONSE on that field', async () => {
    stack.simulator.faults.set('getJobMetrics', { wrongShape: true, times: 1 });
    const response = await stack.query(
      `query { fineTuneJob(id: "${EXAMPLE_JOB}") { id metrics { entries { step } } } }`,
    );
    const error = expectErrorCode(response, 'UPSTREAM_BAD_RESPONSE');
    expect(error.path).toEqual(['fineTuneJob', 'metrics']);
    // metrics is non-null, so the error nulls its job (the nearest nullable field), not the response.
    expect(response.data).toEqual({ fineTuneJob: null });
  });

  it('in a list, a failed page makes data null: metrics and the list items are non-null', async () => {
    stack.simulator.faults.set('getJobMetrics', { status: 500, times: 1 });
    const response = await stack.query(
      'query { fineTuneJobs(limit: 3) { id metrics { entries { step } } } }',
    );
    const error = expectErrorCode(response, 'UPSTREAM_UNAVAILABLE');
    expect(error.path).toEqual(['fineTuneJobs', expect.any(Number), 'metrics']);
    expect(response.data).toBeNull();
  });

  it('fails only the failing job’s metrics page with UPSTREAM_UNAVAILABLE', async () => {
    stack.simulator.faults.set('getJobMetrics', { status: 500, times: 1 });
    const response = await stack.query<{ a: unknown; b: { metrics: Metrics } }>(`query {
      a: fineTuneJob(id: "${EXAMPLE_JOB}") { metrics(limit: 1) { entries { step } } }
      b: fineTuneJob(id: "${EXAMPLE_JOB}") { metrics(limit: 2) { entries { step } } }
    }`);
    const error = expectErrorCode(response, 'UPSTREAM_UNAVAILABLE');
    // Which page met the fault depends on dispatch order; exactly one field failed.
    const failed = error.path![0];
    const other = failed === 'a' ? 'b' : 'a';
    expect((response.data as Record<string, unknown>)[failed as string]).toBeNull();
    expect(
      (response.data as Record<string, { metrics: Metrics }>)[other]!.metrics.entries.length,
    ).toBeGreaterThan(0);
  });
});

describe('metrics concurrency', () => {
  let bounded: Stack;
  beforeAll(async () => {
    bounded = await startStack({ simulator: { jobsPerOrganization: 12 } });
  });
  afterAll(() => bounded.stop());

  it('keeps at most METRICS_CONCURRENCY (4) metrics calls in flight, and does use them', async () => {
    bounded.simulator.faults.set('getJobMetrics', { delayMs: 150 });
    bounded.simulator.resetRequests();
    const data = expectData(
      await bounded.query<{ fineTuneJobs: { metrics: Metrics }[] }>(
        'query { fineTuneJobs(limit: 12) { id metrics { entries { step } } } }',
      ),
    );
    expect(data.fineTuneJobs).toHaveLength(12);
    expect(bounded.simulator.requestsTo('getJobMetrics')).toHaveLength(12);
    expect(bounded.simulator.peakInFlight('getJobMetrics')).toBe(METRICS_CONCURRENCY);
  });

  it('allows 4 at a time by default', async () => {
    stack.simulator.faults.set('getJobMetrics', { delayMs: 150 });
    expectData(await stack.query('query { fineTuneJobs(limit: 12) { id metrics { entries { step } } } }'));
    expect(stack.simulator.requestsTo('getJobMetrics')).toHaveLength(12);
    expect(stack.simulator.peakInFlight('getJobMetrics')).toBe(4);
  });
});
