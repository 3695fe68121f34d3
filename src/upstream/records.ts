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

export const TERMINAL_JOB_STATUSES: ReadonlySet<string> = new Set([
  'COMPLETED',
  'STOPPED',
  'CANCELLED',
  'FAILED',
]);

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

export type FineTuneDatasetRecord = z.infer<typeof fineTuneDatasetRecord>;
export type FineTuneJobConfigRecord = z.infer<typeof fineTuneJobConfigRecord>;
export type FineTuneJobRecord = z.infer<typeof fineTuneJobRecord>;

/** Query of `GET /fine-tune/jobs`, already normalized (statuses sorted and unique). */
export interface ListJobsQuery {
  statuses: readonly string[] | null;
  limit: number;
  offset: number;
}
