// createFineTuneJob, stopFineTuneJob and cancelFineTuneJob over HTTP against the simulator:
// success, every failure with its code, and the never-duplicate, never-lose guarantee when the
// simulator commits a write and then loses its answer.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FineTuneJobRecord } from '../src/upstream/records.js';
import { expectData, expectErrorCode, startStack, type Stack } from './harness.js';
import { jobRecord } from './jobs.js';

const JOB_FIELDS =
  'id name status isTerminal allowedActions config { model datasets { name split fileIds } }';

const CREATE = `mutation ($input: CreateFineTuneJobInput!) {
  createFineTuneJob(input: $input) { ${JOB_FIELDS} }
}`;
const STOP = `mutation ($id: ID!) { stopFineTuneJob(id: $id) { ${JOB_FIELDS} } }`;
const CANCEL = `mutation ($id: ID!) { cancelFineTuneJob(id: $id) { ${JOB_FIELDS} } }`;

interface Job {
  id: string;
  name: string;
  status: string;
  isTerminal: boolean;
  allowedActions: string[];
  config: { model: string; datasets: { name: string; split: string; fileIds: string[] }[] };
}

const MODEL = 'Newton::c2_4_7b_251215a172f6d7';

function input(overrides: Record<string, unknown> = {}) {
  return {
    name: 'my-finetune-run',
    model: MODEL,
    datasets: [
      { name: 'training-set', split: 'train', fileIds: ['file-abc123'] },
      { name: 'eval-set', split: 'eval', fileIds: ['file-def456'] },
    ],
    ...overrides,
  };
}

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ simulator: { jobsPerOrganization: 0, providerExamples: false } });
});
afterAll(() => stack.stop());
beforeEach(() => {
  stack.simulator.faults.clear();
  stack.simulator.resetRequests();
});

const acme = () => stack.simulator.store.organizations[0]!;
const storedJobsNamed = (name: string) =>
  stack.simulator.store.list(acme(), null).filter((j) => j.name === name);

function putJob(overrides: Partial<FineTuneJobRecord> = {}): FineTuneJobRecord {
  const record = jobRecord(acme(), overrides);
  stack.simulator.store.put(acme(), record);
  return record;
}

describe('createFineTuneJob', () => {
  it('creates a REGISTERED job with the id the client chose', async () => {
    const data = expectData(
      await stack.query<{ createFineTuneJob: Job }>(CREATE, { input: input({ id: 'ftj-client-chosen-1' }) }),
    );
    expect(data.createFineTuneJob).toEqual({
      id: 'ftj-client-chosen-1',
      name: 'my-finetune-run',
      status: 'REGISTERED',
      isTerminal: false,
      allowedActions: ['STOP', 'CANCEL'],
      config: {
        model: MODEL,
        datasets: [
          { name: 'training-set', split: 'train', fileIds: ['file-abc123'] },
          { name: 'eval-set', split: 'eval', fileIds: ['file-def456'] },
        ],
      },
    });
    expect(stack.simulator.requestsTo('createJob')).toHaveLength(1);
    expect(stack.simulator.store.get(acme(), 'ftj-client-chosen-1')?.config.datasets[1]).toEqual({
      name: 'eval-set',
      split: 'eval',
      file_ids: ['file-def456'],
    });
  });

  it('gives a job without an id one before sending it: ftj-<slug of the name>-<8 hex>', async () => {
    const data = expectData(
      await stack.query<{ createFineTuneJob: Job }>(CREATE, { input: input({ name: 'Gait Anomaly v2!' }) }),
    );
    expect(data.createFineTuneJob.id).toMatch(/^ftj-gait-anomaly-v2-[0-9a-f]{8}$/);
    expect(stack.simulator.store.get(acme(), data.createFineTuneJob.id)?.name).toBe('Gait Anomaly v2!');
  });

  it('rejects an id already in use as CONFLICT, on the first attempt, without retrying', async () => {
    const existing = putJob();
    const response = await stack.query(CREATE, { input: input({ id: existing.id }) });
    const error = expectErrorCode(response, 'CONFLICT');
    expect(error.extensions?.upstream).toMatchObject({ status: 409, code: 'job_already_exists' });
    expect(response.data).toBeNull();
    expect(stack.simulator.requestsTo('createJob')).toHaveLength(1);
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(0);
    expect(stack.simulator.store.get(acme(), existing.id)).toEqual(existing);
  });

  it.each([
    ['an empty name', { name: '' }, 'input.name'],
    ['a blank name', { name: '   ' }, 'input.name'],
    ['an empty id', { id: '' }, 'input.id'],
    ['an id over 64 characters', { id: 'x'.repeat(65) }, 'input.id'],
    ['an id with a slash, which no path could address', { id: 'team/job-1' }, 'input.id'],
    ['the dot segment `..` as id', { id: '..' }, 'input.id'],
    ['an empty model', { model: '' }, 'input.model'],
    ['no data sets', { datasets: [] }, 'input.datasets'],
    [
      'a split other than train or eval',
      {
        datasets: [
          { name: 'd', split: 'train', fileIds: ['f'] },
          { name: 'e', split: 'test', fileIds: ['f'] },
        ],
      },
      'input.datasets[1].split',
    ],
    [
      'a data set without files',
      { datasets: [{ name: 'd', split: 'train', fileIds: [] }] },
      'input.datasets[0].fileIds',
    ],
    [
      'an empty file id',
      { datasets: [{ name: 'd', split: 'eval', fileIds: ['f', ''] }] },
      'input.datasets[0].fileIds[1]',
    ],
    [
      'a data set without a name',
      { datasets: [{ name: '', split: 'train', fileIds: ['f'] }] },
      'input.datasets[0].name',
    ],
  ])(
    'rejects %s as BAD_USER_INPUT naming the field, with no upstream call',
    async (_case, change, argument) => {
      const response = await stack.query(CREATE, { input: input(change) });
      const error = expectErrorCode(response, 'BAD_USER_INPUT');
      expect(error.extensions?.argument).toBe(argument);
      expect(error.message).toContain(argument);
      expect(stack.simulator.requests).toHaveLength(0);
    },
  );

  it('accepts an id of exactly 64 characters', async () => {
    const id = `ftj-${'a'.repeat(60)}`;
    const data = expectData(await stack.query<{ createFineTuneJob: Job }>(CREATE, { input: input({ id }) }));
    expect(data.createFineTuneJob.id).toBe(id);
  });

  it('reports an upstream 500 as UPSTREAM_UNAVAILABLE with the job id, without retrying or storing', async () => {
    stack.simulator.faults.set('createJob', { status: 500, times: 1 });
    const response = await stack.query(CREATE, { input: input({ name: 'fails-with-500' }) });
    const error = expectErrorCode(response, 'UPSTREAM_UNAVAILABLE');
    expect(error.extensions?.jobId).toMatch(/^ftj-fails-with-500-[0-9a-f]{8}$/);
    expect(error.extensions?.upstream).toMatchObject({ status: 500, operation: 'POST /fine-tune/jobs' });
    expect(stack.simulator.requestsTo('createJob')).toHaveLength(1);
    expect(storedJobsNamed('fails-with-500')).toHaveLength(0);
  });

  it('passes the upstream 422 on as BAD_USER_INPUT', async () => {
    stack.simulator.faults.set('createJob', { status: 422, times: 1 });
    const error = expectErrorCode(await stack.query(CREATE, { input: input() }), 'BAD_USER_INPUT');
    expect(error.extensions?.upstream).toMatchObject({ status: 422, code: 'validation_error' });
    expect(stack.simulator.requestsTo('createJob')).toHaveLength(1);
  });

  it('says a create that never got through failed, after bounded retries and a read-back', async () => {
    stack.simulator.faults.set('createJob', { status: 503 });
    const response = await stack.query(CREATE, { input: input({ name: 'never-gets-through' }) });
    const error = expectErrorCode(response, 'UPSTREAM_UNAVAILABLE');
    const jobId = error.extensions?.jobId as string;
    // upstream.retries defaults to 2: three attempts, all carrying the same id, then one read-back.
    expect(stack.simulator.requestsTo('createJob')).toHaveLength(3);
    expect(stack.simulator.requestsTo('getJob').map((r) => r.path)).toEqual([
      `/v0.5/fine-tune/jobs/${jobId}`,
    ]);
    expect(storedJobsNamed('never-gets-through')).toHaveLength(0);

    // The id in the error makes a later retry safe; here the upstream is back.
    stack.simulator.faults.clear();
    const retried = expectData(
      await stack.query<{ createFineTuneJob: Job }>(CREATE, {
        input: input({ name: 'never-gets-through', id: jobId }),
      }),
    );
    expect(retried.createFineTuneJob.id).toBe(jobId);
    expect(storedJobsNamed('never-gets-through')).toHaveLength(1);
  });

  it('does not retry a create whose 503 asks for a delay past the cap: reads back, reports retryAfter', async () => {
    // The one retry policy: a Retry-After past UPSTREAM_MAX_RETRY_AFTER_MS (5 s) ends the retries.
    stack.simulator.faults.set('createJob', { status: 503, retryAfter: 120 });
    const response = await stack.query(CREATE, { input: input({ name: 'asked-to-wait' }) });
    const error = expectErrorCode(response, 'UPSTREAM_UNAVAILABLE');
    expect(error.extensions?.retryAfter).toBe(120);
    expect(error.extensions?.jobId).toMatch(/^ftj-asked-to-wait-[0-9a-f]{8}$/);
    expect(stack.simulator.requestsTo('createJob')).toHaveLength(1);
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(1);
    expect(storedJobsNamed('asked-to-wait')).toHaveLength(0);
  });
});

describe('createFineTuneJob never duplicates, never loses', () => {
  it('returns the one job when the upstream stored it and dropped the connection', async () => {
    stack.simulator.faults.set('createJob', { drop: 'after', times: 1 });
    const response = await stack.query<{ createFineTuneJob: Job }>(CREATE, {
      input: input({ name: 'lost-answer' }),
    });
    const job = expectData(response).createFineTuneJob;
    const stored = storedJobsNamed('lost-answer');
    expect(stored).toHaveLength(1);
    expect(job.id).toBe(stored[0]!.id);
    expect(job.status).toBe('REGISTERED');
    // First attempt stored the job; the retry with the same id got 409; the read-back found it.
    expect(stack.simulator.requestsTo('createJob')).toHaveLength(2);
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(1);
  });

  it('returns the one job when every answer is lost', async () => {
    stack.simulator.faults.set('createJob', { drop: 'after' });
    const job = expectData(
      await stack.query<{ createFineTuneJob: Job }>(CREATE, { input: input({ name: 'all-answers-lost' }) }),
    ).createFineTuneJob;
    expect(storedJobsNamed('all-answers-lost').map((j) => j.id)).toEqual([job.id]);
    expect(stack.simulator.requestsTo('createJob')).toHaveLength(3);
  });

  it('retries a create that failed with 502 before it was stored, and stores it once', async () => {
    stack.simulator.faults.set('createJob', { status: 502, times: 1 });
    const job = expectData(
      await stack.query<{ createFineTuneJob: Job }>(CREATE, { input: input({ name: 'first-try-502' }) }),
    ).createFineTuneJob;
    expect(storedJobsNamed('first-try-502').map((j) => j.id)).toEqual([job.id]);
    expect(stack.simulator.requestsTo('createJob')).toHaveLength(2);
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(0);
  });

  it('retries a connection dropped before the upstream handled it, and stores the job once', async () => {
    stack.simulator.faults.set('createJob', { drop: 'before', times: 1 });
    const job = expectData(
      await stack.query<{ createFineTuneJob: Job }>(CREATE, { input: input({ name: 'dropped-before' }) }),
    ).createFineTuneJob;
    expect(storedJobsNamed('dropped-before').map((j) => j.id)).toEqual([job.id]);
    expect(stack.simulator.requestsTo('createJob')).toHaveLength(2);
  });

  it('reads back a job whose create answered 200 with a body cut in half', async () => {
    stack.simulator.faults.set('createJob', { malformedJson: true, times: 1 });
    const job = expectData(
      await stack.query<{ createFineTuneJob: Job }>(CREATE, { input: input({ name: 'cut-answer' }) }),
    ).createFineTuneJob;
    expect(storedJobsNamed('cut-answer').map((j) => j.id)).toEqual([job.id]);
    expect(stack.simulator.requestsTo('createJob')).toHaveLength(1);
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(1);
  });

  it('does not take another job with the same id for its own after a lost answer', async () => {
    const other = putJob({ name: 'someone-else' });
    stack.simulator.faults.set('createJob', { drop: 'before', times: 1 });
    const response = await stack.query(CREATE, { input: input({ id: other.id, name: 'mine' }) });
    const error = expectErrorCode(response, 'CONFLICT');
    expect(error.extensions?.jobId).toBe(other.id);
    expect(stack.simulator.store.get(acme(), other.id)?.name).toBe('someone-else');
  });
});

describe('stopFineTuneJob', () => {
  it('stops a running job gracefully: STOPPING, then STOPPED', async () => {
    const job = putJob({ status: 'RUNNING' });
    const data = expectData(await stack.query<{ stopFineTuneJob: Job }>(STOP, { id: job.id }));
    expect(data.stopFineTuneJob).toMatchObject({
      id: job.id,
      status: 'STOPPING',
      isTerminal: false,
      allowedActions: ['CANCEL'],
    });
    expect(stack.simulator.requestsTo('stopJob').map((r) => r.method)).toEqual(['PUT']);
    stack.simulator.advance();
    const after = expectData(
      await stack.query<{ fineTuneJob: Job }>(`query { fineTuneJob(id: "${job.id}") { status isTerminal } }`),
    );
    expect(after.fineTuneJob).toEqual({ status: 'STOPPED', isTerminal: true });
  });

  it('answers NOT_FOUND for a job the organization does not have', async () => {
    const error = expectErrorCode(await stack.query(STOP, { id: 'ftj-no-such-job' }), 'NOT_FOUND');
    expect(error.extensions?.upstream).toMatchObject({ status: 404 });
  });

  it.each(['COMPLETED', 'STOPPED', 'CANCELLED', 'FAILED', 'FINALIZING', 'STOPPING'])(
    'answers CONFLICT for a job that is %s, leaving it as it was',
    async (status) => {
      const job = putJob({ status });
      const error = expectErrorCode(await stack.query(STOP, { id: job.id }), 'CONFLICT');
      expect(error.extensions?.upstream).toMatchObject({ status: 409, code: 'invalid_state_transition' });
      expect(stack.simulator.store.get(acme(), job.id)?.status).toBe(status);
      expect(stack.simulator.requestsTo('stopJob')).toHaveLength(1);
    },
  );

  it('returns the stopped job when the upstream stopped it and dropped the connection', async () => {
    const job = putJob({ status: 'RUNNING' });
    stack.simulator.faults.set('stopJob', { drop: 'after', times: 1 });
    const data = expectData(await stack.query<{ stopFineTuneJob: Job }>(STOP, { id: job.id }));
    expect(data.stopFineTuneJob.status).toBe('STOPPING');
    // The read-back showed the stop took effect: no second PUT.
    expect(stack.simulator.requestsTo('stopJob')).toHaveLength(1);
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(1);
  });

  it('retries a stop whose connection dropped before it was handled, once the read-back shows so', async () => {
    const job = putJob({ status: 'STARTING' });
    stack.simulator.faults.set('stopJob', { drop: 'before', times: 1 });
    const data = expectData(await stack.query<{ stopFineTuneJob: Job }>(STOP, { id: job.id }));
    expect(data.stopFineTuneJob.status).toBe('STOPPING');
    expect(stack.simulator.requestsTo('stopJob')).toHaveLength(2);
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(1);
  });

  it('reads back a stop that answered 200 with an unreadable body', async () => {
    const job = putJob({ status: 'RUNNING' });
    stack.simulator.faults.set('stopJob', { malformedJson: true, times: 1 });
    const data = expectData(await stack.query<{ stopFineTuneJob: Job }>(STOP, { id: job.id }));
    expect(data.stopFineTuneJob.status).toBe('STOPPING');
    expect(stack.simulator.requestsTo('stopJob')).toHaveLength(1);
  });

  it.each(['x'.repeat(65), '.', '..'])('rejects the id %j with no upstream call', async (id) => {
    const error = expectErrorCode(await stack.query(STOP, { id }), 'BAD_USER_INPUT');
    expect(error.extensions?.argument).toBe('id');
    expect(stack.simulator.requests).toHaveLength(0);
  });
});

describe('cancelFineTuneJob', () => {
  it.each(['REGISTERED', 'STARTING', 'RUNNING', 'FINALIZING', 'STOPPING'])(
    'cancels a job that is %s at once',
    async (status) => {
      const job = putJob({ status });
      const data = expectData(await stack.query<{ cancelFineTuneJob: Job }>(CANCEL, { id: job.id }));
      expect(data.cancelFineTuneJob).toMatchObject({
        id: job.id,
        status: 'CANCELLED',
        isTerminal: true,
        allowedActions: [],
      });
      expect(stack.simulator.store.get(acme(), job.id)?.status).toBe('CANCELLED');
    },
  );

  it('answers NOT_FOUND for a job the organization does not have', async () => {
    expectErrorCode(await stack.query(CANCEL, { id: 'ftj-no-such-job' }), 'NOT_FOUND');
  });

  it('does not see another organization’s job', async () => {
    const globex = stack.simulator.store.organizations[1]!;
    const theirs = jobRecord(globex);
    stack.simulator.store.put(globex, theirs);
    expectErrorCode(await stack.query(CANCEL, { id: theirs.id }), 'NOT_FOUND');
    expect(stack.simulator.store.get(globex, theirs.id)?.status).toBe('RUNNING');
  });

  it.each(['COMPLETED', 'STOPPED', 'CANCELLED', 'FAILED'])(
    'answers CONFLICT for a job already %s',
    async (status) => {
      const job = putJob({ status });
      const error = expectErrorCode(await stack.query(CANCEL, { id: job.id }), 'CONFLICT');
      expect(error.message).toContain(`Cannot cancel a job in status ${status}`);
      expect(stack.simulator.store.get(acme(), job.id)?.status).toBe(status);
    },
  );

  it('retries a cancel that failed with 502 before it was applied, once the read-back shows so', async () => {
    const job = putJob({ status: 'RUNNING' });
    stack.simulator.faults.set('cancelJob', { status: 502, times: 1 });
    const data = expectData(await stack.query<{ cancelFineTuneJob: Job }>(CANCEL, { id: job.id }));
    expect(data.cancelFineTuneJob.status).toBe('CANCELLED');
    expect(stack.simulator.requestsTo('cancelJob')).toHaveLength(2);
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(1);
  });

  it('returns the cancelled job when every answer is lost after the first cancel landed', async () => {
    const job = putJob({ status: 'RUNNING' });
    stack.simulator.faults.set('cancelJob', { drop: 'after' });
    const data = expectData(await stack.query<{ cancelFineTuneJob: Job }>(CANCEL, { id: job.id }));
    expect(data.cancelFineTuneJob.status).toBe('CANCELLED');
    expect(stack.simulator.requestsTo('cancelJob')).toHaveLength(1);
  });

  it('reports an upstream 500 as UPSTREAM_UNAVAILABLE and leaves the job as it was', async () => {
    const job = putJob({ status: 'RUNNING' });
    stack.simulator.faults.set('cancelJob', { status: 500, times: 1 });
    expectErrorCode(await stack.query(CANCEL, { id: job.id }), 'UPSTREAM_UNAVAILABLE');
    expect(stack.simulator.requestsTo('cancelJob')).toHaveLength(1);
    expect(stack.simulator.store.get(acme(), job.id)?.status).toBe('RUNNING');
  });

  it('gives up after bounded retries when the upstream stays unavailable', async () => {
    const job = putJob({ status: 'RUNNING' });
    stack.simulator.faults.set('cancelJob', { status: 503 });
    expectErrorCode(await stack.query(CANCEL, { id: job.id }), 'UPSTREAM_UNAVAILABLE');
    expect(stack.simulator.requestsTo('cancelJob')).toHaveLength(3);
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(3);
    expect(stack.simulator.store.get(acme(), job.id)?.status).toBe('RUNNING');
  });
});

describe('after a mutation', () => {
  it('fetches the job’s metrics again in the same operation', async () => {
    const job = putJob({ status: 'RUNNING' });
    stack.simulator.store.put(acme(), job, [{ step: 200, loss: 1.5 }]);
    const data = expectData(
      await stack.query<{ stop: Job; cancel: Job }>(`mutation {
        stop: stopFineTuneJob(id: "${job.id}") { status metrics { entries { step } } }
        cancel: cancelFineTuneJob(id: "${job.id}") { status metrics { entries { step } } }
      }`),
    );
    expect(data).toMatchObject({ stop: { status: 'STOPPING' }, cancel: { status: 'CANCELLED' } });
    expect(stack.simulator.requestsTo('getJobMetrics')).toHaveLength(2);
  });

  it('needs a key like every other operation', async () => {
    const job = putJob({ status: 'RUNNING' });
    expectErrorCode(await stack.query(CANCEL, { id: job.id }, { apiKey: null }), 'UNAUTHENTICATED');
    expect(stack.simulator.requests).toHaveLength(0);
  });
});

describe('a create whose answer comes too late', () => {
  let slow: Stack;
  beforeAll(async () => {
    slow = await startStack({
      simulator: { jobsPerOrganization: 0, providerExamples: false },
      config: { upstream: { timeoutMs: 300 } },
    });
  });
  afterAll(() => slow.stop());

  it('is retried with the same id after the timeout and returns the one job stored', async () => {
    slow.simulator.faults.set('createJob', { answerDelayMs: 1_000, times: 1 });
    const job = expectData(
      await slow.query<{ createFineTuneJob: Job }>(CREATE, { input: input({ name: 'slow-answer' }) }),
    ).createFineTuneJob;
    const org = slow.simulator.store.organizations[0]!;
    expect(slow.simulator.store.list(org, null).map((j) => j.id)).toEqual([job.id]);
    expect(slow.simulator.requestsTo('createJob')).toHaveLength(2);
  });
});
