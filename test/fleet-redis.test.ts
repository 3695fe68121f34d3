// A fleet on a real Redis: redis-server (Debian's) on a free loopback port, two gateways on one
// simulator with REDIS_URL set (and a third in a process of its own, to be SIGKILLed). What one
// instance caches, registers (APQ) or polls serves the other; a write through one empties the
// other's answers; the poller's instance stopped or killed is taken over with no change missed;
// Redis killed, paused or absent at start costs no client an error, and the fleet mode comes
// back with it. Everything waits on events and counters, never on the clock.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createClient } from '@redis/client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, type GatewayConfigFile } from '../src/config.js';
import type { SimulatedOrganization } from '../src/simulator/store.js';
import { startSimulator, type RunningSimulator } from '../src/simulator/server.js';
import {
  ACME_KEY,
  GLOBEX_KEY,
  configFrom,
  expectData,
  metric,
  startGatewayOn,
  untilMetric,
  type Stack,
} from './harness.js';
import { writeConfigFile } from './entry-point-process.js';
import { jobRecord } from './jobs.js';
import { connect, waitUntil, type LiveSubscription } from './live-client.js';
import { freePort, startRedis, stopRedis } from './redis-server.js';

const TTL_MS = 600_000;
const ACME_SECOND_KEY = 'sim-acme-second-key';
// Long enough that a busy machine's pauses do not cost a leader its lease (1.5 intervals,
// renewed every half interval: an event loop would have to stall for a whole second).
const POLL_MS = 1_000;
const JOBS = `query { fineTuneJobs(limit: 50) { id status } }`;

let redisPort: number;
let redis: ChildProcess;
let simulator: RunningSimulator;
let acme: SimulatedOrganization;
let a: Stack;
let b: Stack;

function env(): Record<string, string> {
  return { REDIS_URL: `redis://127.0.0.1:${redisPort}` };
}
const FLEET_CONFIG = {
  fleet: { redisPrefix: 'test-fleet:' },
  http: { responseCacheTtlMs: TTL_MS },
  telemetry: { upstreamTrace: false },
  subscriptions: { pollMs: POLL_MS, activePollMs: POLL_MS },
} satisfies GatewayConfigFile;

async function readyz(stack: Stack): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(stack.gateway.url.replace(/\/graphql$/, '/readyz'));
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Waits until the instance reports Redis as `state` in /readyz (what the gateway saw, not the clock). */
async function untilRedis(stack: Stack, state: 'reachable' | 'unreachable'): Promise<void> {
  for (;;) {
    if ((await readyz(stack)).body.redis === state) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

beforeAll(async () => {
  redisPort = await freePort();
  redis = await startRedis(redisPort);
  simulator = await startSimulator({
    jobsPerOrganization: 3,
    providerExamples: false,
    // acme reads with a second key too: a write through one key must empty what the other kept.
    organizations: [
      { name: 'acme', uuid: '0a1b2c3d-4e5f-6789-abcd-ef0123456789', apiKeys: [ACME_KEY, ACME_SECOND_KEY] },
      { name: 'globex', uuid: 'org_2wh4zfagp480wbt3nhm8tcqw6z', apiKeys: [GLOBEX_KEY] },
    ],
  });
  acme = simulator.store.organizations[0]!;
  a = await startGatewayOn(simulator, { env: env(), config: FLEET_CONFIG });
  b = await startGatewayOn(simulator, { env: env(), config: FLEET_CONFIG });
});

afterAll(async () => {
  // Redis is stopped whatever failed before: nothing this file starts outlives it.
  try {
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await simulator?.stop();
  } finally {
    if (redis) await stopRedis(redis);
  }
});

beforeEach(() => simulator.resetRequests());

const clients: { dispose(): unknown }[] = [];
function client(stack: Stack) {
  const c = connect(stack.gateway.url, ACME_KEY);
  clients.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
  for (const stack of [a, b]) await untilMetric(stack, 'gateway_subscription_pollers', (n) => n === 0);
});

const JOB_UPDATED = `subscription ($id: ID!) { fineTuneJobUpdated(id: $id) { id status updatedAt } }`;
const JOBS_CHANGED = `subscription { fineTuneJobsChanged { change job { id status } } }`;

/** Upstream reads of one job so far (the simulator's count). */
function readsOf(jobId: string): number {
  return simulator.requestsTo('getJob').filter((r) => r.path.endsWith(`/${jobId}`)).length;
}

async function polls(stack: Stack, resource: string): Promise<number> {
  return metric(stack, 'gateway_subscription_polls_total', { resource });
}

/**
 * Waits for `count` more upstream reads by `reads()`, and returns how many polls each instance
 * made meanwhile (counted by the instances themselves).
 */
async function pollsOver(
  stacks: Stack[],
  resource: string,
  reads: () => number,
  count: number,
): Promise<number[]> {
  const before = await Promise.all(stacks.map((s) => polls(s, resource)));
  const start = reads();
  await waitUntil(() => reads() >= start + count);
  const after = await Promise.all(stacks.map((s) => polls(s, resource)));
  return after.map((value, i) => value - before[i]!);
}

async function waitUntilAsync(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 5));
}

function statuses(live: LiveSubscription): string[] {
  return live.events.map((e) => (e.data?.fineTuneJobUpdated as { status: string }).status);
}

describe('REDIS_URL', () => {
  it('is refused unless redis:// or rediss://, without showing it (it may carry a password)', () => {
    const load = () =>
      configFrom({}, { ATAI_API_URL: simulator.url, REDIS_URL: 'http://user:s3cret@redis.example:6379' });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/^Invalid REDIS_URL: /);
    expect(load).not.toThrow(/s3cret/);
    expect(
      configFrom({}, { ATAI_API_URL: simulator.url, REDIS_URL: 'rediss://:pw@10.0.0.7:6380/2' }).redis,
    ).toEqual({
      url: 'rediss://:pw@10.0.0.7:6380/2',
      prefix: 'ftg:',
    });
  });
});

describe('answers cache shared in Redis', () => {
  it('answers on B what A cached, with no upstream call', async () => {
    const first = expectData(await a.query(JOBS));
    expect(simulator.requestsTo('listJobs')).toHaveLength(1);
    const cachedBefore = await metric(b, 'gateway_graphql_cached_responses_total');
    const second = expectData(await b.query(JOBS));
    expect(second).toEqual(first);
    expect(simulator.requestsTo('listJobs')).toHaveLength(1);
    expect(await metric(b, 'gateway_graphql_cached_responses_total')).toBe(cachedBefore + 1);
  });

  it('never shares an answer across organizations', async () => {
    expectData(await a.query(JOBS));
    const calls = simulator.requestsTo('listJobs').length;
    expectData(await b.query(JOBS, undefined, { apiKey: GLOBEX_KEY }));
    expect(simulator.requestsTo('listJobs')).toHaveLength(calls + 1);
    expect(simulator.requestsTo('listJobs').at(-1)!.organization).toBe('globex');
  });

  it('a write through A empties the organization answers on B before its response is sent', async () => {
    const job = jobRecord(acme, { status: 'RUNNING' });
    simulator.store.put(acme, job);
    const QUERY = `query ($id: ID!) { fineTuneJob(id: $id) { id status } }`;
    expect(expectData(await b.query(QUERY, { id: job.id }))).toEqual({
      fineTuneJob: { id: job.id, status: 'RUNNING' },
    });
    // Cached now: B answers again without the upstream.
    expectData(await b.query(QUERY, { id: job.id }));
    expect(simulator.requestsTo('getJob')).toHaveLength(1);
    // The same job read with acme's other key, cached too.
    expectData(await b.query(QUERY, { id: job.id }, { apiKey: ACME_SECOND_KEY }));
    expect(simulator.requestsTo('getJob')).toHaveLength(2);

    const cancelled = expectData(
      await a.query(`mutation ($id: ID!) { cancelFineTuneJob(id: $id) { status } }`, { id: job.id }),
    );
    expect(cancelled).toEqual({ cancelFineTuneJob: { status: 'CANCELLED' } });
    const gets = simulator.requestsTo('getJob').length;
    // At once after the mutation's answer: B reads the job again and sees the write.
    expect(expectData(await b.query(QUERY, { id: job.id }))).toEqual({
      fineTuneJob: { id: job.id, status: 'CANCELLED' },
    });
    expect(simulator.requestsTo('getJob')).toHaveLength(gets + 1);
    // And with the other key: every answer kept before the write is gone, whoever's key.
    expect(expectData(await a.query(QUERY, { id: job.id }, { apiKey: ACME_SECOND_KEY }))).toEqual({
      fineTuneJob: { id: job.id, status: 'CANCELLED' },
    });
    expect(simulator.requestsTo('getJob')).toHaveLength(gets + 2);
  });
});

describe('APQ in Redis', () => {
  it('finds on B a persisted query registered by hash on A', async () => {
    const query = `query ApqFleet { fineTuneJobs(limit: 2) { id } }`;
    const sha256Hash = createHash('sha256').update(query).digest('hex');
    const post = (stack: Stack, body: Record<string, unknown>) =>
      fetch(stack.gateway.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ACME_KEY}` },
        body: JSON.stringify({ ...body, extensions: { persistedQuery: { version: 1, sha256Hash } } }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));

    // Unknown on both at first, as Apollo Client's link expects.
    const unknown = await post(b, {});
    expect(JSON.stringify(unknown.body)).toContain('PERSISTED_QUERY_NOT_FOUND');
    const registered = await post(a, { query });
    expect(registered.body.errors).toBeUndefined();
    // Apollo Server registers a document without waiting for the cache: wait for Redis to have it.
    const inspect = createClient({ url: `redis://127.0.0.1:${redisPort}` });
    await inspect.connect();
    try {
      await waitUntilAsync(async () => (await inspect.exists(`test-fleet:apq:${sha256Hash}`)) === 1);
    } finally {
      inspect.destroy();
    }
    const byHash = await post(b, {});
    expect(byHash.status).toBe(200);
    expect(byHash.body).toEqual(registered.body);
  });
});

describe('subscriptions polled once for the fleet', () => {
  it('one poller for subscribers spread over two instances, its events fanned out to both', async () => {
    const job = jobRecord(acme, { status: 'STARTING' });
    simulator.store.put(acme, job, [], 50);
    const onA = [
      client(a).subscribe(JOB_UPDATED, { id: job.id }),
      client(a).subscribe(JOB_UPDATED, { id: job.id }),
    ];
    await Promise.all(onA.map((live) => live.waitForEvents(1)));
    const onB = [
      client(b).subscribe(JOB_UPDATED, { id: job.id }),
      client(b).subscribe(JOB_UPDATED, { id: job.id }),
    ];
    // B's subscribers get the job at once, from the snapshot A published.
    await Promise.all(onB.map((live) => live.waitForEvents(1)));
    expect(await metric(b, 'gateway_subscription_pollers')).toBe(1);

    // Over six polls of the job, every one by A; B polled none.
    const [byA, byB] = await pollsOver([a, b], 'job', () => readsOf(job.id), 6);
    expect(byB).toBe(0);
    expect(byA).toBeGreaterThanOrEqual(5);

    simulator.advance();
    for (const live of [...onA, ...onB]) {
      await live.waitForEvents(2);
      expect(statuses(live)).toEqual(['STARTING', 'RUNNING']);
    }
  });

  it('another instance takes over when the poller instance stops, and no change made meanwhile is missed', async () => {
    const job = jobRecord(acme, { status: 'RUNNING' });
    simulator.store.put(acme, job, [], 50);
    const first = client(a).subscribe(JOBS_CHANGED);
    await untilMetric(a, 'gateway_subscription_polls_total', (n) => n > 0, { resource: 'jobs' });
    const follower = client(b).subscribe(JOBS_CHANGED);
    await untilMetric(b, 'gateway_subscription_pollers', (n) => n === 1);
    const listReads = () => simulator.requestsTo('listJobs').length;
    const [byA, byB] = await pollsOver([a, b], 'jobs', listReads, 3);
    expect(byA).toBeGreaterThanOrEqual(2);
    expect(byB).toBe(0);

    // A stops (its lease given up); a job enters and another changes before B polls: B's first
    // poll compares with the list A published last, so both are events on B.
    const bPolls = await polls(b, 'jobs');
    await a.stop();
    await first.finished;
    const entered = jobRecord(acme, { status: 'REGISTERED' });
    simulator.store.put(acme, entered);
    simulator.advance();
    await untilMetric(b, 'gateway_subscription_polls_total', (n) => n > bPolls, { resource: 'jobs' });
    const events = await follower.waitForEvents(2);
    const changes = events.map((e) => e.data?.fineTuneJobsChanged as { change: string; job: { id: string } });
    const enteredNow = simulator.store.get(acme, entered.id)!.status;
    expect(changes).toContainEqual({ change: 'ENTERED', job: { id: entered.id, status: enteredNow } });
    expect(changes.some((c) => c.change === 'CHANGED' && c.job.id === job.id)).toBe(true);

    // And B keeps polling alone from then on.
    const [onlyB] = await pollsOver([b], 'jobs', listReads, 2);
    expect(onlyB).toBeGreaterThanOrEqual(1);
    a = await startGatewayOn(simulator, { env: env(), config: FLEET_CONFIG });
  });
});

/** A gateway in a process of its own (dist/main.js, built by the global setup), to be killed. */
async function spawnGateway(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['dist/main.js'], {
    env: {
      PATH: process.env.PATH ?? '',
      ...env(),
      PORT: '0',
      METRICS_PORT: '0',
      HOST: '127.0.0.1',
      ATAI_API_URL: simulator.url,
      LOG_LEVEL: 'warn',
      GATEWAY_CONFIG: writeConfigFile(FLEET_CONFIG),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const ready = /ready at (http:\/\/\S+\/graphql)/.exec(stdout);
      if (ready) resolve(ready[1]!);
    });
    child.once('exit', (code) => reject(new Error(`gateway exited (${code}): ${stdout}`)));
  });
  return { child, url };
}

describe('the poller instance killed', () => {
  it('another takes over once its lease ends, from the list it published last', async () => {
    const job = jobRecord(acme, { status: 'RUNNING' });
    simulator.store.put(acme, job, [], 50);
    const doomed = await spawnGateway();
    try {
      const listReads = () => simulator.requestsTo('listJobs').length;
      const onDoomed = connect(doomed.url, ACME_KEY);
      clients.push(onDoomed);
      onDoomed.subscribe(JOBS_CHANGED);
      // Its first poll: it holds the lease.
      await waitUntil(() => listReads() >= 1);
      const follower = client(b).subscribe(JOBS_CHANGED);
      await untilMetric(b, 'gateway_subscription_pollers', (n) => n === 1);
      const [byB] = await pollsOver([b], 'jobs', listReads, 2);
      expect(byB).toBe(0);

      const bPolls = await polls(b, 'jobs');
      const exited = once(doomed.child, 'exit');
      doomed.child.kill('SIGKILL');
      await exited;
      // Changes while no one polls.
      const entered = jobRecord(acme, { status: 'REGISTERED' });
      simulator.store.put(acme, entered);
      simulator.advance();
      await untilMetric(b, 'gateway_subscription_polls_total', (n) => n > bPolls, { resource: 'jobs' });
      const changes = (await follower.waitForEvents(2)).map(
        (e) => e.data?.fineTuneJobsChanged as { change: string; job: { id: string; status: string } },
      );
      expect(changes).toContainEqual({
        change: 'ENTERED',
        job: { id: entered.id, status: simulator.store.get(acme, entered.id)!.status },
      });
      expect(changes.some((c) => c.change === 'CHANGED' && c.job.id === job.id)).toBe(true);
    } finally {
      if (doomed.child.exitCode === null && doomed.child.signalCode === null) {
        const exited = once(doomed.child, 'exit');
        doomed.child.kill('SIGKILL');
        await exited;
      }
    }
  });
});

describe('Redis down', () => {
  it('keeps answering from the upstream, says so in /readyz and a warn line, and shares again once Redis is back', async () => {
    await stopRedis(redis, 'SIGKILL');
    await untilRedis(a, 'unreachable');
    await untilRedis(b, 'unreachable');
    const ready = await readyz(a);
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ready', redis: 'unreachable' });
    expect(
      a.logLines.some((line) => line.includes('"level":40') && line.includes('Redis is unreachable')),
    ).toBe(true);

    // Queries work, each instance alone: nothing is cached (misses), nothing fails.
    const QUERY = `query { fineTuneJobs(limit: 7) { id } }`;
    expectData(await a.query(QUERY));
    expectData(await b.query(QUERY));
    expectData(await a.query(QUERY));
    expect(simulator.requestsTo('listJobs')).toHaveLength(3);
    // APQ misses are the usual PERSISTED_QUERY_NOT_FOUND, never a 500.
    const apq = await fetch(a.gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ACME_KEY}` },
      body: JSON.stringify({ extensions: { persistedQuery: { version: 1, sha256Hash: 'a'.repeat(64) } } }),
    });
    expect(apq.status).toBeLessThan(500);
    expect(await apq.text()).toContain('PERSISTED_QUERY_NOT_FOUND');

    redis = await startRedis(redisPort);
    await untilRedis(a, 'reachable');
    await untilRedis(b, 'reachable');
    expect(
      a.logLines.some((line) => line.includes('"level":40') && line.includes('Redis is reachable again')),
    ).toBe(true);
    simulator.resetRequests();
    expectData(await a.query(QUERY));
    expectData(await b.query(QUERY));
    expect(simulator.requestsTo('listJobs')).toHaveLength(1);
  });

  it('each instance polls for itself while Redis is down, no subscriber misses a change, and one polls again once it is back', async () => {
    const job = jobRecord(acme, { status: 'STARTING' });
    simulator.store.put(acme, job, [], 50);
    const onA = client(a).subscribe(JOB_UPDATED, { id: job.id });
    await onA.waitForEvents(1);
    const onB = client(b).subscribe(JOB_UPDATED, { id: job.id });
    await onB.waitForEvents(1);
    const [, byB] = await pollsOver([a, b], 'job', () => readsOf(job.id), 3);
    expect(byB).toBe(0);

    await stopRedis(redis, 'SIGKILL');
    await untilRedis(a, 'unreachable');
    await untilRedis(b, 'unreachable');
    // Both poll now: B's counter moves too.
    const bBefore = await polls(b, 'job');
    await untilMetric(b, 'gateway_subscription_polls_total', (n) => n > bBefore, { resource: 'job' });
    simulator.advance();
    await onA.waitForEvents(2);
    await onB.waitForEvents(2);
    expect(statuses(onA)).toEqual(['STARTING', 'RUNNING']);
    expect(statuses(onB)).toEqual(['STARTING', 'RUNNING']);

    redis = await startRedis(redisPort);
    await untilRedis(a, 'reachable');
    await untilRedis(b, 'reachable');
    // The fleet mode again: soon a stretch of polls all made by one instance (the test's timeout
    // bounds "soon"; the lease settles it within a poll interval or two).
    for (;;) {
      const [fromA, fromB] = await pollsOver([a, b], 'job', () => readsOf(job.id), 4);
      if (fromA === 0 || fromB === 0) break;
    }
    simulator.advance();
    await onA.waitForEvents(3);
    await onB.waitForEvents(3);
    expect(statuses(onA)).toEqual(statuses(onB));
    expect(
      onA.events.every((e) => e.errors === undefined) && onB.events.every((e) => e.errors === undefined),
    ).toBe(true);
  });
});

describe('Redis that stops answering', () => {
  it('holds no request: a command unanswered makes Redis down until it answers a PING', async () => {
    const job = jobRecord(acme, { status: 'RUNNING' });
    simulator.store.put(acme, job);
    const QUERY = `query ($id: ID!) { fineTuneJob(id: $id) { id status } }`;
    // Paused, its connections open: commands are sent and never answered.
    redis.kill('SIGSTOP');
    try {
      expect(expectData(await a.query(QUERY, { id: job.id }))).toEqual({
        fineTuneJob: { id: job.id, status: 'RUNNING' },
      });
      await untilRedis(a, 'unreachable');
      // Now at once, without waiting on Redis: a write and a read.
      expectData(
        await a.query(`mutation ($id: ID!) { stopFineTuneJob(id: $id) { status } }`, { id: job.id }),
      );
      const stopped = simulator.store.get(acme, job.id)!.status;
      expect(stopped).not.toBe('RUNNING');
      expect(expectData(await a.query(QUERY, { id: job.id }))).toEqual({
        fineTuneJob: { id: job.id, status: stopped },
      });
    } finally {
      redis.kill('SIGCONT');
    }
    await untilRedis(a, 'reachable');
    simulator.resetRequests();
    expectData(await a.query(QUERY, { id: job.id }));
    expectData(await b.query(QUERY, { id: job.id }));
    expect(simulator.requestsTo('getJob')).toHaveLength(1);
  });
});

describe('Redis down at start', () => {
  it('starts alone, says so, and joins the fleet once Redis answers', async () => {
    const port = await freePort();
    const lonely = await startGatewayOn(simulator, {
      env: { ...env(), REDIS_URL: `redis://127.0.0.1:${port}` },
      config: { ...FLEET_CONFIG, fleet: { redisPrefix: 'test-late:' } },
    });
    let late: ChildProcess | undefined;
    try {
      expect(await readyz(lonely)).toMatchObject({
        status: 200,
        body: { status: 'ready', redis: 'unreachable' },
      });
      expect(
        lonely.logLines.some(
          (line) => line.includes('"level":40') && line.includes('Redis is unreachable at start'),
        ),
      ).toBe(true);
      const QUERY = `query { fineTuneJobs(limit: 9) { id } }`;
      expectData(await lonely.query(QUERY));

      late = await startRedis(port);
      await untilRedis(lonely, 'reachable');
      simulator.resetRequests();
      expectData(await lonely.query(QUERY));
      expectData(await lonely.query(QUERY));
      // The second answered from Redis.
      expect(simulator.requestsTo('listJobs')).toHaveLength(1);
    } finally {
      await lonely.stop();
      if (late) await stopRedis(late);
    }
  });
});
