// Push-down, deduplication and priming, proven by the requests the simulator received.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectData, expectErrorCode, startStack, type Stack } from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ simulator: { jobsPerOrganization: 30 } });
});
afterAll(() => stack.stop());
beforeEach(() => stack.simulator.resetRequests());

describe('push-down', () => {
  it('sends statuses, limit and offset to the upstream query string', async () => {
    const data = expectData(
      await stack.query<{ fineTuneJobs: { status: string }[] }>(
        'query { fineTuneJobs(statuses: [RUNNING, FAILED], limit: 2, offset: 1) { id status } }',
      ),
    );
    const calls = stack.simulator.requestsTo('listJobs');
    expect(calls.map((c) => c.search)).toEqual(['?limit=2&offset=1&statuses=FAILED&statuses=RUNNING']);
    expect(data.fineTuneJobs).toHaveLength(2);
    for (const job of data.fineTuneJobs) expect(['RUNNING', 'FAILED']).toContain(job.status);
  });

  it('asks for everything only when the client does (limit -1 is the default), up to limits.maxJobs + 1', async () => {
    expectData(await stack.query('query { fineTuneJobs { id } }'));
    expect(stack.simulator.requestsTo('listJobs').map((c) => c.search)).toEqual(['?limit=5001&offset=0']);
  });

  it('returns the same page the upstream returns', async () => {
    const page = expectData(
      await stack.query<{ fineTuneJobs: { id: string }[] }>(
        'query { fineTuneJobs(limit: 5, offset: 3) { id } }',
      ),
    );
    const acme = stack.simulator.store.organizations[0]!;
    const expected = stack.simulator.store
      .list(acme, null)
      .slice(3, 8)
      .map((j) => j.id);
    expect(page.fineTuneJobs.map((j) => j.id)).toEqual(expected);
  });

  it('answers an empty statuses list with no jobs and no upstream call', async () => {
    const data = expectData(await stack.query('query { fineTuneJobs(statuses: []) { id } }'));
    expect(data).toEqual({ fineTuneJobs: [] });
    expect(stack.simulator.requests).toHaveLength(0);
  });
});

describe('DataLoader', () => {
  it('makes one upstream call for identical list fields under aliases and fragments', async () => {
    expectData(
      await stack.query(`
        fragment Page on Query { c: fineTuneJobs(limit: 3, statuses: [FAILED, RUNNING]) { id } }
        query {
          a: fineTuneJobs(limit: 3, statuses: [RUNNING, FAILED]) { id }
          b: fineTuneJobs(limit: 3, statuses: [RUNNING, FAILED, RUNNING]) { name }
          ...Page
          other: fineTuneJobs(limit: 4) { id }
        }`),
    );
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(2);
  });

  it('fetches a job asked for twice by id once', async () => {
    const acme = stack.simulator.store.organizations[0]!;
    const [first, second] = stack.simulator.store.list(acme, null);
    const data = expectData(
      await stack.query(`query {
        a: fineTuneJob(id: "${first!.id}") { id }
        b: fineTuneJob(id: "${first!.id}") { name }
        c: fineTuneJob(id: "${second!.id}") { id }
      }`),
    );
    expect(data).toEqual({ a: { id: first!.id }, b: { name: first!.name }, c: { id: second!.id } });
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(2);
  });

  it('serves a job from a list in the same operation without fetching it again', async () => {
    const acme = stack.simulator.store.organizations[0]!;
    const newest = stack.simulator.store.list(acme, null)[0]!;
    // The by-id field comes first: the loader still waits for the list in flight.
    const data = expectData(
      await stack.query<{ fineTuneJobs: { id: string }[]; fineTuneJob: { id: string } }>(`query {
        fineTuneJob(id: "${newest.id}") { id }
        fineTuneJobs(limit: 1) { id }
      }`),
    );
    expect(data.fineTuneJob.id).toBe(newest.id);
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
    expect(stack.simulator.requestsTo('getJob')).toHaveLength(0);
  });

  it('answers null, not an error, for a job that does not exist', async () => {
    const data = expectData(await stack.query('query { fineTuneJob(id: "ftj-no-such-job") { id } }'));
    expect(data).toEqual({ fineTuneJob: null });
  });

  it('does not share loaders between requests', async () => {
    await stack.query('query { fineTuneJobs(limit: 2) { id } }');
    await stack.query('query { fineTuneJobs(limit: 2) { id } }');
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(2);
  });
});

describe('bad input', () => {
  it.each([
    ['limit below -1', 'fineTuneJobs(limit: -2) { id }', 'limit'],
    ['negative offset', 'fineTuneJobs(offset: -1) { id }', 'offset'],
    ['empty id', 'fineTuneJob(id: "") { id }', 'id'],
    ['id over 64 characters', `fineTuneJob(id: "${'x'.repeat(65)}") { id }`, 'id'],
    ['the dot segment `.` as id', 'fineTuneJob(id: ".") { id }', 'id'],
    ['the dot segment `..` as id', 'fineTuneJob(id: "..") { id }', 'id'],
  ])('rejects %s as BAD_USER_INPUT with no upstream call', async (_name, field, argument) => {
    const error = expectErrorCode(await stack.query(`query { ${field} }`), 'BAD_USER_INPUT');
    expect(error.extensions?.argument).toBe(argument);
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('rejects an unknown status literal as a validation error with no upstream call', async () => {
    const response = await stack.query('query { fineTuneJobs(statuses: [PAUSED]) { id } }');
    expectErrorCode(response, 'GRAPHQL_VALIDATION_FAILED');
    expect(response.status).toBe(400);
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('rejects an unknown status in variables with no upstream call', async () => {
    const response = await stack.query(
      'query ($s: [FineTuneJobStatus!]) { fineTuneJobs(statuses: $s) { id } }',
      {
        s: ['PAUSED'],
      },
    );
    expectErrorCode(response, 'BAD_USER_INPUT');
    expect(stack.simulator.requests).toHaveLength(0);
  });
});
