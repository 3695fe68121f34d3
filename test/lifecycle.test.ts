// isTerminal and allowedActions for every documented status, and proof over HTTP that what
// allowedActions promises is exactly what the API accepts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KNOWN_JOB_STATUSES } from '../src/upstream/records.js';
import { expectData, startStack, type Stack } from './harness.js';
import { jobRecord } from './jobs.js';

const EXPECTED: Record<string, { isTerminal: boolean; allowedActions: string[] }> = {
  UNKNOWN: { isTerminal: false, allowedActions: [] },
  REGISTERED: { isTerminal: false, allowedActions: ['STOP', 'CANCEL'] },
  STARTING: { isTerminal: false, allowedActions: ['STOP', 'CANCEL'] },
  RUNNING: { isTerminal: false, allowedActions: ['STOP', 'CANCEL'] },
  FINALIZING: { isTerminal: false, allowedActions: ['CANCEL'] },
  STOPPING: { isTerminal: false, allowedActions: ['CANCEL'] },
  COMPLETED: { isTerminal: true, allowedActions: [] },
  STOPPED: { isTerminal: true, allowedActions: [] },
  CANCELLED: { isTerminal: true, allowedActions: [] },
  FAILED: { isTerminal: true, allowedActions: [] },
};

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ simulator: { jobsPerOrganization: 0, providerExamples: false } });
});
afterAll(() => stack.stop());

const acme = () => stack.simulator.store.organizations[0]!;

function putJob(status: string) {
  const record = jobRecord(acme(), { status });
  stack.simulator.store.put(acme(), record);
  return record;
}

describe('life-cycle helpers', () => {
  it('covers every documented status', () => {
    expect(Object.keys(EXPECTED).sort()).toEqual([...KNOWN_JOB_STATUSES].sort());
  });

  it.each(Object.entries(EXPECTED))('a %s job: %o', async (status, expected) => {
    const job = putJob(status);
    const data = expectData(
      await stack.query<{ fineTuneJob: unknown }>(
        `query { fineTuneJob(id: "${job.id}") { status isTerminal allowedActions } }`,
      ),
    );
    expect(data.fineTuneJob).toEqual({ status, ...expected });
  });

  it('offers nothing for a status the gateway does not know', async () => {
    const job = putJob('PAUSED');
    const data = expectData(
      await stack.query(
        `query { fineTuneJob(id: "${job.id}") { status upstreamStatus isTerminal allowedActions } }`,
      ),
    );
    expect(data.fineTuneJob).toEqual({
      status: 'UNKNOWN',
      upstreamStatus: 'PAUSED',
      isTerminal: false,
      allowedActions: [],
    });
  });

  it.each(Object.keys(EXPECTED))(
    'a %s job accepts exactly the actions allowedActions lists',
    async (status) => {
      for (const [action, mutation] of [
        ['STOP', 'stopFineTuneJob'],
        ['CANCEL', 'cancelFineTuneJob'],
      ] as const) {
        const job = putJob(status);
        const response = await stack.query(`mutation { ${mutation}(id: "${job.id}") { status } }`);
        const accepted = response.errors === undefined;
        expect(accepted, `${action} on ${status}: ${JSON.stringify(response)}`).toBe(
          EXPECTED[status]!.allowedActions.includes(action),
        );
        if (!accepted) expect(response.errors![0]!.extensions?.code).toBe('CONFLICT');
      }
    },
  );
});
