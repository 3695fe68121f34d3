// Live updates over WebSocket: a real graphql-ws client against the gateway, jobs moved along
// their life cycle in the simulator, and upstream reads counted at the simulator.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SimulatedOrganization } from '../src/simulator/store.js';
import { checkpointEntry } from '../src/simulator/store.js';
import {
  ACME_KEY,
  GLOBEX_KEY,
  configFrom,
  withKey,
  expectErrorCode,
  metric,
  startStack,
  untilMetric,
  type Stack,
} from './harness.js';
import { jobRecord } from './jobs.js';
import { connect, waitUntil, type EventResult } from './live-client.js';

const IDLE_MS = 150;
const ACTIVE_MS = 40;

const JOB_UPDATED = `subscription ($id: ID!) {
  fineTuneJobUpdated(id: $id) { id status isTerminal updatedAt }
}`;
const JOBS_CHANGED = `subscription ($statuses: [FineTuneJobStatus!]) {
  fineTuneJobsChanged(statuses: $statuses) { change job { id status } }
}`;
const METRICS_APPENDED = `subscription ($id: ID!, $afterStep: Int) {
  fineTuneJobMetricsAppended(id: $id, afterStep: $afterStep) { step loss }
}`;

let stack: Stack;
let acme: SimulatedOrganization;
let globex: SimulatedOrganization;
const clients: { dispose(): unknown }[] = [];

function client(apiKey: string | null, params?: Record<string, unknown>) {
  const c = connect(stack.gateway.url, apiKey, params);
  clients.push(c);
  return c;
}

function statusesOf(events: EventResult[]): unknown[] {
  return events.map((e) => (e.data?.fineTuneJobUpdated as { status: string } | undefined)?.status);
}

beforeAll(async () => {
  stack = await startStack({
    simulator: { jobsPerOrganization: 0, providerExamples: false },
    config: { subscriptions: { pollMs: IDLE_MS, activePollMs: ACTIVE_MS } },
  });
  acme = stack.simulator.store.organizations[0]!;
  globex = stack.simulator.store.organizations[1]!;
});
afterAll(() => stack.stop());
beforeEach(() => {
  stack.simulator.resetRequests();
  stack.simulator.faults.clear();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
  // Every subscription is gone, so every poller must stop (and then polls nothing more).
  await untilMetric(stack, 'gateway_subscription_pollers', (running) => running === 0);
});

/** Resolves once `count` more polls of `resource` are done (and told to their subscribers). */
async function polled(resource: 'job' | 'jobs' | 'metrics', count = 1, s: Stack = stack): Promise<void> {
  const before = await metric(s, 'gateway_subscription_polls_total', { resource });
  await untilMetric(s, 'gateway_subscription_polls_total', (done) => done >= before + count, { resource });
}

describe('fineTuneJobUpdated', () => {
  it('sends the job on subscribe, each change of status or updatedAt, and completes after a terminal status', async () => {
    const job = jobRecord(acme, { status: 'REGISTERED' });
    stack.simulator.store.put(acme, job, [], 2);
    const live = client(ACME_KEY).subscribe(JOB_UPDATED, { id: job.id });

    // One step at a time, each after the gateway has shown the previous one.
    const expected = ['REGISTERED', 'STARTING', 'RUNNING', 'RUNNING', 'FINALIZING', 'COMPLETED'];
    for (let i = 0; i < expected.length; i++) {
      await live.waitForEvents(i + 1);
      if (i < expected.length - 1) stack.simulator.advance();
    }
    await live.finished;
    expect(live.completed).toBe(true);
    expect(live.events.every((e) => e.errors === undefined)).toBe(true);
    expect(statusesOf(live.events)).toEqual(expected);
    const last = live.events.at(-1)!.data!.fineTuneJobUpdated as { isTerminal: boolean; updatedAt: string };
    expect(last.isTerminal).toBe(true);
    expect(last.updatedAt).toBe(stack.simulator.store.get(acme, job.id)!.updated_at);
    // The two RUNNING events differ in updatedAt (a checkpoint was written).
    const running = live.events.filter((e) => statusesOf([e])[0] === 'RUNNING');
    expect(
      new Set(running.map((e) => (e.data!.fineTuneJobUpdated as { updatedAt: string }).updatedAt)).size,
    ).toBe(2);
  });

  it('reads nested fields anew for each event (fresh loaders per event)', async () => {
    const job = jobRecord(acme, { status: 'RUNNING' });
    stack.simulator.store.put(acme, job, [checkpointEntry(1)], 10);
    const live = client(ACME_KEY).subscribe(
      'subscription ($id: ID!) { fineTuneJobUpdated(id: $id) { status metrics { entries { step } } } }',
      { id: job.id },
    );
    await live.waitForEvents(1);
    stack.simulator.advance();
    await live.waitForEvents(2);
    stack.simulator.advance();
    await live.waitForEvents(3);
    const steps = live.events.map((e) =>
      (e.data!.fineTuneJobUpdated as { metrics: { entries: { step: number }[] } }).metrics.entries.map(
        (entry) => entry.step,
      ),
    );
    expect(steps).toEqual([[200], [200, 400], [200, 400, 600]]);
  });

  it('sends nothing while the job does not change', async () => {
    const job = jobRecord(acme, { status: 'REGISTERED' });
    stack.simulator.store.put(acme, job);
    const live = client(ACME_KEY).subscribe(JOB_UPDATED, { id: job.id });
    await live.waitForEvents(1);
    await polled('job', 3);
    expect(live.events).toHaveLength(1);
    expect(live.completed).toBe(false);
  });

  it('completes at once for a job that is already terminal, after sending it', async () => {
    const job = jobRecord(acme, { status: 'FAILED' });
    stack.simulator.store.put(acme, job);
    const live = client(ACME_KEY).subscribe(JOB_UPDATED, { id: job.id });
    await live.finished;
    expect(statusesOf(live.events)).toEqual(['FAILED']);
    expect(live.completed).toBe(true);
  });

  it('ends with NOT_FOUND for a job the organization does not have', async () => {
    const live = client(ACME_KEY).subscribe(JOB_UPDATED, { id: 'ftj-no-such-job' });
    await live.finished;
    expect(live.events).toHaveLength(1);
    expect(live.events[0]!.data).toBeNull();
    expect(live.events[0]!.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it("never shows one organization's job to another, even while the owner watches it", async () => {
    const job = jobRecord(acme, { status: 'RUNNING' });
    stack.simulator.store.put(acme, job, [], 50);
    const owner = client(ACME_KEY).subscribe(JOB_UPDATED, { id: job.id });
    await owner.waitForEvents(1);
    const other = client(GLOBEX_KEY).subscribe(JOB_UPDATED, { id: job.id });
    await other.finished;
    expect(other.events.map((e) => e.errors?.[0]?.extensions?.code)).toEqual(['NOT_FOUND']);
    expect(JSON.stringify(other.events)).not.toContain(job.uuid);
    const globexReads = stack.simulator.requestsTo('getJob').filter((r) => r.organization === 'globex');
    expect(globexReads.length).toBeGreaterThanOrEqual(1);
    expect(owner.completed).toBe(false);
  });

  it('refuses a bad id with BAD_USER_INPUT before any upstream call', async () => {
    const live = client(ACME_KEY).subscribe(JOB_UPDATED, { id: '' });
    await live.finished;
    expect(JSON.stringify(live.failure ?? live.events)).toContain('BAD_USER_INPUT');
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('refuses a key with characters no HTTP header could carry, with no upstream call', async () => {
    const job = jobRecord(acme, { status: 'RUNNING' });
    stack.simulator.store.put(acme, job);
    stack.simulator.resetRequests();
    const secret = 'sk-SECRET123';
    for (const key of [`${secret}\u0000`, `${secret}\u00e9`, `${secret}\u0007tail`]) {
      const live = client(null, { Authorization: `Bearer ${key}` }).subscribe(JOB_UPDATED, { id: job.id });
      await live.finished;
      const shown = JSON.stringify(live.failure ?? live.events);
      expect(shown).toContain('UNAUTHENTICATED');
      expect(shown).not.toContain(secret);
    }
    expect(stack.simulator.requests).toHaveLength(0);
    expect(stack.logLines.join('\n')).not.toContain(secret);
  });

  it('refuses a key longer than any the upstream takes (100 KB) at once, with no upstream call', async () => {
    const job = jobRecord(acme, { status: 'RUNNING' });
    stack.simulator.store.put(acme, job);
    stack.simulator.resetRequests();
    const key = `sk-${'K'.repeat(100_000)}`;
    const live = client(null, { Authorization: `Bearer ${key}` }).subscribe(JOB_UPDATED, { id: job.id });
    await live.finished;
    const shown = JSON.stringify(live.failure ?? live.events);
    expect(shown).toContain('UNAUTHENTICATED');
    expect(shown).not.toContain('KKKKKKKK');
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('uses the gateway key when the connection carries none, and UNAUTHENTICATED when there is none', async () => {
    const job = jobRecord(acme, { status: 'COMPLETED' });
    stack.simulator.store.put(acme, job);

    const withoutKey = client(null).subscribe(JOB_UPDATED, { id: job.id });
    await withoutKey.finished;
    expect(JSON.stringify(withoutKey.failure ?? withoutKey.events)).toContain('UNAUTHENTICATED');

    const malformed = client(null, { Authorization: 'Basic abc' }).subscribe(JOB_UPDATED, { id: job.id });
    await malformed.finished;
    expect(JSON.stringify(malformed.failure ?? malformed.events)).toContain('UNAUTHENTICATED');

    const unknownKey = client('sim-unknown-key').subscribe(JOB_UPDATED, { id: job.id });
    await unknownKey.finished;
    expect(unknownKey.events.map((e) => e.errors?.[0]?.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    expect(JSON.stringify(unknownKey.events)).not.toContain('sim-unknown-key');

    const served = await startStack({
      simulator: { jobsPerOrganization: 1, providerExamples: false },
      serverApiKey: ACME_KEY,
    });
    try {
      const servedJob = served.simulator.store.list(served.simulator.store.organizations[0]!, null)[0]!;
      const c = connect(served.gateway.url, null);
      clients.push(c);
      const live = c.subscribe(JOB_UPDATED, { id: servedJob.id });
      await live.waitForEvents(1);
      expect(live.events[0]!.data).toMatchObject({ fineTuneJobUpdated: { id: servedJob.id } });
      await c.dispose();
    } finally {
      await served.stop();
    }
  });

  it('ends with the error on an upstream 4xx another poll would get again (431), after one call', async () => {
    const job = jobRecord(acme, { status: 'REGISTERED' });
    stack.simulator.store.put(acme, job);
    stack.simulator.faults.set('getJob', { status: 431 });
    const live = client(ACME_KEY).subscribe(JOB_UPDATED, { id: job.id });
    await live.finished;
    expect(live.completed).toBe(true);
    const [error] = live.events.map((e) => e.errors?.[0]);
    expect(error?.message).toContain('431');
    expect(error?.extensions).toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE', upstream: { status: 431 } });
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(1);
  });

  it('keeps polling through an upstream outage instead of ending the subscription', async () => {
    const job = jobRecord(acme, { status: 'REGISTERED' });
    stack.simulator.store.put(acme, job);
    const live = client(ACME_KEY).subscribe(JOB_UPDATED, { id: job.id });
    await live.waitForEvents(1);
    stack.simulator.faults.set('getJob', { status: 503, times: 6 });
    stack.simulator.advance();
    await live.waitForEvents(2);
    expect(statusesOf(live.events)).toEqual(['REGISTERED', 'STARTING']);
    expect(live.events.every((e) => e.errors === undefined)).toBe(true);
    const warnings = stack.logLines.filter((line) => line.includes('a subscription poll failed'));
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings[0]).toContain('UPSTREAM_UNAVAILABLE');
    expect(stack.logLines.join('\n')).not.toContain(ACME_KEY);
  });
});

describe('shared pollers', () => {
  it('answers 100 subscribers of one job with one upstream read', async () => {
    // An interval longer than the test: every subscriber is served by the poller's first read.
    const slow = await startStack({
      simulator: { jobsPerOrganization: 0, providerExamples: false },
      config: { subscriptions: { pollMs: 600000, activePollMs: 600000 } },
    });
    const connections = Array.from({ length: 4 }, () => connect(slow.gateway.url, ACME_KEY));
    try {
      const org = slow.simulator.store.organizations[0]!;
      const job = jobRecord(org, { status: 'RUNNING' });
      slow.simulator.store.put(org, job, [], 10);
      const subscribers = Array.from({ length: 100 }, (_, i) =>
        connections[i % 4]!.subscribe(JOB_UPDATED, { id: job.id }),
      );
      await Promise.all(subscribers.map((s) => s.waitForEvents(1)));
      for (const s of subscribers) expect(statusesOf(s.events)).toEqual(['RUNNING']);
      expect(slow.simulator.requestsTo('getJob')).toHaveLength(1);
    } finally {
      await Promise.all(connections.map((c) => c.dispose()));
      await slow.stop();
    }
  });

  it('serves 100 subscribers of one job with one upstream read per interval, and stops when they leave', async () => {
    const job = jobRecord(acme, { status: 'REGISTERED' });
    stack.simulator.store.put(acme, job);
    const connections = Array.from({ length: 4 }, () => client(ACME_KEY));
    const subscribers = Array.from({ length: 100 }, (_, i) =>
      connections[i % 4]!.subscribe(JOB_UPDATED, { id: job.id }),
    );
    await Promise.all(subscribers.map((s) => s.waitForEvents(1)));

    stack.simulator.resetRequests();
    const started = Date.now();
    stack.simulator.advance();
    await Promise.all(subscribers.map((s) => s.waitForEvents(2)));
    await new Promise((resolve) => setTimeout(resolve, 3 * IDLE_MS));
    const elapsed = Date.now() - started;
    const reads = stack.simulator.requestsTo('getJob').length;
    // One poller: at most one read per (active) interval that passed, and far from 100 per interval.
    expect(reads).toBeGreaterThanOrEqual(2);
    expect(reads).toBeLessThanOrEqual(Math.ceil(elapsed / ACTIVE_MS) + 1);
    expect(reads).toBeLessThan(100);
    for (const s of subscribers) expect(statusesOf(s.events)).toEqual(['REGISTERED', 'STARTING']);

    for (const s of subscribers) s.unsubscribe();
    // The last one gone, its poller stops.
    await untilMetric(stack, 'gateway_subscription_pollers', (running) => running === 0);
  });

  it('polls quicker while a job is in progress than when it is not', async () => {
    // Idle: once in ten minutes, so it is read once; in progress: every 40 ms.
    const paced = await startStack({
      simulator: { jobsPerOrganization: 0, providerExamples: false },
      config: { subscriptions: { pollMs: 600000, activePollMs: ACTIVE_MS } },
    });
    const c = connect(paced.gateway.url, ACME_KEY);
    try {
      const org = paced.simulator.store.organizations[0]!;
      const idle = jobRecord(org, { status: 'REGISTERED' });
      const active = jobRecord(org, { status: 'RUNNING' });
      paced.simulator.store.put(org, idle);
      paced.simulator.store.put(org, active, [], 1000);
      c.subscribe(JOB_UPDATED, { id: idle.id });
      c.subscribe(JOB_UPDATED, { id: active.id });
      const reads = (id: string) =>
        paced.simulator.requestsTo('getJob').filter((r) => r.path.endsWith(id)).length;
      await polled('job', 5, paced);
      expect(reads(idle.id)).toBe(1);
      expect(reads(active.id)).toBeGreaterThanOrEqual(4);
    } finally {
      await c.dispose();
      await paced.stop();
    }
  });
});

describe('fineTuneJobsChanged', () => {
  it('says when a job enters, changes within and leaves the filtered set', async () => {
    const starting = jobRecord(acme, { status: 'STARTING' });
    const running = jobRecord(acme, { status: 'RUNNING' });
    stack.simulator.store.put(acme, starting, [], 1);
    stack.simulator.store.put(acme, running, [], 2);
    const first = polled('jobs');
    const live = client(ACME_KEY).subscribe(JOBS_CHANGED, { statuses: ['RUNNING'] });
    // The first poll is where the subscriber starts: nothing before it is news.
    await first;

    // Other tests' jobs run on in this organization: only these two are looked at.
    const ours = () =>
      live.events
        .map((e) => e.data?.fineTuneJobsChanged as { job: { id: string } })
        .filter((c) => [starting.id, running.id].includes(c.job.id));

    // starting → RUNNING (enters); running writes a checkpoint (changes).
    stack.simulator.advance();
    await waitUntil(() => ours().length >= 2);
    // starting's only checkpoint → FINALIZING (leaves); running's last → FINALIZING (leaves).
    stack.simulator.advance();
    await waitUntil(() => ours().length >= 4);
    const changes = ours();
    expect(changes.slice(0, 2)).toEqual(
      expect.arrayContaining([
        { change: 'ENTERED', job: { id: starting.id, status: 'RUNNING' } },
        { change: 'CHANGED', job: { id: running.id, status: 'RUNNING' } },
      ]),
    );
    expect(changes.slice(2)).toEqual(
      expect.arrayContaining([
        { change: 'LEFT', job: { id: starting.id, status: 'FINALIZING' } },
        { change: 'LEFT', job: { id: running.id, status: 'FINALIZING' } },
      ]),
    );
    await new Promise((resolve) => setTimeout(resolve, 2 * IDLE_MS));
    expect(ours()).toHaveLength(4);
    expect(live.events.every((e) => e.errors === undefined)).toBe(true);
  });

  it('shares one list poller per key between filters, and keeps organizations apart', async () => {
    const c = client(ACME_KEY);
    const started = Date.now();
    const firstPolls = polled('jobs', 2);
    const all = c.subscribe(JOBS_CHANGED);
    const failedOnly = c.subscribe(JOBS_CHANGED, { statuses: ['FAILED'] });
    const other = client(GLOBEX_KEY).subscribe(JOBS_CHANGED);
    // Each key's poller has polled once: where its subscribers start.
    await firstPolls;

    const created = await stack.query<{ createFineTuneJob: { id: string } }>(`mutation {
      createFineTuneJob(input: { name: "live", model: "m", datasets: [{ name: "d", split: "train", fileIds: ["f"] }] }) { id }
    }`);
    const id = created.data!.createFineTuneJob.id;
    await all.waitForEvents(1);
    expect(all.events[0]!.data).toEqual({
      fineTuneJobsChanged: { change: 'ENTERED', job: { id, status: 'REGISTERED' } },
    });
    await new Promise((resolve) => setTimeout(resolve, 3 * IDLE_MS));
    expect(failedOnly.events).toEqual([]);
    expect(other.events).toEqual([]);

    // Two filters of one key, one poller: at most one read per (active) interval. Two pollers
    // would make about twice as many.
    const elapsed = Date.now() - started;
    const byOrg = (org: string) =>
      stack.simulator.requestsTo('listJobs').filter((r) => r.organization === org);
    expect(byOrg('acme').length).toBeLessThanOrEqual(Math.ceil(elapsed / ACTIVE_MS) + 1);
    expect(byOrg('globex').length).toBeGreaterThanOrEqual(1);
    expect(stack.simulator.requestsTo('listJobs').every((r) => r.search === '?limit=-1&offset=0')).toBe(true);
  });
});

describe('fineTuneJobMetricsAppended', () => {
  it('sends only new entries while the job runs, reads only the new page, and completes when it ends', async () => {
    const job = jobRecord(acme, { status: 'RUNNING' });
    stack.simulator.store.put(acme, job, [checkpointEntry(1)], 3);
    const first = polled('metrics');
    const live = client(ACME_KEY).subscribe(METRICS_APPENDED, { id: job.id });
    await first;

    stack.simulator.advance(); // checkpoint 2
    await live.waitForEvents(1);
    stack.simulator.advance(); // checkpoint 3, FINALIZING
    await live.waitForEvents(2);
    stack.simulator.advance(); // COMPLETED
    await live.finished;
    expect(live.completed).toBe(true);
    expect(live.events.map((e) => e.data?.fineTuneJobMetricsAppended)).toEqual([
      [{ step: 400, loss: checkpointEntry(2).loss }],
      [{ step: 600, loss: checkpointEntry(3).loss }],
    ]);
    const offsets = stack.simulator
      .requestsTo('getJobMetrics')
      .map((r) => new URLSearchParams(r.search).get('offset'));
    expect(offsets[0]).toBe('0');
    expect(offsets).toContain('1');
    expect(offsets.at(-1)).toBe('3');
  });

  it('resumes after a step: the first event carries the entries written since', async () => {
    const job = jobRecord(acme, { status: 'RUNNING' });
    stack.simulator.store.put(acme, job, [checkpointEntry(1), checkpointEntry(2), checkpointEntry(3)], 4);
    const live = client(ACME_KEY).subscribe(METRICS_APPENDED, { id: job.id, afterStep: 200 });
    await live.waitForEvents(1);
    expect(live.events[0]!.data).toEqual({
      fineTuneJobMetricsAppended: [
        { step: 400, loss: checkpointEntry(2).loss },
        { step: 600, loss: checkpointEntry(3).loss },
      ],
    });
  });

  it('ends with NOT_FOUND for a job of another organization', async () => {
    const job = jobRecord(globex, { status: 'RUNNING' });
    stack.simulator.store.put(globex, job, [checkpointEntry(1)], 5);
    const live = client(ACME_KEY).subscribe(METRICS_APPENDED, { id: job.id, afterStep: 0 });
    await live.finished;
    expect(live.events.map((e) => e.errors?.[0]?.extensions?.code)).toEqual(['NOT_FOUND']);
  });
});

describe('the WebSocket server', () => {
  it('answers validation errors on the socket as coded GraphQL errors', async () => {
    const c = client(ACME_KEY);
    const bad = c.subscribe('subscription { fineTuneJobUpdated(id: "x") { nope } }');
    await bad.finished;
    expect(JSON.stringify(bad.failure)).toContain('nope');
    expect(JSON.stringify(bad.failure)).toContain('GRAPHQL_VALIDATION_FAILED');
  });

  it("codes graphql-js's request errors too, as Apollo Server does over HTTP", async () => {
    const c = client(ACME_KEY);
    const missing = c.subscribe('subscription ($id: ID!) { fineTuneJobUpdated(id: $id) { id } }');
    await missing.finished;
    const shown = JSON.stringify(missing.failure ?? missing.events);
    expect(shown).toMatch(/\$id/);
    expect(shown).toContain('"code":"BAD_USER_INPUT"');
  });

  it('closes open subscriptions when the gateway stops, without waiting for them', async () => {
    const own = await startStack({ simulator: { jobsPerOrganization: 1, providerExamples: false } });
    const job = own.simulator.store.list(own.simulator.store.organizations[0]!, null)[0]!;
    const c = connect(own.gateway.url, ACME_KEY);
    const live = c.subscribe(JOB_UPDATED, { id: job.id });
    await live.waitForEvents(1);
    // The subscription never ends by itself: a stop that waited for it would never return.
    await own.stop();
    await live.finished;
    await c.dispose();
  });
});

describe('browser origins', () => {
  it('accepts the gateway’s own origin and security.corsOrigins, and refuses other web pages', async () => {
    const job = jobRecord(acme, { status: 'COMPLETED' });
    stack.simulator.store.put(acme, job);
    const own = new URL(stack.gateway.url).origin;
    for (const origin of [own, 'https://studio.apollographql.com']) {
      const c = connect(stack.gateway.url, ACME_KEY, {}, origin);
      clients.push(c);
      const live = c.subscribe(JOB_UPDATED, { id: job.id });
      await live.finished;
      expect(statusesOf(live.events)).toEqual(['COMPLETED']);
    }
    const evil = connect(stack.gateway.url, null, {}, 'https://evil.example');
    clients.push(evil);
    const refused = evil.subscribe(JOB_UPDATED, { id: job.id });
    await refused.finished;
    expect(refused.events).toEqual([]);
    // The upgrade itself is refused: no socket, so nothing the page could read.
    expect(String((refused.failure as Error).message)).toContain('401');
  });
});

describe('subscriptions over HTTP', () => {
  it('are refused with BAD_REQUEST and a 400 that says where they are served', async () => {
    const response = await stack.query('subscription { fineTuneJobUpdated(id: "x") { id } }');
    expect(response.status).toBe(400);
    const error = expectErrorCode(response, 'BAD_REQUEST');
    expect(error.message).toContain('WebSocket');
    expect(stack.simulator.requests).toHaveLength(0);
  });
});

describe('limits of one connection', () => {
  it('runs at most subscriptions.perConnection operations at once, refuses more with BAD_REQUEST, and drops huge messages', async () => {
    const limited = await startStack({
      simulator: { jobsPerOrganization: 0, providerExamples: false },
      config: { subscriptions: { perConnection: 2, pollMs: 1000 }, http: { maxRequestBytes: 2048 } },
    });
    const c = connect(limited.gateway.url, ACME_KEY);
    try {
      const org = limited.simulator.store.organizations[0]!;
      const jobs = [1, 2, 3].map(() => jobRecord(org, { status: 'REGISTERED' }));
      for (const job of jobs) limited.simulator.store.put(org, job);
      const first = c.subscribe(JOB_UPDATED, { id: jobs[0]!.id });
      const second = c.subscribe(JOB_UPDATED, { id: jobs[1]!.id });
      await Promise.all([first.waitForEvents(1), second.waitForEvents(1)]);
      const third = c.subscribe(JOB_UPDATED, { id: jobs[2]!.id });
      await third.finished;
      expect(JSON.stringify(third.failure)).toContain('BAD_REQUEST');

      // Once the server has ended one (it logs it), there is room again.
      first.unsubscribe();
      await waitUntil(() => limited.logLines.some((line) => line.includes('subscription ended')));
      const again = c.subscribe(JOB_UPDATED, { id: jobs[2]!.id });
      await again.waitForEvents(1);
      expect(again.events[0]!.data).toMatchObject({ fineTuneJobUpdated: { id: jobs[2]!.id } });

      const huge = c.subscribe(`subscription { fineTuneJobUpdated(id: "${'x'.repeat(4096)}") { id } }`);
      await huge.finished;
      expect(String((huge.failure as { code?: number })?.code)).toBe('1009');
      // One log line through the logger, not a stack on stderr.
      await waitUntil(() => limited.logLines.some((line) => line.includes('Max payload size exceeded')));
      expect(limited.logLines.filter((line) => line.includes('Max payload size exceeded'))).toHaveLength(1);
    } finally {
      await c.dispose();
      await limited.stop();
    }
  });

  it.each([
    ['subscriptions.pollMs', 5],
    ['subscriptions.activePollMs', 'soon'],
    ['subscriptions.perConnection', 0],
    ['telemetry.upstreamTrace', 'maybe'],
    ['federation.subgraph', 'yes'],
  ])('refuses %s: %s at start with a message naming it', (key, value) => {
    expect(() => configFrom(withKey(key, value))).toThrow(
      new RegExp(`^Invalid ${key.replace('.', '\\.')} in gateway\\.config\\.yaml`),
    );
  });
});

describe('query limits on the socket', () => {
  it('applies the same limits as HTTP: aliases, tokens and cost are QUERY_LIMIT_EXCEEDED before any poll', async () => {
    const limited = await startStack({
      simulator: { jobsPerOrganization: 0, providerExamples: false },
      config: { limits: { maxCost: 50, maxTokens: 200 } },
    });
    const c = connect(limited.gateway.url, ACME_KEY);
    try {
      const aliases = Array.from({ length: 16 }, (_, i) => `a${i}: id`).join(' ');
      const tooManyAliases = c.subscribe(`subscription { fineTuneJobUpdated(id: "x") { ${aliases} } }`);
      const tooManyTokens = c.subscribe(
        `subscription { fineTuneJobUpdated(id: "x") { ${'id '.repeat(200)} } }`,
      );
      const tooCostly = c.subscribe(
        'subscription { fineTuneJobUpdated(id: "x") { metrics { entries { step loss evalLoss } } } }',
      );
      for (const [live, limit] of [
        [tooManyAliases, 'aliases'],
        [tooManyTokens, 'tokens'],
        [tooCostly, 'cost'],
      ] as const) {
        await live.finished;
        const errors = live.failure as { extensions?: { code?: string; limit?: string } }[];
        expect(errors?.[0]?.extensions, JSON.stringify(live.failure)).toMatchObject({
          code: 'QUERY_LIMIT_EXCEEDED',
          limit,
        });
      }
      expect(limited.simulator.requests).toHaveLength(0);
    } finally {
      await c.dispose();
      await limited.stop();
    }
  });
});
