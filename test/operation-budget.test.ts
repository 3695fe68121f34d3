// One operation never makes more than limits.maxUpstreamCalls upstream calls nor returns more
// than limits.maxJobs jobs. The calls it may make are estimated before it runs, a batch's
// operations together: over the bound, it is refused before its first call. At run time, past
// either bound, one QUERY_LIMIT_EXCEEDED error that says which, and the calls past the bound are
// never sent. Counted at the simulator.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACME_KEY, expectData, expectErrorCode, startStack, type Stack } from './harness.js';
import { connect } from './live-client.js';

let stack: Stack;
/** The gateway at its default settings. */
let defaults: Stack;
beforeAll(async () => {
  const simulator = { jobsPerOrganization: 300, providerExamples: false };
  [stack, defaults] = await Promise.all([
    startStack({ simulator, config: { limits: { maxJobs: 500 } } }),
    startStack({ simulator }),
  ]);
});
afterAll(() => Promise.all([stack.stop(), defaults.stop()]));
beforeEach(() => {
  stack.simulator.resetRequests();
  defaults.simulator.resetRequests();
});

const METRICS = 'metrics(limit: 0) { lastCheckpointStep }';

async function postBatch(queries: string[]) {
  const response = await fetch(defaults.gateway.url, {
    method: 'POST',
    headers: { authorization: `Bearer ${ACME_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(queries.map((query) => ({ query }))),
  });
  return {
    status: response.status,
    answers: (await response.json()) as {
      data?: Record<string, unknown[]>;
      errors?: { message: string; extensions: Record<string, unknown> }[];
    }[],
  };
}

describe('limits.maxUpstreamCalls (100), estimated before the first call', () => {
  it("refuses a list without a limit with each job's metrics, and calls nothing", async () => {
    // A list without a `limit` may hold limits.maxJobs (5,000) jobs: 1 + 5,000 calls. It used to
    // pass (priced as 100 jobs) and make 100 calls before failing.
    const response = await defaults.query(`{ fineTuneJobs { id ${METRICS} } }`);
    expect(response.status).toBe(400);
    expect(response.data ?? null).toBeNull();
    const error = expectErrorCode(response, 'QUERY_LIMIT_EXCEEDED');
    expect(error.extensions).toMatchObject({ limit: 'upstreamCalls', calls: 5001, max: 100 });
    expect(error.message).toMatch(/give lists with metrics a `limit`/);
    expect(defaults.simulator.requests).toEqual([]);
  });

  it('keeps refusing a document after a request of it whose variables did not coerce', async () => {
    // The parsed document, and what is remembered of its estimate, are shared by every client: a
    // bad variable (here one that sizes nothing) must not leave it unchecked for the next request.
    // One whose lists are sized by literals, one sized by a variable that keeps its value.
    const literal = `query L($s: [FineTuneJobStatus!]) { fineTuneJobs(statuses: $s) { id ${METRICS} } }`;
    const sized = `query V($s: [FineTuneJobStatus!], $n: Int) { fineTuneJobs(limit: $n, statuses: $s) { id ${METRICS} } }`;
    for (const document of [literal, sized]) {
      const bad = await defaults.query(document, { s: 5, n: -1 });
      expectErrorCode(bad, 'BAD_USER_INPUT');
      const good = await defaults.query(document, { s: ['RUNNING'], n: -1 });
      expect(good.status).toBe(400);
      expect(expectErrorCode(good, 'QUERY_LIMIT_EXCEEDED').extensions).toMatchObject({
        limit: 'upstreamCalls',
      });
    }
    expect(defaults.simulator.requests).toEqual([]);
  });

  it("lets the most an operation may make through: 99 jobs and each job's metrics, 100 calls", async () => {
    const data = expectData(
      await defaults.query<{ fineTuneJobs: unknown[] }>(`{ fineTuneJobs(limit: 99) { id ${METRICS} } }`),
    );
    expect(data.fineTuneJobs).toHaveLength(99);
    expect(defaults.simulator.requests).toHaveLength(100);

    defaults.simulator.resetRequests();
    const refused = await defaults.query(`{ fineTuneJobs(limit: 100) { id ${METRICS} } }`);
    expect(expectErrorCode(refused, 'QUERY_LIMIT_EXCEEDED').extensions).toMatchObject({ calls: 101 });
    expect(defaults.simulator.requests).toEqual([]);

    // A job by id with its metrics: two calls.
    const [job] = defaults.simulator.store.list(defaults.simulator.store.organizations[0]!, null);
    expectData(await defaults.query(`{ fineTuneJob(id: "${job!.id}") { id ${METRICS} } }`));
    expect(defaults.simulator.requests).toHaveLength(2);
  });

  it('sizes a list by its limit given as a variable, and a page of the connection by first', async () => {
    const byVariable = `query ($n: Int) { fineTuneJobs(limit: $n) { ${METRICS} } }`;
    const refused = await defaults.query(byVariable, { n: 150 });
    expect(expectErrorCode(refused, 'QUERY_LIMIT_EXCEEDED').extensions).toMatchObject({ calls: 151 });
    const page = await defaults.query(
      `{ fineTuneJobsConnection(first: 100) { edges { node { ${METRICS} } } } }`,
    );
    expect(expectErrorCode(page, 'QUERY_LIMIT_EXCEEDED').extensions).toMatchObject({ calls: 101 });
    expect(defaults.simulator.requests).toEqual([]);
    expectData(await defaults.query(byVariable, { n: 5 }));
    expect(defaults.simulator.requests).toHaveLength(6);
  });

  it('counts aliases together: two lists of 60 jobs with their metrics are refused', async () => {
    const response = await defaults.query(
      `{ a: fineTuneJobs(limit: 60) { ${METRICS} } b: fineTuneJobs(limit: 60, offset: 60) { ${METRICS} } }`,
    );
    expect(response.status).toBe(400);
    expect(expectErrorCode(response, 'QUERY_LIMIT_EXCEEDED').extensions).toMatchObject({
      limit: 'upstreamCalls',
      calls: 122,
    });
    expect(defaults.simulator.requests).toEqual([]);
  });

  it("counts a batch's operations together, and refuses all of them before any call", async () => {
    const { status, answers } = await postBatch([
      `{ a: fineTuneJobs(limit: 60) { ${METRICS} } }`,
      `{ b: fineTuneJobs(limit: 60, offset: 60) { ${METRICS} } }`,
    ]);
    expect(status).toBe(400);
    for (const answer of answers) {
      expect(answer.data).toBeUndefined();
      expect(answer.errors).toHaveLength(1);
      expect(answer.errors![0]!.extensions).toMatchObject({
        code: 'QUERY_LIMIT_EXCEEDED',
        limit: 'upstreamCalls',
        calls: 122,
        max: 100,
      });
    }
    expect(defaults.simulator.requests).toEqual([]);

    // Two of 40 jobs fit: 82 calls.
    const fitting = await postBatch([
      `{ a: fineTuneJobs(limit: 40) { ${METRICS} } }`,
      `{ b: fineTuneJobs(limit: 40, offset: 40) { ${METRICS} } }`,
    ]);
    expect(fitting.status).toBe(200);
    expect(fitting.answers.map((answer) => answer.errors)).toEqual([undefined, undefined]);
    expect(defaults.simulator.requests).toHaveLength(82);
  });

  it('refuses the same over WebSocket', async () => {
    const live = connect(defaults.gateway.url, ACME_KEY);
    try {
      const sub = live.subscribe(`{ fineTuneJobs { id ${METRICS} } }`);
      await sub.finished;
      const failure = JSON.stringify(sub.failure);
      expect(failure).toContain('QUERY_LIMIT_EXCEEDED');
      expect(failure).toContain('"limit":"upstreamCalls"');
    } finally {
      await live.dispose();
    }
    expect(defaults.simulator.requests).toEqual([]);
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
