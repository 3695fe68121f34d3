// Every way the upstream can fail comes back as a well-formed GraphQL error with a stable code,
// and a failure in one field loses nothing else the operation asked for.
import { createServer } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/logging.js';
import { startGateway } from '../src/server.js';
import type { Fault } from '../src/simulator/faults.js';
import { ACME_KEY, configFrom, expectData, expectErrorCode, startStack, type Stack } from './harness.js';

const LIST = 'query { fineTuneJobs(limit: 2) { id } }';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    config: { upstream: { timeoutMs: 300, maxRetryAfterMs: 1000, retries: 2 } },
  });
});
afterAll(() => stack.stop());
beforeEach(() => {
  stack.simulator.faults.clear();
  stack.simulator.resetRequests();
});

describe('upstream error statuses and envelopes', () => {
  const cases: [string, Fault, string, Record<string, unknown>][] = [
    ['401, legacy envelope', { status: 401, envelope: 'legacy' }, 'UNAUTHENTICATED', { status: 401 }],
    [
      '403, current envelope',
      { status: 403, code: 'org_forbidden' },
      'FORBIDDEN',
      { status: 403, code: 'org_forbidden' },
    ],
    [
      '400, current envelope',
      { status: 400, code: 'invalid_limit' },
      'BAD_USER_INPUT',
      { status: 400, code: 'invalid_limit' },
    ],
    [
      '422, older envelope, with the field it is about',
      { status: 422, envelope: 'older', code: 'ERROR_CODE', details: { field: 'additional_context' } },
      'BAD_USER_INPUT',
      { status: 422, code: 'ERROR_CODE', field: 'additional_context' },
    ],
    ['413', { status: 413 }, 'BAD_USER_INPUT', { status: 413 }],
    ['500', { status: 500 }, 'UPSTREAM_UNAVAILABLE', { status: 500 }],
    ['502 HTML page (not JSON)', { status: 502, envelope: 'text' }, 'UPSTREAM_UNAVAILABLE', { status: 502 }],
    ['418, outside the contract', { status: 418 }, 'UPSTREAM_BAD_RESPONSE', { status: 418 }],
  ];
  it.each(cases)('%s', async (_name, fault, code, upstream) => {
    stack.simulator.faults.set('listJobs', fault);
    const error = expectErrorCode(await stack.query(LIST), code);
    expect(error.extensions?.upstream).toMatchObject({ operation: 'GET /fine-tune/jobs', ...upstream });
    expect(error.path).toEqual(['fineTuneJobs']);
  });

  it("carries the upstream's code, error_uid and suggestion (what support asks for)", async () => {
    stack.simulator.faults.set('listJobs', { status: 400, code: 'invalid_file_type' });
    const error = expectErrorCode(await stack.query(LIST), 'BAD_USER_INPUT');
    const upstream = error.extensions?.upstream as Record<string, unknown>;
    expect(upstream.code).toBe('invalid_file_type');
    expect(upstream.errorUid).toMatch(/^err-[0-9a-f-]{36}$/);
    expect(error.message).toContain('Simulated failure (400)');
  });
});

describe('retries of reads', () => {
  it.each([502, 503, 504])('retries a GET after %i and succeeds', async (status) => {
    stack.simulator.faults.set('listJobs', { status, times: 1 });
    expectData(await stack.query(LIST));
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(2);
  });

  it('does not retry a 500 (not a transient status)', async () => {
    stack.simulator.faults.set('listJobs', { status: 500 });
    expectErrorCode(await stack.query(LIST), 'UPSTREAM_UNAVAILABLE');
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
  });

  it('gives up after the configured retries with UPSTREAM_UNAVAILABLE', async () => {
    // A gateway of its own: the earlier tests' failed attempts would begin the run that stops
    // retries (three failures in a row, across calls).
    const own = await startStack({ config: { upstream: { retries: 2 } } });
    try {
      own.simulator.faults.set('listJobs', { status: 503 });
      expectErrorCode(await own.query(LIST), 'UPSTREAM_UNAVAILABLE');
      expect(own.simulator.requestsTo('listJobs')).toHaveLength(3);
    } finally {
      await own.stop();
    }
  });

  it('honours a short Retry-After on 429, then succeeds', async () => {
    stack.simulator.faults.set('listJobs', { status: 429, retryAfter: 0, times: 1 });
    expectData(await stack.query(LIST));
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(2);
  });

  it('does not wait for a Retry-After beyond the cap: UPSTREAM_RATE_LIMITED with retryAfter', async () => {
    stack.simulator.faults.set('listJobs', { status: 429, retryAfter: 120 });
    const error = expectErrorCode(await stack.query(LIST), 'UPSTREAM_RATE_LIMITED');
    expect(error.extensions?.retryAfter).toBe(120);
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
  });

  describe('with a cap of 60 s', () => {
    let patient: Stack;
    beforeAll(async () => {
      patient = await startStack({ config: { upstream: { maxRetryAfterMs: 60000, retries: 2 } } });
    });
    afterAll(() => patient.stop());

    it('reads no delay from other rate-limit headers: without Retry-After, the backoff applies', async () => {
      // ky would wait for RateLimit-Reset (30 s, past this test's time), a delay the cap never saw.
      patient.simulator.faults.set('listJobs', {
        status: 429,
        headers: { 'ratelimit-reset': '30', 'x-ratelimit-reset': '30' },
        times: 2,
      });
      expectData(await patient.query(LIST));
      expect(patient.simulator.requestsTo('listJobs')).toHaveLength(3);
    });

    it('compares a fractional Retry-After with the cap to the millisecond', async () => {
      const halfCap = await startStack({ config: { upstream: { maxRetryAfterMs: 1500 } } });
      try {
        // 1.2 s is within 1,500 ms; rounded up to whole seconds it would not be.
        halfCap.simulator.faults.set('listJobs', { status: 503, retryAfter: '1.2', times: 1 });
        expectData(await halfCap.query(LIST));
        expect(halfCap.simulator.requestsTo('listJobs')).toHaveLength(2);
      } finally {
        await halfCap.stop();
      }
    });
  });

  it("waits for the older envelope's details.retry_after when no Retry-After header came", async () => {
    stack.simulator.faults.set('listJobs', {
      status: 429,
      envelope: 'older',
      details: { retry_after: 1 },
      times: 1,
    });
    const started = performance.now();
    expectData(await stack.query(LIST));
    // The backoff alone would have retried within 300 ms.
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(2);
  });

  it.each([120, '120'])(
    'does not wait for a details.retry_after (%j) beyond the cap either, and reports it',
    async (retryAfter) => {
      stack.simulator.faults.set('listJobs', {
        status: 429,
        envelope: 'older',
        details: { retry_after: retryAfter },
      });
      const error = expectErrorCode(await stack.query(LIST), 'UPSTREAM_RATE_LIMITED');
      expect(error.extensions?.retryAfter).toBe(120);
      expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
    },
  );

  it('retries a dropped connection', async () => {
    stack.simulator.faults.set('listJobs', { drop: 'before', times: 1 });
    expectData(await stack.query(LIST));
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(2);
  });

  it('reports a connection dropped on every try as UPSTREAM_UNAVAILABLE', async () => {
    stack.simulator.faults.set('listJobs', { drop: 'before' });
    expectErrorCode(await stack.query(LIST), 'UPSTREAM_UNAVAILABLE');
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(3);
  });
});

describe('slow and malformed answers', () => {
  it('times out a slow upstream with UPSTREAM_TIMEOUT', async () => {
    // An upstream that never answers: only the timeout ends the call (and it is not retried).
    let release!: () => void;
    const until = new Promise<void>((resolve) => (release = resolve));
    stack.simulator.faults.set('listJobs', { until, times: 1 });
    try {
      expectErrorCode(await stack.query(LIST), 'UPSTREAM_TIMEOUT');
      expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
    } finally {
      release();
    }
  });

  it('reports a status past 599 as UPSTREAM_BAD_RESPONSE, not retried', async () => {
    stack.simulator.faults.set('listJobs', { status: 600 });
    const error = expectErrorCode(await stack.query(LIST), 'UPSTREAM_BAD_RESPONSE');
    expect(error.message).toMatch(/status 600/);
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
  });

  it('reports malformed JSON as UPSTREAM_BAD_RESPONSE', async () => {
    stack.simulator.faults.set('listJobs', { malformedJson: true });
    expectErrorCode(await stack.query(LIST), 'UPSTREAM_BAD_RESPONSE');
  });

  it('reports JSON of the wrong shape as UPSTREAM_BAD_RESPONSE', async () => {
    stack.simulator.faults.set('getJob', { wrongShape: true });
    const acme = stack.simulator.store.organizations[0]!;
    const [job] = stack.simulator.store.list(acme, null);
    expectErrorCode(
      await stack.query(`query { fineTuneJob(id: "${job!.id}") { id } }`),
      'UPSTREAM_BAD_RESPONSE',
    );
  });

  it('keeps the fields that worked when another field fails', async () => {
    stack.simulator.faults.set('getJob', { status: 503 });
    const response = await stack.query<{ fineTuneJobs: unknown[]; fineTuneJob: null }>(
      'query { fineTuneJobs(limit: 2) { id } fineTuneJob(id: "ftj-anything") { id } }',
    );
    expect(response.data?.fineTuneJobs).toHaveLength(2);
    expect(response.data?.fineTuneJob).toBeNull();
    expectErrorCode(response, 'UPSTREAM_UNAVAILABLE');
  });
});

describe('an upstream that is not there', () => {
  it('answers UPSTREAM_UNAVAILABLE when the connection is refused', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as { port: number };
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const url = `http://127.0.0.1:${port}/v0.5`;
    const config = configFrom(
      { upstream: { backoffLimitMs: 10 } },
      { PORT: '0', METRICS_PORT: '0', HOST: '127.0.0.1', ATAI_API_URL: url },
    );
    const gateway = await startGateway({
      config,
      upstreamBaseUrl: url,
      serverApiKey: ACME_KEY,
      logger: createLogger('silent'),
    });
    try {
      const response = await fetch(gateway.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: LIST }),
      });
      expect(response.status).toBe(200);
      const body = (await response.json()) as {
        errors: { extensions: { code: string; upstream: unknown } }[];
      };
      expect(body.errors[0]!.extensions.code).toBe('UPSTREAM_UNAVAILABLE');
    } finally {
      await gateway.stop();
    }
  });
});
