// Field resolvers rename the upstream's snake_case record to the schema's fields; fields with
// the same name on both sides (name, uuid, config, …) use graphql-js's default resolver.
import type {
  FineTuneDatasetResolvers,
  FineTuneJobResolvers,
  FineTuneJobStatus,
} from '../generated/graphql.js';
import { KNOWN_JOB_STATUSES, TERMINAL_JOB_STATUSES } from '../upstream/records.js';

const KNOWN: ReadonlySet<string> = new Set(KNOWN_JOB_STATUSES);
// Unknown statuses are logged once per process, not once per job per request.
const reportedUnknownStatuses = new Set<string>();

export const FineTuneJob: FineTuneJobResolvers = {
  orgUuid: (job) => job.org_uuid,
  status(job, _args, { logger }) {
    if (KNOWN.has(job.status)) return job.status as FineTuneJobStatus;
    if (!reportedUnknownStatuses.has(job.status)) {
      reportedUnknownStatuses.add(job.status);
      logger.warn(
        { upstreamStatus: job.status, jobId: job.id },
        'upstream sent an unknown job status; shown as UNKNOWN',
      );
    }
    return 'UNKNOWN';
  },
  upstreamStatus: (job) => job.status,
  isTerminal: (job) => TERMINAL_JOB_STATUSES.has(job.status),
  createdAt: (job) => job.created_at,
  updatedAt: (job) => job.updated_at,
  inferenceConfigPath: (job) => job.inference_config_path ?? null,
};

export const FineTuneDataset: FineTuneDatasetResolvers = {
  fileIds: (dataset) => dataset.file_ids,
};
