// Subscriptions cost per poll, not per subscriber: what changed in a list is worked out once per
// poll, however many subscribers with whatever filters; a key may hold so many subscriptions, an
// address so many sockets, and a subscriber that falls behind is let go.
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EventChannel } from '../src/subscriptions/event-channel.js';
import { DEMO_ORGANIZATIONS } from '../src/simulator/seed.js';
import { ACME_KEY, GLOBEX_KEY, metric, startStack, untilMetric, type Stack } from './harness.js';
import { jobRecord } from './jobs.js';
import { connect, waitUntil, type LiveSubscription } from './live-client.js';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const JOBS_CHANGED = `subscription ($statuses: [FineTuneJobStatus!]) {
  fineTuneJobsChanged(statuses: $statuses) { change job { id status } } }`;
const JOB_UPDATED = 'subscription ($id: ID!) { fineTuneJobUpdated(id: $id) { id status } }';
const ACME_SECOND_KEY = 'sim-acme-second-key';

let stack: Stack | undefined;
const clients: { dispose(): unknown }[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.dispose();
  await stack?.stop();
  stack = undefined;
});

async function counter(s: Stack, name: string): Promise<number> {
  const text = await (await fetch(s.gateway.metricsUrl)).text();
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
}

describe('one comparison of the list per poll', () => {
  it('forty subscribers with four filters: the changes of a step are counted once, and each gets its own', async () => {
    const s = (stack = await startStack({
      simulator: { jobsPerOrganization: 30, providerExamples: false },
      config: { subscriptions: { pollMs: 20, activePollMs: 20 } },
    }));
    const acme = s.simulator.store.organizations[0]!;
    const filters = [null, ['RUNNING'], ['STARTING', 'RUNNING'], ['FINALIZING', 'COMPLETED']];
    const live = connect(s.gateway.url, ACME_KEY);
    clients.push(live);
    const subs = Array.from({ length: 40 }, (_, i) =>
      live.subscribe(JOBS_CHANGED, { statuses: filters[i % 4] }),
    );
    // Every subscriber has heard its starting point once the list poller has polled.
    const polled = s.simulator.requestsTo('listJobs').length;
    while (s.simulator.requestsTo('listJobs').length < polled + 2) await new Promise((r) => setTimeout(r, 5));
    const before = await counter(s, 'gateway_subscription_list_changes_total');
    const seen = new Map(
      s.simulator.store.list(acme, null).map((j) => [j.id, `${j.status} ${j.updated_at}`]),
    );
    s.simulator.advance(1);
    const changed = s.simulator.store
      .list(acme, null)
      .filter((j) => seen.get(j.id) !== `${j.status} ${j.updated_at}`).length;
    expect(changed).toBeGreaterThan(0);
    // The unfiltered subscribers hear every change (of status or updatedAt).
    for (const [i, sub] of subs.entries()) if (i % 4 === 0) await sub.waitForEvents(changed);
    expect((await counter(s, 'gateway_subscription_list_changes_total')) - before).toBe(changed);
    for (const [i, sub] of subs.entries()) {
      const wanted = filters[i % 4];
      for (const event of sub.events) {
        const { change, job } = (
          event.data as { fineTuneJobsChanged: { change: string; job: { status: string } } }
        ).fineTuneJobsChanged;
        if (wanted !== null && change !== 'LEFT') expect(wanted).toContain(job.status);
      }
    }
  });
});

describe('bounds', () => {
  it('subscriptions.perKey: one more is SUBSCRIPTION_LIMIT_EXCEEDED, until one ends', async () => {
    const s = (stack = await startStack({
      config: { subscriptions: { perKey: 2, pollMs: 1000 } },
    }));
    const live = connect(s.gateway.url, ACME_KEY);
    clients.push(live);
    const first = live.subscribe(JOBS_CHANGED);
    const second = live.subscribe(JOBS_CHANGED, { statuses: ['RUNNING'] });
    const third = live.subscribe(JOBS_CHANGED, { statuses: ['FAILED'] });
    await third.finished;
    const shown = JSON.stringify(third.failure ?? third.events);
    expect(shown).toContain('SUBSCRIPTION_LIMIT_EXCEEDED');
    expect(shown).toContain('"limit":"perKey"');
    first.unsubscribe();
    second.unsubscribe();
    const again = live.subscribe(JOBS_CHANGED);
    const polled = s.simulator.requestsTo('listJobs').length;
    while (s.simulator.requestsTo('listJobs').length <= polled) await new Promise((r) => setTimeout(r, 5));
    expect(again.failure).toBeUndefined();
    again.unsubscribe();
  });

  it('subscriptions.connectionsPerAddress: the upgrade of one socket more is refused', async () => {
    const s = (stack = await startStack({ config: { subscriptions: { connectionsPerAddress: 2 } } }));
    const open = [connect(s.gateway.url, ACME_KEY), connect(s.gateway.url, ACME_KEY)];
    clients.push(...open);
    const held = open.map((c) => c.subscribe(JOBS_CHANGED));
    // Both sockets are up once each has its starting point (a poll).
    while (s.simulator.requestsTo('listJobs').length < 1) await new Promise((r) => setTimeout(r, 5));
    const extra = connect(s.gateway.url, ACME_KEY);
    clients.push(extra);
    const refused = extra.subscribe(JOBS_CHANGED);
    await refused.finished;
    expect(String((refused.failure as Error).message)).toContain('429');
    for (const sub of held) sub.unsubscribe();
  });

  it('a consumer that falls behind its backlog gets SUBSCRIPTION_LIMIT_EXCEEDED and is let go', async () => {
    const ended: string[] = [];
    const channel = new EventChannel<string>(3, () => 'behind');
    channel.onEnd(() => ended.push('cleanup'));
    for (const value of ['a', 'b', 'c', 'd']) channel.push(value);
    const seen: string[] = [];
    for await (const value of channel) seen.push(value);
    expect(seen).toEqual(['behind']);
    expect(ended).toEqual(['cleanup']);
  });

  it("one poll's changes, however many, reach a consumer that keeps up; one that has not caught up by the next poll is let go", async () => {
    const channel = new EventChannel<string>(3, () => 'behind');
    const burst = Array.from({ length: 10 }, (_, i) => `change ${i}`);
    channel.beginBatch();
    for (const value of burst) channel.push(value);
    const seen: string[] = [];
    for (let i = 0; i < 6; i += 1) seen.push((await channel.next()).value as string);
    // Four of the first batch still unread when the next begins: more than the backlog of 3.
    channel.beginBatch();
    channel.push('next poll');
    for await (const value of channel) seen.push(value);
    expect(seen).toEqual([...burst.slice(0, 6), 'behind']);
  });

  it('over the wire: a step that registers more jobs than subscriptions.backlog reaches the subscriber whole', async () => {
    const s = (stack = await startStack({
      simulator: { jobsPerOrganization: 2, providerExamples: false },
      config: { subscriptions: { pollMs: 20, activePollMs: 20, backlog: 2 } },
    }));
    const live = connect(s.gateway.url, ACME_KEY);
    clients.push(live);
    const sub = live.subscribe(JOBS_CHANGED);
    // The starting point: the subscriber has heard the list once the poller has polled twice.
    const polled = s.simulator.requestsTo('listJobs').length;
    while (s.simulator.requestsTo('listJobs').length < polled + 2) await new Promise((r) => setTimeout(r, 5));
    const before = sub.events.length;
    const acme = s.simulator.store.organizations[0]!;
    for (let i = 0; i < 6; i += 1) s.simulator.store.put(acme, jobRecord(acme, { status: 'REGISTERED' }));
    const events = await sub.waitForEvents(before + 6);
    expect(events.slice(before).every((event) => event.errors === undefined)).toBe(true);
    expect(sub.completed).toBe(false);
  });
});

describe('documents held by subscriptions (subscriptions.documentBytes, documentBytesPerKey)', () => {
  it('are bounded per key and all keys together; an ended one gives its room back', async () => {
    const [acmeOrg, globexOrg] = DEMO_ORGANIZATIONS;
    const s = (stack = await startStack({
      // A second key of ACME's: another credential, so another share.
      simulator: {
        jobsPerOrganization: 2,
        organizations: [{ ...acmeOrg!, apiKeys: [ACME_KEY, ACME_SECOND_KEY] }, globexOrg!],
      },
      config: { subscriptions: { documentBytes: 1024, documentBytesPerKey: 512, pollMs: 60000 } },
    }));
    // 400 bytes each, whitespace included: one per key fits, and two keys' fit all together.
    const padded = `${JOBS_CHANGED}${' '.repeat(400 - JOBS_CHANGED.length)}`;
    const acme = connect(s.gateway.url, ACME_KEY);
    const globex = connect(s.gateway.url, GLOBEX_KEY);
    const acmeSecond = connect(s.gateway.url, ACME_SECOND_KEY);
    clients.push(acme, globex, acmeSecond);
    const first = acme.subscribe(padded);
    const second = globex.subscribe(padded);
    await untilMetric(s, 'gateway_subscription_document_bytes', (bytes) => bytes === 800);
    const overShare = globex.subscribe(padded);
    await overShare.finished;
    expect(JSON.stringify(overShare.failure)).toContain('"limit":"documentBytesPerKey"');
    const overAll = acmeSecond.subscribe(padded);
    await overAll.finished;
    expect(JSON.stringify(overAll.failure)).toContain('"limit":"documentBytes"');

    first.unsubscribe();
    await untilMetric(s, 'gateway_subscription_document_bytes', (bytes) => bytes === 400);
    const fourth = acmeSecond.subscribe(padded);
    await untilMetric(s, 'gateway_subscription_document_bytes', (bytes) => bytes === 800);
    expect(fourth.failure).toBeUndefined();
    second.unsubscribe();
    fourth.unsubscribe();
    await untilMetric(s, 'gateway_subscription_document_bytes', (bytes) => bytes === 0);
  });

  it("at the defaults, callers without a key take their share of documents and of subscriptions, and another organization's key still gets its subscription and its events", async () => {
    // The gateway's own key is ACME's: every caller without a key acts with it, as one caller.
    const s = (stack = await startStack({
      simulator: { jobsPerOrganization: 2, providerExamples: false },
      serverApiKey: ACME_KEY,
    }));
    const [acmeOrg, globexOrg] = s.simulator.store.organizations;
    const watched = jobRecord(acmeOrg!, { status: 'RUNNING' });
    const globexJob = jobRecord(globexOrg!, { status: 'STARTING' });
    s.simulator.store.put(acmeOrg!, watched);
    s.simulator.store.put(globexOrg!, globexJob);
    // Each subscription is settled once it has its first event (the job now) or its refusal.
    const settled = (sub: LiveSubscription) =>
      waitUntil(() => sub.events.length > 0 || sub.failure !== undefined || sub.completed);
    const refusal = (sub: LiveSubscription) => JSON.stringify(sub.failure ?? null);
    const anonymous = () => {
      const c = connect(s.gateway.url, null);
      clients.push(c);
      return c;
    };

    const globex = connect(s.gateway.url, GLOBEX_KEY);
    clients.push(globex);
    const tenantEvent = (sub: LiveSubscription, i: number) =>
      (sub.events[i]?.data?.fineTuneJobUpdated as { status: string } | undefined)?.status;

    // Documents padded to just under limits.maxBytes (64 KiB), one after another, on as many
    // sockets as it takes (subscriptions.perConnection, 100), until one is refused; then shorter
    // ones (700 bytes, then as short as the tenant's), until the room left fits none.
    const flood: ReturnType<typeof anonymous>[] = [];
    let open = 0;
    const refusals: string[] = [];
    for (const size of [65_400, 700, JOB_UPDATED.length]) {
      const padded = `${JOB_UPDATED}${' '.repeat(size - JOB_UPDATED.length)}`;
      for (;;) {
        if (open % 100 === 0) flood.push(anonymous());
        const sub = flood.at(-1)!.subscribe(padded, { id: watched.id });
        await settled(sub);
        if (sub.failure !== undefined) {
          refusals.push(refusal(sub));
          break;
        }
        open += 1;
      }
    }
    // Another organization's short subscription: refused before, as all keys' bound was full.
    const tenant = globex.subscribe(JOB_UPDATED, { id: globexJob.id });
    await tenant.waitForEvents(1);
    expect(tenantEvent(tenant, 0)).toBe('STARTING');
    for (const shown of refusals) expect(shown).toContain('"limit":"documentBytesPerKey"');
    const share = 2 * 1024 * 1024;
    const heldByFlood = (await metric(s, 'gateway_subscription_document_bytes')) - JOB_UPDATED.length;
    expect(heldByFlood).toBeLessThanOrEqual(share);
    expect(heldByFlood).toBeGreaterThan(share - JOB_UPDATED.length);

    // Their share of subscriptions: short ones, on 10 sockets, up to subscriptions.perKey (1,000).
    for (const socket of flood) await socket.dispose();
    await untilMetric(s, 'gateway_subscription_document_bytes', (bytes) => bytes === JOB_UPDATED.length);
    for (let i = 0; i < 10; i += 1) {
      const socket = anonymous();
      const batch = Array.from({ length: 100 }, () => socket.subscribe(JOB_UPDATED, { id: watched.id }));
      await Promise.all(batch.map(settled));
      expect(batch.filter((sub) => sub.failure !== undefined)).toEqual([]);
    }
    const oneMore = anonymous().subscribe(JOB_UPDATED, { id: watched.id });
    await settled(oneMore);
    expect(refusal(oneMore)).toContain('"limit":"perKey"');
    const another = globex.subscribe(JOB_UPDATED, { id: globexJob.id });
    await another.waitForEvents(1);

    // And the tenant's events keep coming.
    s.simulator.advance();
    await tenant.waitForEvents(2);
    expect(tenantEvent(tenant, 1)).toBe('RUNNING');
    // Over 1,000 subscriptions: more than the default 20 s on a busy machine.
  }, 60_000);

  it('a key the upstream refuses holds nothing: its subscription ends at its first poll with UNAUTHENTICATED', async () => {
    const s = (stack = await startStack({ simulator: { jobsPerOrganization: 2, providerExamples: false } }));
    const job = s.simulator.store.list(s.simulator.store.organizations[0]!, null)[0]!;
    const padded = `${JOB_UPDATED}${' '.repeat(65_400 - JOB_UPDATED.length)}`;
    // Invented keys, each with as large a document as may be sent.
    const invented = Array.from({ length: 20 }, (_, i) => `invented-key-${i}-${'x'.repeat(20)}`);
    const subs = invented.map((key) => {
      const c = connect(s.gateway.url, key);
      clients.push(c);
      return c.subscribe(padded, { id: job.id });
    });
    await Promise.all(subs.map((sub) => sub.finished));
    for (const sub of subs) {
      expect(sub.completed).toBe(true);
      expect(sub.events.map((e) => e.errors?.[0]?.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    }
    // One poll each, and the bytes are back once each has ended.
    expect(s.simulator.requestsTo('getJob')).toHaveLength(invented.length);
    expect(await metric(s, 'gateway_subscription_document_bytes')).toBe(0);
    const shown = JSON.stringify(subs.map((sub) => sub.events));
    for (const key of invented) expect(shown).not.toContain(key);
  });

  it('count a document sent by its APQ hash (as a documentId) as one sent as text', async () => {
    // Trusted documents on, not only them: an id the manifest does not list is looked up in APQ.
    const dir = await mkdtemp(join(tmpdir(), 'held-documents-'));
    const manifest = join(dir, 'manifest.json');
    const listed = 'query Listed { fineTuneJobs(limit: 1) { id } }';
    await writeFile(
      manifest,
      JSON.stringify({
        format: 'apollo-persisted-query-manifest',
        version: 1,
        operations: [{ id: sha256(listed), name: 'Listed', type: 'query', body: listed }],
      }),
    );
    try {
      const s = (stack = await startStack({
        simulator: { jobsPerOrganization: 2 },
        config: {
          subscriptions: { documentBytes: 2048, documentBytesPerKey: 1024, pollMs: 60000 },
          security: { trustedDocuments: { manifest } },
        },
      }));
      const padded = `${JOBS_CHANGED}${' '.repeat(600 - JOBS_CHANGED.length)}`;
      const live = connect(s.gateway.url, ACME_KEY);
      clients.push(live);
      const outcome = (payload: Record<string, unknown>) =>
        new Promise<unknown>((resolve) => {
          live.client.subscribe(payload as { query: string }, {
            next: () => resolve('running'),
            error: resolve,
            complete: () => undefined,
          });
        });
      // Registered in APQ (and running) with its text, then by its hash alone: 1,200 bytes, over
      // the key's 1,024.
      const persistedQuery = { version: 1, sha256Hash: sha256(padded) };
      void outcome({ query: padded, extensions: { persistedQuery } });
      await untilMetric(s, 'gateway_subscription_document_bytes', (bytes) => bytes === 600);
      const byHash = await outcome({ query: '', documentId: sha256(padded) });
      expect(JSON.stringify(byHash)).toContain('SUBSCRIPTION_LIMIT_EXCEEDED');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
