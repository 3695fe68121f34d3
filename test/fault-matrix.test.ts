// Every fault the simulator can inject, on a list and on a single job: the client gets a
// well-formed GraphQL response with the documented code, and the gateway stays healthy (/healthz
// answers and the next ordinary query succeeds).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ErrorEnvelope, Fault, SimulatorRoute } from '../src/simulator/faults.js';
import { ACME_KEY, startStack, type Stack } from './harness.js';
import { expectWellFormed, postGraphQL } from './wire.js';

const TIMEOUT_MS = 300;
let stack: Stack;
let jobId: string;
beforeAll(async () => {
  stack = await startStack({
    config: { upstream: { timeoutMs: TIMEOUT_MS, maxRetryAfterMs: 1000 } },
  });
  jobId = stack.simulator.store.list(stack.simulator.store.organizations[0]!, null)[0]!.id;
});
afterAll(() => stack.stop());
beforeEach(() => {
  stack.simulator.faults.clear();
  stack.simulator.resetRequests();
});

const QUERIES: Record<'listJobs' | 'getJob', () => string> = {
  listJobs: () => 'query { fineTuneJobs(limit: 3) { id status upstreamStatus } }',
  getJob: () => `query { fineTuneJob(id: "${jobId}") { id status upstreamStatus } }`,
};

async function send(route: 'listJobs' | 'getJob', key = ACME_KEY) {
  const response = await postGraphQL(stack.gateway.url, QUERIES[route](), undefined, `Bearer ${key}`);
  expectWellFormed(response);
  return response;
}

/** The gateway is still fine: alive, and an ordinary query right after the fault succeeds. */
async function expectHealthy(route: 'listJobs' | 'getJob') {
  stack.simulator.faults.clear();
  expect((await fetch(new URL('/healthz', stack.gateway.url))).status).toBe(200);
  const response = await send(route);
  expect(response.body.errors, response.text).toBeUndefined();
  expect(response.body.data?.[route === 'listJobs' ? 'fineTuneJobs' : 'fineTuneJob']).toBeTruthy();
}

async function expectFault(route: 'listJobs' | 'getJob', fault: Fault, code: string) {
  stack.simulator.faults.set(route as SimulatorRoute, fault);
  const response = await send(route);
  const shown = `${JSON.stringify(fault)} →\n${response.text}`;
  expect(
    response.body.errors?.map((e) => e.extensions?.code),
    shown,
  ).toEqual([code]);
  expect(response.text, shown).not.toContain(ACME_KEY);
  await expectHealthy(route);
  return response.body.errors![0]!;
}

const STATUS_CODES: [number, string][] = [
  [400, 'BAD_USER_INPUT'],
  [401, 'UNAUTHENTICATED'],
  [403, 'FORBIDDEN'],
  [409, 'CONFLICT'],
  [413, 'BAD_USER_INPUT'],
  [422, 'BAD_USER_INPUT'],
  [429, 'UPSTREAM_RATE_LIMITED'],
  [500, 'UPSTREAM_UNAVAILABLE'],
  [502, 'UPSTREAM_UNAVAILABLE'],
  [503, 'UPSTREAM_UNAVAILABLE'],
  [504, 'UPSTREAM_UNAVAILABLE'],
  [418, 'UPSTREAM_BAD_RESPONSE'],
  [599, 'UPSTREAM_UNAVAILABLE'],
];
const ENVELOPES: ErrorEnvelope[] = ['current', 'legacy', 'older', 'text'];
const ROUTES = ['listJobs', 'getJob'] as const;

describe.each(ROUTES)('%s', (route) => {
  describe.each(ENVELOPES)('error statuses in the %s envelope', (envelope) => {
    it.each(STATUS_CODES)('%i → %s', async (status, code) => {
      const error = await expectFault(route, { status, envelope, echoKey: true }, code);
      const upstream = error.extensions?.upstream as Record<string, unknown>;
      expect(upstream.status).toBe(status);
      if (envelope === 'current') expect(upstream.errorUid).toMatch(/^err-/);
    });
  });

  it('404 → NOT_FOUND for a list, null for a single job', async () => {
    stack.simulator.faults.set(route, { status: 404 });
    const response = await send(route);
    if (route === 'listJobs') {
      expect(response.body.errors?.map((e) => e.extensions?.code)).toEqual(['NOT_FOUND']);
    } else {
      // data and errors only: the body also carries extensions.upstream (its upstream calls) in development.
      expect(response.body.data).toEqual({ fineTuneJob: null });
      expect(response.body.errors).toBeUndefined();
    }
    await expectHealthy(route);
  });

  it('429 with a Retry-After past the cap → UPSTREAM_RATE_LIMITED with retryAfter, not retried', async () => {
    const error = await expectFault(route, { status: 429, retryAfter: 120 }, 'UPSTREAM_RATE_LIMITED');
    expect(error.extensions?.retryAfter).toBe(120);
    expect(stack.simulator.requestsTo(route)).toHaveLength(2); // the faulted call and the health check
  });

  it('429 or 503 with a short Retry-After (seconds or HTTP date) → retried, then data', async () => {
    for (const retryAfter of [0, new Date(Date.now() - 1000).toUTCString()]) {
      for (const status of [429, 503]) {
        stack.simulator.resetRequests();
        stack.simulator.faults.set(route, { status, retryAfter, times: 1 });
        const response = await send(route);
        expect(response.body.errors, response.text).toBeUndefined();
        expect(stack.simulator.requestsTo(route)).toHaveLength(2);
      }
    }
  });

  it('a 5xx that lasts past the retries → UPSTREAM_UNAVAILABLE after 1 + upstream.retries calls', async () => {
    await expectFault(route, { status: 502 }, 'UPSTREAM_UNAVAILABLE');
    expect(stack.simulator.requestsTo(route)).toHaveLength(3 + 1);
  });

  it('a response slower than upstream.timeoutMs → UPSTREAM_TIMEOUT', async () => {
    // The upstream never answers: only the timeout ends the call.
    let release!: () => void;
    const until = new Promise<void>((resolve) => (release = resolve));
    try {
      await expectFault(route, { until, times: 1 }, 'UPSTREAM_TIMEOUT');
    } finally {
      release();
    }
  });

  it.each(['before', 'after'] as const)(
    'a connection dropped %s handling → UPSTREAM_UNAVAILABLE',
    async (drop) => {
      await expectFault(route, { drop }, 'UPSTREAM_UNAVAILABLE');
    },
  );

  it('a dropped connection that recovers on retry → data', async () => {
    stack.simulator.faults.set(route, { drop: 'before', times: 1 });
    const response = await send(route);
    expect(response.body.errors, response.text).toBeUndefined();
  });

  it('malformed JSON → UPSTREAM_BAD_RESPONSE', async () => {
    await expectFault(route, { malformedJson: true }, 'UPSTREAM_BAD_RESPONSE');
  });

  it('valid JSON of the wrong shape → UPSTREAM_BAD_RESPONSE', async () => {
    await expectFault(route, { wrongShape: true }, 'UPSTREAM_BAD_RESPONSE');
  });

  it.each([
    ['an HTML page', '<html><body>Service temporarily down</body></html>'],
    ['an empty body', ''],
    ['null', 'null'],
    ['a number', '42'],
  ])('a 200 with %s → UPSTREAM_BAD_RESPONSE', async (_name, body) => {
    await expectFault(route, { body }, 'UPSTREAM_BAD_RESPONSE');
  });

  it('an unknown job status → data with UNKNOWN and the upstream string', async () => {
    stack.simulator.faults.set(route, { unknownStatus: 'QUEUED_FOR_GPU' });
    const response = await send(route);
    expect(response.body.errors, response.text).toBeUndefined();
    const data = response.body.data!;
    const job = (route === 'listJobs' ? (data.fineTuneJobs as unknown[])[0] : data.fineTuneJob) as Record<
      string,
      unknown
    >;
    expect(job).toMatchObject({ status: 'UNKNOWN', upstreamStatus: 'QUEUED_FOR_GPU' });
    await expectHealthy(route);
  });

  it('an upstream that echoes the key in its error → no key in the response or the logs', async () => {
    for (const envelope of ENVELOPES) {
      await expectFault(route, { status: 500, envelope, echoKey: true }, 'UPSTREAM_UNAVAILABLE');
    }
    const unknownKey = 'sk-live-0123456789abcdef';
    stack.simulator.faults.set(route, { echoKey: true });
    const response = await send(route, unknownKey);
    expect(response.body.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    expect(response.text).not.toContain(unknownKey);
    for (const line of stack.logLines) {
      expect(line).not.toContain(ACME_KEY);
      expect(line).not.toContain(unknownKey);
    }
  });
});
