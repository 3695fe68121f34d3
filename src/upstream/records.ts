// The upstream's record shapes, as the provider documents them (shared/upstream/openapi.yaml),
// validated with zod at the edge. Resolvers receive these records untouched (codegen mappers)
// and rename fields themselves, so nothing here reshapes data beyond validating it.
import { z } from 'zod';

/** The statuses the provider documents; anything else is drift and maps to UNKNOWN. */
export const KNOWN_JOB_STATUSES = [
  'UNKNOWN',
  'REGISTERED',
  'STARTING',
  'RUNNING',
  'COMPLETED',
  'FINALIZING',
  'STOPPING',
  'STOPPED',
  'CANCELLED',
  'FAILED',
] as const;
export type KnownJobStatus = (typeof KNOWN_JOB_STATUSES)[number];

// RFC 3339 with any number of fractional digits: the gateway keeps the upstream's string as is.
const timestamp = z.iso.datetime({ offset: true });

// looseObject: new upstream fields are tolerated (and ignored by the schema), per the drift rules.
export const fineTuneDatasetRecord = z.looseObject({
  name: z.string(),
  split: z.string(),
  file_ids: z.array(z.string()),
});

export const fineTuneJobConfigRecord = z.looseObject({
  model: z.string(),
  datasets: z.array(fineTuneDatasetRecord),
});

export const fineTuneJobRecord = z.looseObject({
  name: z.string(),
  id: z.string(),
  uuid: z.string(),
  org_uuid: z.string(),
  // Kept as the raw string: an unknown status must not fail a list (drift).
  status: z.string(),
  config: fineTuneJobConfigRecord,
  created_at: timestamp,
  updated_at: timestamp,
  inference_config_path: z.string().nullish(),
});

export const fineTuneJobList = z.array(fineTuneJobRecord);

// The pattern zod's `z.iso.datetime({ offset: true })` checks (test/records.test.ts holds them equal).
const TIMESTAMP_PATTERN = z.regexes.datetime({ offset: true, local: false, precision: null });

const isRecordObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isString = (value: unknown): value is string => typeof value === 'string';
const isTimestamp = (value: unknown) => isString(value) && TIMESTAMP_PATTERN.test(value);
/** Every index, holes included (`every` skips holes; zod reads them as undefined). */
function isArrayOf(value: unknown, check: (item: unknown) => boolean): boolean {
  if (!Array.isArray(value)) return false;
  for (let i = 0; i < value.length; i++) if (!check(value[i])) return false;
  return true;
}

function isDatasetRecord(value: unknown): boolean {
  return (
    isRecordObject(value) &&
    isString(value.name) &&
    isString(value.split) &&
    isArrayOf(value.file_ids, isString)
  );
}

/**
 * `fineTuneJobRecord`'s checks, in place: true only when zod would accept the value, and then
 * the value itself is the record zod would return (a loose object keeps every key). zod's parse
 * copies every object, a cost per job the bench measured at about a fifth of a 500-job page;
 * the client checks with this first and asks zod only to describe a payload this refuses.
 */
export function isFineTuneJobRecord(value: unknown): value is FineTuneJobRecord {
  if (!isRecordObject(value)) return false;
  const { config } = value;
  const path = value.inference_config_path;
  return (
    isString(value.name) &&
    isString(value.id) &&
    isString(value.uuid) &&
    isString(value.org_uuid) &&
    isString(value.status) &&
    isRecordObject(config) &&
    isString(config.model) &&
    isArrayOf(config.datasets, isDatasetRecord) &&
    isTimestamp(value.created_at) &&
    isTimestamp(value.updated_at) &&
    (path === undefined || path === null || isString(path))
  );
}

/** `fineTuneJobList`'s checks in place (see isFineTuneJobRecord). */
export function isFineTuneJobList(value: unknown): value is FineTuneJobRecord[] {
  return isArrayOf(value, isFineTuneJobRecord);
}

export type FineTuneDatasetRecord = z.infer<typeof fineTuneDatasetRecord>;
export type FineTuneJobConfigRecord = z.infer<typeof fineTuneJobConfigRecord>;
export type FineTuneJobRecord = z.infer<typeof fineTuneJobRecord>;

/** Query of `GET /fine-tune/jobs`, already normalized (statuses sorted and unique). */
export interface ListJobsQuery {
  statuses: readonly string[] | null;
  limit: number;
  offset: number;
}

/** Body of `POST /fine-tune/jobs`. The gateway always sends an id (see src/fine-tune-jobs/job-writes.ts). */
export interface CreateJobRequest {
  id: string;
  name: string;
  config: FineTuneJobConfigRecord;
}

/** Page of `GET /fine-tune/jobs/{job_id}/metrics`. */
export interface MetricsPage {
  limit: number;
  offset: number;
}

// GraphQL's Int is 32-bit: a larger step is out of range, so it reads as null rather than failing.
const graphQLInt = z
  .number()
  .int()
  .min(-(2 ** 31))
  .max(2 ** 31 - 1);

/** A metric entry is free-form: the runner may write any keys, and all of them are kept. */
export const fineTuneMetricEntryRecord = z.record(z.string(), z.unknown());

export const fineTuneJobMetricsRecord = z.looseObject({
  // Optional and advisory: a value of the wrong type reads as missing instead of failing the page.
  last_checkpoint_step: graphQLInt.nullish().catch(undefined),
  metrics: z.array(fineTuneMetricEntryRecord),
});

export type FineTuneMetricEntryRecord = z.infer<typeof fineTuneMetricEntryRecord>;
export type FineTuneJobMetricsRecord = z.infer<typeof fineTuneJobMetricsRecord>;

/**
 * The typical keys of a metric entry and the type each must have to be shown as a typed field.
 * Each is read on its own: a value of another type is null for that field, never a failed page.
 */
export const TYPICAL_METRIC_KEYS = {
  step: graphQLInt,
  loss: z.number(),
  eval_loss: z.number(),
  learning_rate: z.number(),
  wall_time_sec: z.number(),
} as const;

export function readTypicalMetric<K extends keyof typeof TYPICAL_METRIC_KEYS>(
  entry: FineTuneMetricEntryRecord,
  key: K,
): z.infer<(typeof TYPICAL_METRIC_KEYS)[K]> | null {
  const parsed = TYPICAL_METRIC_KEYS[key].safeParse(entry[key]);
  return parsed.success ? parsed.data : null;
}
