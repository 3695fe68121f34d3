// At run time one operation never makes more than limits.maxUpstreamCalls upstream calls nor
// returns more than limits.maxJobs jobs, whatever its cost estimate said: past either, one
// QUERY_LIMIT_EXCEEDED error that says which, and the calls past the bound are never sent.
// Counted at the simulator.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectData, expectErrorCode, startStack, type Stack } from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    simulator: { jobsPerOrganization: 300, providerExamples: false },
    config: { limits: { maxJobs: 500 } },
  });
});
afterAll(() => stack.stop());
beforeEach(() => stack.simulator.resetRequests());

describe('limits.maxUpstreamCalls (100)', () => {
  it("a list of every job with each job's metrics stops at 100 calls, with one error", async () => {
    // Priced as 100 jobs (QUERY_UNBOUNDED_LIST_SIZE), it fits the cost limit; it would be 301 calls.
    const response = await stack.query('{ fineTuneJobs { id metrics(limit: 0) { lastCheckpointStep } } }');
    const error = expectErrorCode(response, 'QUERY_LIMIT_EXCEEDED');
    expect(error.extensions).toMatchObject({ limit: 'upstreamCalls', max: 100 });
    expect(error.message).toMatch(/more than 100 calls/);
    expect(stack.simulator.requests.length).toBeLessThanOrEqual(100);
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
  });

  it('lets an operation within the bound through', async () => {
    const data = expectData(
      await stack.query<{ fineTuneJobs: unknown[] }>(
        '{ fineTuneJobs(limit: 50) { id metrics(limit: 0) { lastCheckpointStep } } }',
      ),
    );
    expect(data.fineTuneJobs).toHaveLength(50);
    expect(stack.simulator.requests).toHaveLength(51);
  });
});

describe('limits.maxJobs', () => {
  it('counts the jobs of every field together: two aliases of every job are past 500', async () => {
    const response = await stack.query('{ a: fineTuneJobs { id } b: fineTuneJobs { name } }');
    const error = expectErrorCode(response, 'QUERY_LIMIT_EXCEEDED');
    expect(error.extensions).toMatchObject({ limit: 'jobs', max: 500 });
    // The two aliases are one upstream call (the loader), and nothing more is asked.
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
  });

  it('fetches no more than 501 jobs in all, however many aliases ask for every job', async () => {
    // Fifteen distinct lists of (nearly) every job: 4,400 jobs if each were fetched whole.
    const aliases = Array.from({ length: 15 }, (_, i) => `a${i}: fineTuneJobs(offset: ${i}) { id }`).join(
      ' ',
    );
    const response = await stack.query(`{ ${aliases} }`);
    expect(expectErrorCode(response, 'QUERY_LIMIT_EXCEEDED').extensions).toMatchObject({ limit: 'jobs' });
    // The first asks for 501 and gets 300; the second for the 201 left, and it is over: the
    // other thirteen are never sent.
    const asked = stack.simulator
      .requestsTo('listJobs')
      .map((call) => new URLSearchParams(call.search).get('limit'));
    expect(asked).toEqual(['501', '201']);
  });

  it('still returns every job to a plain fineTuneJobs when there are fewer', async () => {
    const data = expectData(await stack.query<{ fineTuneJobs: unknown[] }>('{ fineTuneJobs { id } }'));
    expect(data.fineTuneJobs).toHaveLength(300);
  });
});
