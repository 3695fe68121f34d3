// Upstream protection: a circuit breaker that fails fast while the upstream is down and probes
// it back, and a bound on concurrent upstream requests.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { gatewayConfigSchema, type GatewayConfigFile } from '../src/config.js';
import { expectData, expectErrorCode, metric, startStack, type Stack } from './harness.js';

const HALF_OPEN_MS = 300;
const LIST = 'query { fineTuneJobs(limit: 1) { id } }';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

function breakerStack() {
  return startStack({
    config: {
      upstream: {
        retries: 0,
        breaker: { failureRate: 0.5, windowMs: 5000, minCalls: 3, halfOpenMs: HALF_OPEN_MS },
      },
    },
  });
}

/** The gateway's own defaults where the harness changes them (it turns the breaker off). */
function atDefaults(): GatewayConfigFile {
  const { upstream } = gatewayConfigSchema.parse({});
  return {
    upstream: {
      backoffLimitMs: upstream.backoffLimitMs,
      breaker: { minCalls: upstream.breaker.minCalls, failuresInARow: upstream.breaker.failuresInARow },
    },
  };
}

async function readyStatus(s: Stack) {
  const response = await fetch(new URL('/readyz', s.gateway.url));
  return { status: response.status, body: (await response.json()) as Record<string, string> };
}

describe('circuit breaker', () => {
  it('opens when most calls in the window fail, then fails fast with no upstream request', async () => {
    const s = (stack = await breakerStack());
    s.simulator.faults.set('listJobs', { status: 503 });
    for (let i = 0; i < 3; i++) expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE');
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(3);

    // Failing fast: no request reaches the upstream, whatever the clock says.
    const error = expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE');
    expect(error.extensions?.upstream).toMatchObject({ circuit: 'open' });
    expect(error.message).toMatch(/failing/);
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(3);

    // Liveness is unaffected; readiness says why the gateway cannot serve.
    expect((await fetch(new URL('/healthz', s.gateway.url))).status).toBe(200);
    expect(await readyStatus(s)).toEqual({
      status: 503,
      body: { status: 'not ready', upstream: 'circuit open' },
    });
  });

  it('probes the upstream after the half-open delay and closes when it has recovered', async () => {
    const s = (stack = await breakerStack());
    s.simulator.faults.set('listJobs', { status: 502 });
    for (let i = 0; i < 4; i++) expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE');
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(3);

    s.simulator.faults.clear();
    await sleep(HALF_OPEN_MS + 50);
    expectData(await s.query(LIST));
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(4);
    expectData(await s.query(LIST));
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(5);
    expect((await readyStatus(s)).status).toBe(200);
  });

  it('stays open when the probe fails, and tries again after another delay', async () => {
    const s = (stack = await breakerStack());
    s.simulator.faults.set('listJobs', { drop: 'before' });
    for (let i = 0; i < 3; i++) expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE');
    await sleep(HALF_OPEN_MS + 50);
    expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE'); // the probe
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(4);
    expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE'); // open again: no request
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(4);

    s.simulator.faults.clear();
    await sleep(HALF_OPEN_MS + 50);
    expectData(await s.query(LIST));
  });

  it('opens on timeouts too', async () => {
    const s = (stack = await startStack({
      config: { upstream: { retries: 0, timeoutMs: 100, breaker: { minCalls: 2, halfOpenMs: 5000 } } },
    }));
    s.simulator.faults.set('listJobs', { delayMs: 400 });
    for (let i = 0; i < 2; i++) expectErrorCode(await s.query(LIST), 'UPSTREAM_TIMEOUT');
    expect(expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE').extensions?.upstream).toMatchObject({
      circuit: 'open',
    });
  });

  it('opens against a dead upstream at any traffic: every attempt counts, retries included', async () => {
    // One client at a time, the default breaker settings: twenty queries that each fail after
    // their retries reach the upstream fewer than twenty times.
    const s = (stack = await startStack({ config: atDefaults() }));
    s.simulator.faults.set('listJobs', { status: 503 });
    for (let i = 0; i < 20; i++) expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE');
    expect(s.simulator.requestsTo('listJobs').length).toBeLessThan(20);
    // The metric counts the attempts that were sent, not the calls the open circuit refused.
    expect(await metric(s, 'gateway_upstream_requests_total')).toBe(s.simulator.requests.length);
    expect(await readyStatus(s)).toEqual({
      status: 503,
      body: { status: 'not ready', upstream: 'circuit open' },
    });
  });

  it('does not retry a write either while the recent attempts all failed', async () => {
    // Three reads fail in a row (one call's attempts): a create whose answer is then lost (503)
    // is sent once, not three times, and read back (that read answers, and ends the run).
    const s = (stack = await startStack({ config: atDefaults() }));
    s.simulator.faults.set('listJobs', { status: 503 });
    expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE');
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(3);
    s.simulator.faults.set('createJob', { status: 503 });
    const create = `mutation ($input: CreateFineTuneJobInput!) { createFineTuneJob(input: $input) { id } }`;
    const input = {
      name: 'one-send',
      model: 'Newton::c2_4_7b_251215a172f6d7',
      datasets: [{ name: 'training-set', split: 'train', fileIds: ['file-abc123'] }],
    };
    const response = await s.query(create, { input });
    expectErrorCode(response, 'UPSTREAM_UNAVAILABLE');
    expect(s.simulator.requestsTo('createJob')).toHaveLength(1);
  });

  it(
    'after a healthy period, opens on a run of failed attempts with no retries, and closes once the upstream is back',
    { timeout: 60_000 },
    async () => {
      // The defaults throughout, the half-open delay (10 s) included.
      const s = (stack = await startStack({ config: atDefaults() }));
      for (let i = 0; i < 120; i++) expectData(await s.query(LIST));
      const healthy = s.simulator.requestsTo('listJobs').length;
      const sentSince = () => s.simulator.requestsTo('listJobs').length - healthy;

      // The successes in the window do not keep the circuit closed: five failed attempts in
      // a row open it (UPSTREAM_BREAKER_FAILURES_IN_A_ROW). The first query makes its three
      // attempts; then three have failed in a row, as many as one call may send, and the next
      // queries are not retried.
      s.simulator.faults.set('listJobs', { status: 503 });
      expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE');
      expect(sentSince()).toBe(3);
      expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE');
      expect(sentSince()).toBe(4);
      expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE');
      expect(sentSince()).toBe(5);
      for (let i = 3; i < 20; i++) {
        const error = expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE');
        expect(error.extensions?.upstream).toMatchObject({ circuit: 'open' });
      }
      expect(sentSince()).toBe(5);
      expect(await metric(s, 'gateway_upstream_retries_total')).toBe(2);
      expect(await metric(s, 'gateway_upstream_circuit_state')).toBe(2);

      // The upstream recovers: queries fail fast, reaching nothing, until the half-open delay
      // has passed; then one probes it, answers, and closes the circuit.
      s.simulator.faults.clear();
      for (;;) {
        const response = await s.query(LIST);
        if (!response.errors) break;
        expect(expectErrorCode(response, 'UPSTREAM_UNAVAILABLE').extensions?.upstream).toMatchObject({
          circuit: 'open',
        });
        expect(sentSince()).toBe(5);
        await sleep(250);
      }
      expect(sentSince()).toBe(6);
      expect(await metric(s, 'gateway_upstream_circuit_state')).toBe(0);
      expect((await readyStatus(s)).status).toBe(200);

      // The run is over: a read is retried again through a passing failure.
      s.simulator.faults.set('listJobs', { status: 503, times: 2 });
      expectData(await s.query(LIST));
      expect(sentSince()).toBe(9);
    },
  );

  it("never opens on a caller's errors (4xx, unknown jobs, rate limits)", async () => {
    const s = (stack = await breakerStack());
    for (const status of [400, 401, 403, 404, 409, 422, 429]) {
      s.simulator.faults.set('listJobs', { status, retryAfter: 600 });
      await s.query(LIST);
    }
    s.simulator.faults.clear();
    for (let i = 0; i < 5; i++) await s.query('query { fineTuneJob(id: "no-such-job") { id } }');
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(7);
    expect(s.simulator.requestsTo('getJob')).toHaveLength(5);
    expectData(await s.query(LIST));
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(8);
  });

  it('stays closed at a low failure rate, and below upstream.breaker.minCalls', async () => {
    const s = (stack = await breakerStack());
    // Two failures alone: too few calls to judge.
    s.simulator.faults.set('listJobs', { status: 500, times: 2 });
    for (let i = 0; i < 2; i++) expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE');
    // Then one failure in four: 5 of 14 calls failed, under half.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 3; i++) expectData(await s.query(LIST));
      s.simulator.faults.set('listJobs', { status: 500, times: 1 });
      expectErrorCode(await s.query(LIST), 'UPSTREAM_UNAVAILABLE');
    }
    expectData(await s.query(LIST));
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(15);
  });
});

/** Reads `count` different jobs by id at once, each upstream answer `delayMs` late. */
function readJobsAtOnce(s: Stack, count: number, delayMs: number) {
  const acme = s.simulator.store.organizations[0]!;
  const ids = s.simulator.store
    .list(acme, null)
    .slice(0, count)
    .map((j) => j.id);
  s.simulator.faults.set('getJob', { delayMs });
  return Promise.all(ids.map((id) => s.query(`query { fineTuneJob(id: "${id}") { id } }`)));
}

describe('concurrency bound', () => {
  it('keeps at most upstream.maxConcurrency requests in flight; the queue waits', async () => {
    const s = (stack = await startStack({
      config: { upstream: { maxConcurrency: 2, maxQueue: 10 } },
    }));
    const responses = await readJobsAtOnce(s, 6, 200);
    for (const response of responses) expectData(response);
    // Six calls, never more than two at the upstream at once: the others waited.
    expect(s.simulator.peakInFlight('getJob')).toBe(2);
    expect(s.simulator.requestsTo('getJob')).toHaveLength(6);
  });

  it('times an attempt from when it is sent: waiting for a slot is neither a timeout nor a failure', async () => {
    const s = (stack = await startStack({
      config: {
        upstream: {
          maxConcurrency: 1,
          maxQueue: 20,
          timeoutMs: 1000,
          breaker: { minCalls: 3, halfOpenMs: 30000 },
        },
      },
    }));
    // Twelve 100 ms answers one at a time: the last waits about 1.1 s for its slot, past the
    // timeout, yet each attempt takes a tenth of it.
    const responses = await readJobsAtOnce(s, 12, 100);
    for (const response of responses) expectData(response);
    expect(s.simulator.requestsTo('getJob')).toHaveLength(12);
    expect(s.simulator.peakInFlight('getJob')).toBe(1);
    expect((await readyStatus(s)).status).toBe(200);
  });

  it('fails fast with UPSTREAM_UNAVAILABLE once the queue is full', async () => {
    const s = (stack = await startStack({ config: { upstream: { maxConcurrency: 2, maxQueue: 1 } } }));
    const responses = await readJobsAtOnce(s, 5, 300);
    const served = responses.filter((r) => !r.errors);
    const refused = responses.filter((r) => r.errors);
    expect(served).toHaveLength(3);
    expect(refused).toHaveLength(2);
    for (const response of refused) {
      expect(expectErrorCode(response, 'UPSTREAM_UNAVAILABLE').extensions?.upstream).toMatchObject({
        overloaded: true,
      });
    }
    expect(s.simulator.requestsTo('getJob')).toHaveLength(3);
  });

  it('never opens the circuit on its own refusals: the upstream was never asked', async () => {
    const s = (stack = await startStack({
      config: {
        upstream: {
          maxConcurrency: 1,
          maxQueue: 0,
          breaker: { failureRate: 0.5, minCalls: 3, halfOpenMs: 30000 },
        },
      },
    }));
    const responses = await readJobsAtOnce(s, 6, 200);
    // One served, five refused by the bound: five of six "failed", far past the breaker's rate.
    expect(responses.filter((r) => r.errors)).toHaveLength(5);
    s.simulator.faults.clear();
    expectData(await s.query(LIST));
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(1);
    expect((await readyStatus(s)).status).toBe(200);
  });
});
