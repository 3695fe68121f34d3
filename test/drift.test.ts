// The drift rules of the upstream contract: new fields, new statuses, missing optional fields
// and timestamp precision never break a response.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FineTuneJobRecord } from '../src/upstream/records.js';
import { expectData, expectErrorCode, startStack, type Stack } from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ simulator: { jobsPerOrganization: 5, providerExamples: false } });
});
afterAll(() => stack.stop());
beforeEach(() => {
  stack.simulator.faults.clear();
  stack.simulator.resetRequests();
});

function acme() {
  return stack.simulator.store.organizations[0]!;
}

function baseRecord(id: string): FineTuneJobRecord {
  return {
    name: 'drift',
    id,
    uuid: '11111111-2222-4333-8444-555555555555',
    org_uuid: acme().uuid,
    status: 'RUNNING',
    config: { model: 'Newton::m', datasets: [{ name: 'd', split: 'train', file_ids: ['f'] }] },
    created_at: '2026-04-27T14:32:18.421000Z',
    updated_at: '2026-04-27T14:32:18.421000Z',
    inference_config_path: null,
  };
}

/** Stores a record as given, even one outside the documented shape. */
function putRaw(record: Record<string, unknown>) {
  stack.simulator.store.put(acme(), record as unknown as FineTuneJobRecord);
}

describe('drift', () => {
  it('maps an unknown status to UNKNOWN without failing the list, and logs it once', async () => {
    stack.simulator.faults.set('listJobs', { unknownStatus: 'PAUSED' });
    const query = 'query { fineTuneJobs { id status upstreamStatus isTerminal } }';
    const first = expectData(
      await stack.query<{ fineTuneJobs: { status: string; upstreamStatus: string }[] }>(query),
    );
    expectData(await stack.query(query));
    expect(first.fineTuneJobs).toHaveLength(stack.simulator.store.list(acme(), null).length);
    expect(first.fineTuneJobs[0]).toMatchObject({
      status: 'UNKNOWN',
      upstreamStatus: 'PAUSED',
      isTerminal: false,
    });
    expect(first.fineTuneJobs.slice(1).every((j) => j.status === j.upstreamStatus)).toBe(true);
    const warnings = stack.logLines.filter((line) => line.includes('"upstreamStatus":"PAUSED"'));
    expect(warnings).toHaveLength(1);
  });

  it('filters on UNKNOWN upstream: the literal status, not one new to the gateway', async () => {
    putRaw({ ...baseRecord('ftj-literal-unknown'), status: 'UNKNOWN' });
    putRaw({ ...baseRecord('ftj-new-status'), status: 'PAUSED' });
    type Jobs = { fineTuneJobs: { id: string; status: string }[] };
    const filtered = expectData(
      await stack.query<Jobs>('query { fineTuneJobs(statuses: [UNKNOWN]) { id status } }'),
    );
    expect(filtered.fineTuneJobs).toEqual([{ id: 'ftj-literal-unknown', status: 'UNKNOWN' }]);
    expect(stack.simulator.requestsTo('listJobs')[0]!.search).toContain('statuses=UNKNOWN');
    const all = expectData(await stack.query<Jobs>('query { fineTuneJobs { id status } }'));
    expect(all.fineTuneJobs.filter((job) => job.status === 'UNKNOWN').map((job) => job.id)).toEqual(
      expect.arrayContaining(['ftj-literal-unknown', 'ftj-new-status']),
    );
  });

  it('ignores fields the upstream adds', async () => {
    putRaw({
      ...baseRecord('ftj-extra-fields'),
      priority: 3,
      config: { ...baseRecord('x').config, epochs: 4 },
    });
    const data = expectData(
      await stack.query('query { fineTuneJob(id: "ftj-extra-fields") { id name config { model } } }'),
    );
    expect(data).toEqual({
      fineTuneJob: { id: 'ftj-extra-fields', name: 'drift', config: { model: 'Newton::m' } },
    });
  });

  it('answers null for a missing inference_config_path', async () => {
    const { inference_config_path: _omitted, ...withoutPath } = baseRecord('ftj-no-path');
    putRaw(withoutPath);
    const data = expectData(
      await stack.query('query { fineTuneJob(id: "ftj-no-path") { inferenceConfigPath } }'),
    );
    expect(data).toEqual({ fineTuneJob: { inferenceConfigPath: null } });
  });

  it.each([
    '2026-04-27T14:32:18.421000Z',
    '2026-04-27T14:32:18.123456789Z',
    '2026-04-27T14:32:18Z',
    '2026-04-27T16:32:18.5+02:00',
  ])('keeps the timestamp %s exactly as the upstream wrote it', async (stamp) => {
    putRaw({ ...baseRecord('ftj-stamp'), created_at: stamp, updated_at: stamp });
    const data = expectData(
      await stack.query('query { fineTuneJob(id: "ftj-stamp") { createdAt updatedAt } }'),
    );
    expect(data).toEqual({ fineTuneJob: { createdAt: stamp, updatedAt: stamp } });
  });

  it.each([
    ['a record without its uuid', { uuid: undefined }],
    ['a status that is not a string', { status: 7 }],
    ['a timestamp that is not RFC 3339', { created_at: 'yesterday' }],
    ['datasets that are not a list', { config: { model: 'm', datasets: 'd' } }],
  ])('reports %s as UPSTREAM_BAD_RESPONSE', async (_name, change) => {
    putRaw({ ...baseRecord('ftj-broken'), ...change });
    const response = await stack.query('query { fineTuneJobs { id } }');
    const error = expectErrorCode(response, 'UPSTREAM_BAD_RESPONSE');
    expect(error.message).toMatch(/unexpected shape/);
    // The list fails as a whole, but only because of this record: repaired, it succeeds.
    stack.simulator.store.put(acme(), baseRecord('ftj-broken'));
    expectData(await stack.query('query { fineTuneJobs { id } }'));
  });
});
