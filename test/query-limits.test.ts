// Query limits: an over-limit query is rejected with QUERY_LIMIT_EXCEEDED, a clear message and
// `extensions.limit`, before any call to the upstream.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectData, expectErrorCode, startStack, type Stack } from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    config: { limits: { maxDepth: 3, maxAliases: 3, maxDirectives: 2, maxTokens: 200, maxCost: 1000 } },
  });

  it('prices each job fetched by id as a call', async () => {
    // Ten aliases of one job: 10 × (10 + 1) = 110, well within; 100 of them would not be.
    const aliases = (n: number) =>
      Array.from({ length: n }, (_, i) => `j${i}: fineTuneJob(id: "x${i}") { id }`).join(' ');
    const tight = await startStack({ config: { limits: { maxCost: 100, maxAliases: 20 } } });
    try {
      expectData(await tight.query(`query { ${aliases(5)} }`));
      const rejected = await tight.query(`query { ${aliases(10)} }`);
      expect(expectErrorCode(rejected, 'QUERY_LIMIT_EXCEEDED').extensions).toMatchObject({ cost: 110 });
    } finally {
      await tight.stop();
    }
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
  it('rejects a query deeper than limits.maxDepth', async () => {
    const error = await expectRejected(
      'query { fineTuneJobs(limit: 1) { config { datasets { fileIds } } } }',
      'depth',
    );
    expect(error.message).toMatch(/depth limit of 3 exceeded, found 4/i);
    expectData(await stack.query('query { fineTuneJobs(limit: 1) { config { model } } }'));
  });

  it('rejects more aliases than limits.maxAliases', async () => {
    const error = await expectRejected(
      'query { a: fineTuneJobs(limit: 1) { id } b: fineTuneJobs(limit: 1) { id } c: fineTuneJobs(limit: 1) { id } d: fineTuneJobs(limit: 1) { id } }',
      'aliases',
    );
    expect(error.message).toMatch(/aliases limit of 3 exceeded/i);
  });

  it('rejects more directives than limits.maxDirectives', async () => {
    const error = await expectRejected(
      'query { fineTuneJobs(limit: 1) { id @include(if: true) name @include(if: true) uuid @skip(if: false) } }',
      'directives',
    );
    expect(error.message).toMatch(/directives limit of 2 exceeded/i);
  });

  it('rejects a document of more than limits.maxTokens tokens', async () => {
    const fields = Array.from({ length: 250 }, () => 'id').join(' ');
    const error = await expectRejected(`query { fineTuneJobs(limit: 1) { ${fields} } }`, 'tokens');
    expect(error.message).toBe('Query token limit of 200 exceeded.');
  });

  it('counts limit: -1 as QUERY_UNBOUNDED_LIST_SIZE jobs times the selection', async () => {
    // 10 for the call + 100 × 11 fields = 1110 > 1000
    const wide =
      'id name uuid orgUuid status upstreamStatus isTerminal createdAt updatedAt inferenceConfigPath __typename';
    const error = await expectRejected(`query { fineTuneJobs(limit: -1) { ${wide} } }`, 'cost');
    expect(error.message).toMatch(/cost limit of 1000 exceeded, found 1110/i);
    expect(error.extensions).toMatchObject({ cost: 1110, maxCost: 1000 });
    // The default limit is -1 too.
    await expectRejected(`query { fineTuneJobs { ${wide} } }`, 'cost');
    // A narrower selection of every job fits: 10 + 100 × 2.
    expectData(await stack.query('query { fineTuneJobs(limit: -1) { id name } }'));
  });

  it('multiplies by a large limit, given inline or as a variable', async () => {
    await expectRejected('query { fineTuneJobs(limit: 5000) { id } }', 'cost');
    await expectRejected('query Jobs($n: Int) { fineTuneJobs(limit: $n) { id } }', 'cost', { n: 1000 });
    expectData(await stack.query('query Jobs($n: Int) { fineTuneJobs(limit: $n) { id } }', { n: 10 }));
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
  });

  it('adds up aliased lists and nested selections', async () => {
    // Per job: id 1, name 1, config 1 + model 1 = 4; two lists of 130: 2 × (10 + 130 × 4) > 1000.
    const selection = 'id name config { model }';
    await expectRejected(
      `query { a: fineTuneJobs(limit: 130) { ${selection} } b: fineTuneJobs(limit: 130, offset: 130) { ${selection} } }`,
      'cost',
    );
    expectData(await stack.query(`query { a: fineTuneJobs(limit: 130) { ${selection} } }`));
  });

  it("multiplies a job's metrics by their limit, and by the jobs they are asked for", async () => {
    // Its own gateway: these documents are deeper than the depth limit above.
    const deep = await startStack({
      config: { limits: { maxCost: 1000 } },
    });
    try {
      // metrics: a call (10) + 100 entries × (entries 1 + 2 fields) = 310; five jobs: 10 + 5 × 310 = 1560.
      const rejected = await deep.query(
        'query { fineTuneJobs(limit: 5) { metrics { entries { loss step } } } }',
      );
      expect(expectErrorCode(rejected, 'QUERY_LIMIT_EXCEEDED').extensions).toMatchObject({
        limit: 'cost',
        cost: 1560,
      });
      expect(deep.simulator.requests).toEqual([]);
      // metrics(limit: 10): 10 + 10 × 3 = 40; five jobs: 10 + 5 × 40 = 210.
      expectData(
        await deep.query('query { fineTuneJobs(limit: 5) { metrics(limit: 10) { entries { loss step } } } }'),
      );
    } finally {
      await deep.stop();
    }
  });

  it('prices each job fetched by id as a call', async () => {
    // Ten aliases of one job: 10 × (10 + 1) = 110, well within; 100 of them would not be.
    const aliases = (n: number) =>
      Array.from({ length: n }, (_, i) => `j${i}: fineTuneJob(id: "x${i}") { id }`).join(' ');
    const tight = await startStack({ config: { limits: { maxCost: 100, maxAliases: 20 } } });
    try {
      expectData(await tight.query(`query { ${aliases(5)} }`));
      const rejected = await tight.query(`query { ${aliases(10)} }`);
      expect(expectErrorCode(rejected, 'QUERY_LIMIT_EXCEEDED').extensions).toMatchObject({ cost: 110 });
    } finally {
      await tight.stop();
    }
  });
});

describe("graphql-js's validation budget", () => {
  // At the defaults, and with QUERY_MAX_TOKENS raised so that larger shapes parse.
  let defaults: Stack;
  let manyTokens: Stack;
  beforeAll(async () => {
    [defaults, manyTokens] = await Promise.all([
      startStack(),
      startStack({ config: { limits: { maxTokens: 10000 } } }),
    ]);
  });
  afterAll(() => Promise.all([defaults.stop(), manyTokens.stop()]));

  async function expectOneLimit(gateway: Stack, document: string, limit: string) {
    gateway.simulator.resetRequests();
    const response = await gateway.query(document);
    expect(response.status).toBe(400);
    const error = expectErrorCode(response, 'QUERY_LIMIT_EXCEEDED');
    expect(error.extensions?.limit, error.message).toBe(limit);
    expect(gateway.simulator.requests).toEqual([]);
    return error;
  }

  it('refuses a field repeated 900 times as a limit, with one error, calling nothing', async () => {
    // graphql-js compares fields of one name pairwise and gives up past its budget: it answered
    // "Validation aborted." with no code saying why.
    const typename = await expectOneLimit(defaults, `{ ${'__typename '.repeat(900)}}`, 'validation');
    expect(typename.message).toMatch(/repeats a field .* Ask for each field once/);
    await expectOneLimit(defaults, `{ fineTuneJobs(limit: 1) { ${'id '.repeat(900)}} }`, 'validation');
  });

  it('answers other shapes past a limit with that limit alone', async () => {
    // A hundred "can only be used once" errors and graphql-js's line saying it stopped counting.
    await expectOneLimit(manyTokens, `{ __typename ${'@include(if: true) '.repeat(900)}}`, 'directives');
    // The alias limit, then "Validation aborted.".
    await expectOneLimit(manyTokens, `{ fineTuneJobs(limit: 1) { ${'a: id '.repeat(900)}} }`, 'aliases');
    // "Validation aborted.": 900 aliases of __typename (which the alias limit allows), a
    // thousand inline fragments, a thousand fragments spread in one selection.
    await expectOneLimit(manyTokens, `{ ${'a: __typename '.repeat(900)}}`, 'validation');
    await expectOneLimit(manyTokens, `{ ${'... { __typename } '.repeat(1000)}}`, 'validation');
    const names = Array.from({ length: 1000 }, (_, i) => `F${i}`);
    const fragments = names.map((name) => `fragment ${name} on Query { __typename }`).join(' ');
    await expectOneLimit(
      manyTokens,
      `{ ${names.map((name) => `...${name}`).join(' ')} } ${fragments}`,
      'validation',
    );
  });
});
