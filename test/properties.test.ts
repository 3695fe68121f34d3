// Property-based (fast-check): random arguments and random upstream payloads, inside and outside
// the contract, never produce an unhandled exception, a non-GraphQL response or a leaked key.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KNOWN_JOB_STATUSES } from '../src/upstream/records.js';
import { ACME_KEY, GLOBEX_KEY, startStack, type Stack } from './harness.js';
import { expectWellFormed, postGraphQL } from './wire.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 60);
const SCHEMA_STATUSES = KNOWN_JOB_STATUSES;

let stack: Stack;
const unhandled: unknown[] = [];
const onUnhandled = (error: unknown) => void unhandled.push(error);
beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUnhandled);
  // No retries and a breaker that never opens: every run exercises the parsing path.
  stack = await startStack({
    simulator: { jobsPerOrganization: 25 },
    config: { upstream: { retries: 0, breaker: { minCalls: 100000 }, timeoutMs: 1000 } },
  });
});
afterAll(async () => {
  await stack.stop();
  process.off('unhandledRejection', onUnhandled);
  process.off('uncaughtException', onUnhandled);
  expect(unhandled).toEqual([]);
});

const FULL_JOB = `id name uuid orgUuid status upstreamStatus isTerminal createdAt updatedAt inferenceConfigPath
  config { model datasets { name split fileIds } }`;

function expectNoKey(text: string) {
  expect(text).not.toContain(ACME_KEY);
  expect(text).not.toContain(GLOBEX_KEY);
}

describe('random valid arguments', () => {
  it('return exactly the page the upstream holds, for the caller’s organization only', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.option(fc.subarray([...SCHEMA_STATUSES]), { nil: null }),
        fc.integer({ min: -1, max: 40 }),
        fc.integer({ min: 0, max: 40 }),
        fc.constantFrom(ACME_KEY, GLOBEX_KEY),
        async (statuses, limit, offset, key) => {
          const response = await postGraphQL(
            stack.gateway.url,
            'query Jobs($s: [FineTuneJobStatus!], $l: Int, $o: Int) { fineTuneJobs(statuses: $s, limit: $l, offset: $o) { id orgUuid status } }',
            { s: statuses, l: limit, o: offset },
            `Bearer ${key}`,
          );
          expectWellFormed(response);
          expect(response.body.errors, response.text).toBeUndefined();
          const org = stack.simulator.store.organizations[key === ACME_KEY ? 0 : 1]!;
          const all =
            statuses !== null && statuses.length === 0 ? [] : stack.simulator.store.list(org, statuses);
          const expected = all.slice(offset, limit === -1 ? undefined : offset + limit).map((j) => j.id);
          const jobs = response.body.data!.fineTuneJobs as { id: string; orgUuid: string }[];
          expect(jobs.map((j) => j.id)).toEqual(expected);
          for (const job of jobs) expect(job.orgUuid).toBe(org.uuid);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe('random arguments of any value', () => {
  it('are answered with data or a coded error, never an internal error', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          s: fc.option(fc.array(fc.oneof(fc.constantFrom(...SCHEMA_STATUSES), fc.string())), { nil: null }),
          l: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(null)),
          o: fc.oneof(fc.integer(), fc.constant(null), fc.boolean()),
          id: fc.oneof(fc.string({ maxLength: 100 }), fc.integer(), fc.constant(ACME_KEY)),
        }),
        fc.constantFrom(`Bearer ${ACME_KEY}`, `Bearer ${GLOBEX_KEY}`, ACME_KEY, null, 'Bearer '),
        async (variables, authorization) => {
          const response = await postGraphQL(
            stack.gateway.url,
            `query Any($s: [FineTuneJobStatus!], $l: Int, $o: Int, $id: ID!) {
               fineTuneJobs(statuses: $s, limit: $l, offset: $o) { id }
               fineTuneJob(id: $id) { id }
             }`,
            variables,
            authorization,
          );
          expectWellFormed(response);
          // A key the caller sent as a variable is theirs to see again; a header key never is.
          if (variables.id !== ACME_KEY) expectNoKey(response.text);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

/** Job records close to the contract, with random drift: extra fields, odd values, missing fields. */
const driftedJob = fc.record(
  {
    name: fc.oneof(fc.string(), fc.constant(null), fc.integer()),
    id: fc.oneof(fc.string({ minLength: 1, maxLength: 64 }), fc.constant(null)),
    uuid: fc.oneof(fc.uuid(), fc.string()),
    org_uuid: fc.oneof(fc.uuid(), fc.constant(`org_${ACME_KEY}`)),
    status: fc.oneof(fc.constantFrom(...KNOWN_JOB_STATUSES), fc.string()),
    config: fc.oneof(
      fc.record({
        model: fc.string(),
        datasets: fc.array(
          fc.record({
            name: fc.string(),
            split: fc.constantFrom('train', 'eval', 'test'),
            file_ids: fc.array(fc.string()),
          }),
        ),
      }),
      fc.constant(null),
      fc.string(),
    ),
    created_at: fc.oneof(fc.constant('2026-04-27T14:32:18.421000Z'), fc.string(), fc.constant(null)),
    updated_at: fc.oneof(fc.constant('2026-04-27T14:32:18.421000+02:00'), fc.string()),
    inference_config_path: fc.oneof(fc.string(), fc.constant(null)),
    extra: fc.jsonValue(),
  },
  { requiredKeys: ['id', 'status'] },
);

const upstreamBody = fc.oneof(
  fc.array(driftedJob, { maxLength: 4 }).map((jobs) => JSON.stringify(jobs)),
  driftedJob.map((job) => JSON.stringify(job)),
  fc.jsonValue().map((value) => JSON.stringify(value)),
  fc.string(),
  fc.constantFrom(`{"detail":"bad key ${ACME_KEY}"}`, `Bearer ${ACME_KEY}`, '[', '{"errors":[{}]}', ''),
);

describe('random upstream payloads', () => {
  it('never produce an internal error, a non-GraphQL response or a leaked key', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('listJobs', 'getJob') as fc.Arbitrary<'listJobs' | 'getJob'>,
        upstreamBody,
        fc.constantFrom(200, 200, 200, 201, 400, 404, 409, 418, 429, 500, 503),
        async (route, body, status) => {
          stack.simulator.faults.set(route, { body, status });
          const document =
            route === 'listJobs'
              ? `query { fineTuneJobs(limit: 3) { ${FULL_JOB} } }`
              : `query { fineTuneJob(id: "ftj-any") { ${FULL_JOB} } }`;
          const response = await postGraphQL(stack.gateway.url, document, undefined, `Bearer ${ACME_KEY}`);
          stack.simulator.faults.clear();
          expectWellFormed(response);
          expectNoKey(response.text);
          for (const error of response.body.errors ?? []) {
            expect(error.extensions?.code, response.text).not.toBe('INTERNAL_SERVER_ERROR');
          }
        },
      ),
      { numRuns: RUNS * 2 },
    );
    for (const line of stack.logLines) expectNoKey(line);
    expect((await fetch(new URL('/healthz', stack.gateway.url))).status).toBe(200);
  });
});
