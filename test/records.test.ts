// The in-place record check the upstream client uses before zod (src/upstream/records.ts) must
// accept exactly what zod accepts: otherwise a payload zod would refuse could reach the resolvers,
// or a good one would pay for zod's copy. Property-based over mutated provider examples.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  fineTuneJobList,
  fineTuneJobRecord,
  isFineTuneJobList,
  isFineTuneJobRecord,
} from '../src/upstream/records.js';

const examples = new URL('../src/simulator/provider-examples/', import.meta.url);
const read = (file: string) => JSON.parse(readFileSync(new URL(file, examples), 'utf8')) as unknown;
const listExample = read('list-jobs.response.json') as Record<string, unknown>[];
const jobExamples = [
  ...listExample,
  read('get-job.response.json'),
  read('create-job.response.json'),
  read('create-job.response-alt.json'),
  read('stop-job.response.json'),
  read('cancel-job.response.json'),
] as Record<string, unknown>[];

const PATHS = [
  ['name'],
  ['id'],
  ['uuid'],
  ['org_uuid'],
  ['status'],
  ['config'],
  ['config', 'model'],
  ['config', 'datasets'],
  ['config', 'datasets', 0],
  ['config', 'datasets', 0, 'name'],
  ['config', 'datasets', 0, 'split'],
  ['config', 'datasets', 0, 'file_ids'],
  ['config', 'datasets', 0, 'file_ids', 0],
  ['created_at'],
  ['updated_at'],
  ['inference_config_path'],
  ['extra_field'],
] as const;

/** Timestamps near the format: valid ones, and ones off by a field, a zone, a day of month. */
const timestamp = fc
  .tuple(
    fc.integer({ min: 1999, max: 2101 }),
    fc.integer({ min: 0, max: 13 }),
    fc.integer({ min: 0, max: 32 }),
    fc.integer({ min: 0, max: 25 }),
    fc.constantFrom('', '.421000', '.5', '.', '.123456789'),
    fc.constantFrom('Z', 'z', '+02:00', '-05:30', '+2:00', '', '+24:00', ' '),
    fc.constantFrom('T', 't', ' '),
  )
  .map(([y, mo, d, h, fraction, zone, t]) => {
    const two = (n: number) => String(n).padStart(2, '0');
    return `${y}-${two(mo)}-${two(d)}${t}${two(h)}:30:59${fraction}${zone}`;
  });

const value = fc.oneof(
  fc.jsonValue(),
  fc.string(),
  timestamp,
  fc.constant(null),
  fc.constant(undefined),
  fc.array(fc.string(), { maxLength: 2 }),
  fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 2 }),
);

/** Sets (or, for undefined, deletes) one path of a deep copy. */
function mutate(job: unknown, path: readonly (string | number)[], next: unknown): unknown {
  const copy = structuredClone(job) as Record<string | number, unknown>;
  let holder: Record<string | number, unknown> | undefined = copy;
  for (const key of path.slice(0, -1)) {
    const child: unknown = holder?.[key];
    holder =
      typeof child === 'object' && child !== null ? (child as Record<string | number, unknown>) : undefined;
  }
  if (holder === undefined) return copy;
  const last = path[path.length - 1]!;
  if (next === undefined) delete holder[last];
  else holder[last] = next;
  return copy;
}

const mutatedJob = fc
  .tuple(
    fc.constantFrom(...jobExamples),
    fc.array(fc.tuple(fc.constantFrom(...PATHS), value), { minLength: 0, maxLength: 3 }),
  )
  .map(([job, changes]) => changes.reduce<unknown>((j, [path, next]) => mutate(j, path, next), job));

describe('the in-place record check', () => {
  it('accepts every provider example, as zod does', () => {
    for (const job of jobExamples) {
      expect(fineTuneJobRecord.safeParse(job).success).toBe(true);
      expect(isFineTuneJobRecord(job)).toBe(true);
    }
    expect(isFineTuneJobList(listExample)).toBe(true);
  });

  it('agrees with zod on mutated jobs', () => {
    fc.assert(
      fc.property(mutatedJob, (job) => {
        expect(isFineTuneJobRecord(job), JSON.stringify(job)).toBe(fineTuneJobRecord.safeParse(job).success);
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees with zod on timestamps', () => {
    const job = jobExamples[0]!;
    fc.assert(
      fc.property(timestamp, (created) => {
        const candidate = { ...job, created_at: created };
        expect(isFineTuneJobRecord(candidate), created).toBe(fineTuneJobRecord.safeParse(candidate).success);
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees with zod on lists, and anything that is not one', () => {
    fc.assert(
      fc.property(fc.oneof(fc.array(mutatedJob, { maxLength: 4 }), value), (list) => {
        expect(isFineTuneJobList(list)).toBe(fineTuneJobList.safeParse(list).success);
      }),
      { numRuns: 1000 },
    );
  });
});
