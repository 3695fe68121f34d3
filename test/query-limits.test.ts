// Query limits: an over-limit query is rejected with QUERY_LIMIT_EXCEEDED, a clear message and
// `extensions.limit`, before any call to the upstream.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectData, expectErrorCode, startStack, type Stack } from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    env: {
      QUERY_MAX_DEPTH: '3',
      QUERY_MAX_ALIASES: '3',
      QUERY_MAX_DIRECTIVES: '2',
      QUERY_MAX_TOKENS: '200',
      QUERY_MAX_COST: '1000',
      QUERY_UNBOUNDED_LIST_SIZE: '100',
    },
  });
});
afterAll(() => stack.stop());
beforeEach(() => stack.simulator.resetRequests());

async function expectRejected(document: string, limit: string, variables?: Record<string, unknown>) {
  const response = await stack.query(document, variables);
  const error = expectErrorCode(response, 'QUERY_LIMIT_EXCEEDED');
  expect(error.extensions?.limit).toBe(limit);
  expect(response.status).toBe(400);
  expect(response.data ?? null).toBeNull();
  expect(stack.simulator.requests).toEqual([]);
  return error;
}

describe('query limits', () => {
  it('rejects a query deeper than QUERY_MAX_DEPTH', async () => {
    const error = await expectRejected(
      'query { fineTuneJobs(limit: 1) { config { datasets { fileIds } } } }',
      'depth',
    );
    expect(error.message).toMatch(/depth limit of 3 exceeded, found 4/i);
    expectData(await stack.query('query { fineTuneJobs(limit: 1) { config { model } } }'));
  });

  it('rejects more aliases than QUERY_MAX_ALIASES', async () => {
    const error = await expectRejected(
      'query { a: fineTuneJobs(limit: 1) { id } b: fineTuneJobs(limit: 1) { id } c: fineTuneJobs(limit: 1) { id } d: fineTuneJobs(limit: 1) { id } }',
      'aliases',
    );
    expect(error.message).toMatch(/aliases limit of 3 exceeded/i);
  });

  it('rejects more directives than QUERY_MAX_DIRECTIVES', async () => {
    const error = await expectRejected(
      'query { fineTuneJobs(limit: 1) { id @include(if: true) name @include(if: true) uuid @skip(if: false) } }',
      'directives',
    );
    expect(error.message).toMatch(/directives limit of 2 exceeded/i);
  });

  it('rejects a document of more than QUERY_MAX_TOKENS tokens', async () => {
    const fields = Array.from({ length: 250 }, () => 'id').join(' ');
    const error = await expectRejected(`query { fineTuneJobs(limit: 1) { ${fields} } }`, 'tokens');
    expect(error.message).toBe('Query token limit of 200 exceeded.');
  });

  it('counts limit: -1 as QUERY_UNBOUNDED_LIST_SIZE jobs times the selection', async () => {
    // 1 + 100 × 11 fields = 1101 > 1000
    const wide =
      'id name uuid orgUuid status upstreamStatus isTerminal createdAt updatedAt inferenceConfigPath __typename';
    const error = await expectRejected(`query { fineTuneJobs(limit: -1) { ${wide} } }`, 'cost');
    expect(error.message).toMatch(/cost limit of 1000 exceeded, found 1101/i);
    expect(error.extensions).toMatchObject({ cost: 1101, maxCost: 1000 });
    // The default limit is -1 too.
    await expectRejected(`query { fineTuneJobs { ${wide} } }`, 'cost');
    // A narrower selection of every job fits: 1 + 100 × 2.
    expectData(await stack.query('query { fineTuneJobs(limit: -1) { id name } }'));
  });

  it('multiplies by a large limit, given inline or as a variable', async () => {
    await expectRejected('query { fineTuneJobs(limit: 5000) { id } }', 'cost');
    await expectRejected('query Jobs($n: Int) { fineTuneJobs(limit: $n) { id } }', 'cost', { n: 1000 });
    expectData(await stack.query('query Jobs($n: Int) { fineTuneJobs(limit: $n) { id } }', { n: 10 }));
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
  });

  it('adds up aliased lists and nested selections', async () => {
    // Per job: id 1, name 1, config 1 + model 1 = 4; two lists of 130: 2 × (1 + 130 × 4) > 1000.
    const selection = 'id name config { model }';
    await expectRejected(
      `query { a: fineTuneJobs(limit: 130) { ${selection} } b: fineTuneJobs(limit: 130, offset: 130) { ${selection} } }`,
      'cost',
    );
    expectData(await stack.query(`query { a: fineTuneJobs(limit: 130) { ${selection} } }`));
  });

  it("multiplies a job's metrics by their limit, and by the jobs they are asked for", async () => {
    // Its own gateway: these documents are deeper than the depth limit above.
    const deep = await startStack({ env: { QUERY_MAX_COST: '1000', QUERY_UNBOUNDED_LIST_SIZE: '100' } });
    try {
      // metrics: 1 + 100 entries × (entries 1 + 2 fields) = 301; five jobs: 1 + 5 × 301 = 1506.
      const rejected = await deep.query(
        'query { fineTuneJobs(limit: 5) { metrics { entries { loss step } } } }',
      );
      expect(expectErrorCode(rejected, 'QUERY_LIMIT_EXCEEDED').extensions).toMatchObject({
        limit: 'cost',
        cost: 1506,
      });
      expect(deep.simulator.requests).toEqual([]);
      // metrics(limit: 10): 1 + 10 × 3 = 31; five jobs: 156.
      expectData(
        await deep.query('query { fineTuneJobs(limit: 5) { metrics(limit: 10) { entries { loss step } } } }'),
      );
    } finally {
      await deep.stop();
    }
  });
});
