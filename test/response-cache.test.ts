// The optional response cache (http.responseCacheTtlMs): off by default; when on, a successful query answer
// serves identical requests of the same credential until it expires, never another credential's,
// never an error, and never after a create, stop or cancel. Counted at the simulator.
import { afterEach, describe, expect, it } from 'vitest';
import { ACME_KEY, GLOBEX_KEY, expectData, startStack, type Stack } from './harness.js';

const JOBS = 'query Jobs($limit: Int) { fineTuneJobs(limit: $limit) { id orgUuid status } }';

interface Jobs {
  fineTuneJobs: { id: string; orgUuid: string; status: string }[];
}

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

async function cachedResponses(s: Stack): Promise<number> {
  const text = await (await fetch(s.gateway.metricsUrl)).text();
  return Number(/^gateway_graphql_cached_responses_total (\d+)/m.exec(text)?.[1]);
}

describe('response cache', () => {
  it('is off by default: each request after the last one completed calls the upstream', async () => {
    const s = (stack = await startStack());
    for (let i = 0; i < 3; i++) expectData(await s.query<Jobs>(JOBS, { limit: 3 }));
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(3);
    expect(await cachedResponses(s)).toBe(0);
  });

  it('serves a recent answer to identical requests of the same credential', async () => {
    const s = (stack = await startStack({ config: { http: { responseCacheTtlMs: 60000 } } }));
    const first = expectData(await s.query<Jobs>(JOBS, { limit: 3 }));
    for (let i = 0; i < 3; i++) expect(expectData(await s.query<Jobs>(JOBS, { limit: 3 }))).toEqual(first);
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(1);
    expect(await cachedResponses(s)).toBe(3);
    // Other variables are another request.
    expectData(await s.query<Jobs>(JOBS, { limit: 2 }));
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(2);
  });

  it("never serves one credential's answer to another, even with both firing at once", async () => {
    const s = (stack = await startStack({ config: { http: { responseCacheTtlMs: 60000 } } }));
    const [acme, globex] = s.simulator.store.organizations;
    const rounds = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        s.query<Jobs>(JOBS, { limit: 4 }, { apiKey: i % 2 ? GLOBEX_KEY : ACME_KEY }),
      ),
    );
    const again = await Promise.all(
      [ACME_KEY, GLOBEX_KEY].map((apiKey) => s.query<Jobs>(JOBS, { limit: 4 }, { apiKey })),
    );
    for (const [i, response] of [...rounds, ...again].entries()) {
      const isGlobex = i < rounds.length ? i % 2 === 1 : i - rounds.length === 1;
      const org = isGlobex ? globex! : acme!;
      for (const job of expectData(response).fineTuneJobs) expect(job.orgUuid).toBe(org.uuid);
    }
    // One call per credential at most, whatever the interleaving.
    expect(s.simulator.requestsTo('listJobs').length).toBeLessThanOrEqual(2);
  });

  it('is emptied by a write: the next query sees the change', async () => {
    const s = (stack = await startStack({ config: { http: { responseCacheTtlMs: 60000 } } }));
    const before = expectData(await s.query<Jobs>(JOBS, { limit: 20 }));
    const running = before.fineTuneJobs.find((job) => job.status === 'RUNNING');
    expect(running).toBeDefined();
    expectData(await s.query(`mutation { cancelFineTuneJob(id: "${running!.id}") { id status } }`));
    const after = expectData(await s.query<Jobs>(JOBS, { limit: 20 }));
    expect(after.fineTuneJobs.find((job) => job.id === running!.id)?.status).toBe('CANCELLED');
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(2);
  });

  it('expires after its TTL', async () => {
    const s = (stack = await startStack({ config: { http: { responseCacheTtlMs: 150 } } }));
    expectData(await s.query<Jobs>(JOBS, { limit: 3 }));
    expectData(await s.query<Jobs>(JOBS, { limit: 3 }));
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 250));
    expectData(await s.query<Jobs>(JOBS, { limit: 3 }));
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(2);
  });

  it('never keeps an error', async () => {
    const s = (stack = await startStack({
      config: { http: { responseCacheTtlMs: 60000 }, upstream: { retries: 0 } },
    }));
    s.simulator.faults.set('listJobs', { status: 500, times: 1 });
    const failed = await s.query<Jobs>(JOBS, { limit: 3 });
    expect(failed.errors?.[0]?.extensions?.code).toBeDefined();
    expectData(await s.query<Jobs>(JOBS, { limit: 3 }));
    expect(s.simulator.requestsTo('listJobs')).toHaveLength(2);
  });
});
