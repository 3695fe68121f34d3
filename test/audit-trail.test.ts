// The audit trail over the wire: every create, stop and cancel, done, refused or failed, is one
// `audit` log line (who, what, which job, the outcome) and a count in gateway_job_writes_total,
// over HTTP and WebSocket, and never shows the key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialIdentity } from '../src/context.js';
import type { FineTuneJobRecord } from '../src/upstream/records.js';
import {
  ACME_KEY,
  GLOBEX_KEY,
  expectData,
  expectErrorCode,
  metric,
  startStack,
  type Stack,
} from './harness.js';
import { jobRecord } from './jobs.js';
import { connect } from './live-client.js';

const CREATE = `mutation ($input: CreateFineTuneJobInput!) { createFineTuneJob(input: $input) { id } }`;
const STOP = `mutation ($id: ID!) { stopFineTuneJob(id: $id) { id } }`;
const CANCEL = `mutation ($id: ID!) { cancelFineTuneJob(id: $id) { id status } }`;
const INPUT = {
  name: 'audited run',
  model: 'Newton::c2_4_7b_251215a172f6d7',
  datasets: [{ name: 'training-set', split: 'train', fileIds: ['file-abc123'] }],
};

interface AuditLine {
  msg: string;
  audit: true;
  requestId?: string;
  [field: string]: unknown;
}

/** Runs `act` and returns the audit lines it logged. */
async function auditLinesOf(stack: Stack, act: () => Promise<unknown>): Promise<AuditLine[]> {
  const from = stack.logLines.length;
  await act();
  return stack.logLines
    .slice(from)
    .map((line) => JSON.parse(line) as AuditLine)
    .filter((line) => line.audit === true);
}

const writes = (stack: Stack, labels: Record<string, string>) =>
  metric(stack, 'gateway_job_writes_total', labels);

describe('with a key of its own', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      simulator: { jobsPerOrganization: 0, providerExamples: false },
      config: { limits: { maxBatch: 2 } },
    });
  });
  afterAll(() => stack.stop());

  const putJob = (overrides: Partial<FineTuneJobRecord> = {}) => {
    const acme = stack.simulator.store.organizations[0]!;
    const record = jobRecord(acme, overrides);
    stack.simulator.store.put(acme, record);
    return record;
  };

  it('logs a done create with the id the gateway chose for the job', async () => {
    let id = '';
    const lines = await auditLinesOf(stack, async () => {
      const data = expectData(
        await stack.query<{ createFineTuneJob: { id: string } }>(CREATE, { input: INPUT }),
      );
      id = data.createFineTuneJob.id;
    });
    expect(id).toMatch(/^ftj-audited-run-[0-9a-f]{8}$/);
    expect(lines).toEqual([
      expect.objectContaining({
        msg: 'audit',
        level: 30,
        action: 'create',
        jobId: id,
        outcome: 'done',
        credential: credentialIdentity(ACME_KEY),
        transport: 'http',
        requestId: expect.any(String),
      }),
    ]);
    expect(lines[0]).not.toHaveProperty('errorCode');
    expect(await writes(stack, { action: 'create', outcome: 'done' })).toBe(1);
  });

  it('logs a failed stop of a job the organization does not have, with its code', async () => {
    const lines = await auditLinesOf(stack, async () =>
      expectErrorCode(await stack.query(STOP, { id: 'ftj-no-such-job' }), 'NOT_FOUND'),
    );
    expect(lines).toEqual([
      expect.objectContaining({
        action: 'stop',
        jobId: 'ftj-no-such-job',
        outcome: 'failed',
        errorCode: 'NOT_FOUND',
      }),
    ]);
    expect(await writes(stack, { action: 'stop', outcome: 'failed' })).toBe(1);
  });

  it('logs a done cancel', async () => {
    const job = putJob({ status: 'RUNNING' });
    const lines = await auditLinesOf(stack, async () =>
      expectData(await stack.query(CANCEL, { id: job.id })),
    );
    expect(lines).toEqual([expect.objectContaining({ action: 'cancel', jobId: job.id, outcome: 'done' })]);
    expect(await writes(stack, { action: 'cancel', outcome: 'done' })).toBe(1);
  });

  it('logs one line per write field of an operation', async () => {
    const running = putJob({ status: 'RUNNING' });
    const lines = await auditLinesOf(stack, async () => {
      const response = await stack.query(
        `mutation ($a: ID!, $b: ID!) {
          first: cancelFineTuneJob(id: $a) { id }
          ...Second
        }
        fragment Second on Mutation { second: stopFineTuneJob(id: $b) { id } }`,
        { a: running.id, b: 'ftj-never-was' },
      );
      expectErrorCode(response, 'NOT_FOUND');
    });
    expect(lines).toEqual([
      expect.objectContaining({ action: 'cancel', jobId: running.id, outcome: 'done' }),
      expect.objectContaining({
        action: 'stop',
        jobId: 'ftj-never-was',
        outcome: 'failed',
        errorCode: 'NOT_FOUND',
      }),
    ]);
    expect(lines[0]!.requestId).toBe(lines[1]!.requestId);
    expect(await writes(stack, { action: 'cancel', outcome: 'done' })).toBe(2);
    expect(await writes(stack, { action: 'stop', outcome: 'failed' })).toBe(2);
  });

  it('logs a write left unrun after an earlier one failed as refused, with the code that stopped it', async () => {
    const running = putJob({ status: 'RUNNING' });
    const lines = await auditLinesOf(stack, async () => {
      const response = await stack.query(
        `mutation ($b: ID!) { a: stopFineTuneJob(id: "ftj-not-here") { id } b: cancelFineTuneJob(id: $b) { id } }`,
        { b: running.id },
      );
      expectErrorCode(response, 'NOT_FOUND');
    });
    expect(stack.simulator.store.get(stack.simulator.store.organizations[0]!, running.id)?.status).toBe(
      'RUNNING',
    );
    expect(lines).toEqual([
      expect.objectContaining({
        action: 'stop',
        jobId: 'ftj-not-here',
        outcome: 'failed',
        errorCode: 'NOT_FOUND',
      }),
      expect.objectContaining({
        action: 'cancel',
        jobId: running.id,
        outcome: 'refused',
        errorCode: 'NOT_FOUND',
      }),
    ]);
  });

  it('logs each write of a batch', async () => {
    const [one, two] = [putJob({ status: 'RUNNING' }), putJob({ status: 'RUNNING' })];
    const lines = await auditLinesOf(stack, async () => {
      const response = await fetch(stack.gateway.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ACME_KEY}` },
        body: JSON.stringify([
          { query: CANCEL, variables: { id: one.id } },
          { query: CANCEL, variables: { id: two.id } },
        ]),
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject([
        { data: { cancelFineTuneJob: { id: one.id, status: 'CANCELLED' } } },
        { data: { cancelFineTuneJob: { id: two.id, status: 'CANCELLED' } } },
      ]);
    });
    expect(lines).toEqual([
      expect.objectContaining({ action: 'cancel', jobId: one.id, outcome: 'done' }),
      expect.objectContaining({ action: 'cancel', jobId: two.id, outcome: 'done' }),
    ]);
  });

  it('logs a write over WebSocket', async () => {
    const job = putJob({ status: 'RUNNING' });
    const socket = connect(stack.gateway.url, ACME_KEY);
    try {
      const lines = await auditLinesOf(stack, async () => {
        const result = socket.subscribe(STOP, { id: job.id });
        await result.finished;
        expect(result.events).toEqual([{ data: { stopFineTuneJob: { id: job.id } } }]);
      });
      expect(lines).toEqual([
        expect.objectContaining({
          action: 'stop',
          jobId: job.id,
          outcome: 'done',
          credential: credentialIdentity(ACME_KEY),
          transport: 'websocket',
        }),
      ]);
    } finally {
      await socket.dispose();
    }
    expect(await writes(stack, { action: 'stop', outcome: 'done' })).toBe(1);
  });

  it('counts every write by action and outcome, and no line shows the key', async () => {
    expect(await writes(stack, { action: 'create', outcome: 'done' })).toBe(1);
    expect(await writes(stack, { action: 'cancel', outcome: 'done' })).toBe(4);
    expect(await writes(stack, { action: 'cancel', outcome: 'refused' })).toBe(1);
    expect(await writes(stack, { action: 'stop', outcome: 'failed' })).toBe(3);
    expect(await writes(stack, { action: 'stop', outcome: 'done' })).toBe(1);
    expect(stack.logLines.join('\n')).not.toContain(ACME_KEY);
  });
});

describe('refused by the gateway', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      simulator: { jobsPerOrganization: 0, providerExamples: false },
      serverApiKey: GLOBEX_KEY,
      config: { security: { anonymousWrites: false }, limits: { maxAliases: 0 } },
    });
  });
  afterAll(() => stack.stop());

  it('logs an anonymous write refused as UNAUTHENTICATED, with no upstream call', async () => {
    stack.simulator.resetRequests();
    const lines = await auditLinesOf(stack, async () =>
      expectErrorCode(
        await stack.query(CANCEL, { id: 'ftj-someones-run' }, { apiKey: null }),
        'UNAUTHENTICATED',
      ),
    );
    expect(stack.simulator.requests).toHaveLength(0);
    expect(lines).toEqual([
      expect.objectContaining({
        action: 'cancel',
        jobId: 'ftj-someones-run',
        outcome: 'refused',
        errorCode: 'UNAUTHENTICATED',
        // The gateway's key served the request: its identity, never the key.
        credential: credentialIdentity(GLOBEX_KEY),
      }),
    ]);
    expect(await writes(stack, { action: 'cancel', outcome: 'refused' })).toBe(1);
  });

  it('logs a create refused for its input, without a job id', async () => {
    const lines = await auditLinesOf(stack, async () =>
      expectErrorCode(await stack.query(CREATE, { input: { ...INPUT, datasets: [] } }), 'BAD_USER_INPUT'),
    );
    expect(lines).toEqual([
      expect.objectContaining({ action: 'create', outcome: 'refused', errorCode: 'BAD_USER_INPUT' }),
    ]);
    expect(lines[0]).not.toHaveProperty('jobId');
  });

  it('logs a write refused by a limit before it ran', async () => {
    stack.simulator.resetRequests();
    const lines = await auditLinesOf(stack, async () => {
      const response = await stack.query(`mutation { gone: cancelFineTuneJob(id: "ftj-over-limit") { id } }`);
      expectErrorCode(response, 'QUERY_LIMIT_EXCEEDED');
    });
    expect(stack.simulator.requests).toHaveLength(0);
    expect(lines).toEqual([
      expect.objectContaining({
        action: 'cancel',
        jobId: 'ftj-over-limit',
        outcome: 'refused',
        errorCode: 'QUERY_LIMIT_EXCEEDED',
        credential: credentialIdentity(ACME_KEY),
      }),
    ]);
    expect(await writes(stack, { action: 'cancel', outcome: 'refused' })).toBe(2);
    expect(await writes(stack, { outcome: 'done' })).toBe(0);
    const log = stack.logLines.join('\n');
    expect(log).not.toContain(ACME_KEY);
    expect(log).not.toContain(GLOBEX_KEY);
  });
});
