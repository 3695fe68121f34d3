// Two organizations' keys firing at once, with the same documents: neither ever sees a job of
// the other, whatever the gateway batches, deduplicates or caches.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACME_KEY, GLOBEX_KEY, expectData, startStack, type Stack } from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ simulator: { jobsPerOrganization: 20 } });
});
afterAll(() => stack.stop());

interface Job {
  id: string;
  orgUuid: string;
}

describe('tenant isolation', () => {
  it('concurrent identical operations with two keys return only each key’s jobs', async () => {
    const [acme, globex] = stack.simulator.store.organizations;
    const acmeIds = stack.simulator.store.list(acme!, null).map((j) => j.id);
    const globexIds = stack.simulator.store.list(globex!, null).map((j) => j.id);
    // The same document asks for jobs of both organizations by id, and for the lists.
    const document = `query Mixed {
      all: fineTuneJobs { id orgUuid }
      page: fineTuneJobs(limit: 5, offset: 2) { id orgUuid }
      running: fineTuneJobs(statuses: [RUNNING, COMPLETED]) { id orgUuid }
      a0: fineTuneJob(id: "${acmeIds[0]}") { id orgUuid }
      a1: fineTuneJob(id: "${acmeIds[7]}") { id orgUuid }
      g0: fineTuneJob(id: "${globexIds[0]}") { id orgUuid }
      g1: fineTuneJob(id: "${globexIds[7]}") { id orgUuid }
    }`;
    const keys = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? ACME_KEY : GLOBEX_KEY));
    const responses = await Promise.all(keys.map((key) => stack.query(document, undefined, { apiKey: key })));

    responses.forEach((response, i) => {
      const data = expectData(response) as Record<string, Job | Job[] | null>;
      const own = keys[i] === ACME_KEY ? acme! : globex!;
      const ownIds = new Set(keys[i] === ACME_KEY ? acmeIds : globexIds);
      const jobs = Object.values(data).flatMap((v) => (v === null ? [] : Array.isArray(v) ? v : [v]));
      expect(jobs.length).toBeGreaterThan(20);
      for (const job of jobs) {
        expect(job.orgUuid).toBe(own.uuid);
        expect(ownIds.has(job.id)).toBe(true);
      }
      // The other organization's jobs are simply not there.
      const [otherFirst, otherSecond] = keys[i] === ACME_KEY ? ['g0', 'g1'] : ['a0', 'a1'];
      expect(data[otherFirst!]).toBeNull();
      expect(data[otherSecond!]).toBeNull();
    });

    // Every upstream request carried the key of the operation it served.
    const byOrganization = new Map<string, number>();
    for (const r of stack.simulator.requests) {
      const org = r.organization ?? 'none';
      byOrganization.set(org, (byOrganization.get(org) ?? 0) + 1);
    }
    expect([...byOrganization.keys()].sort()).toEqual(['acme', 'globex']);
    // No equal counts per organization: identical queries in flight for the same key share one
    // execution (shared-operations.test.ts), so how many run depends on timing.
  });
});
