// Field resolvers rename the upstream's snake_case record to the schema's fields; fields with
// the same name on both sides (name, uuid, config, …) use graphql-js's default resolver.
import { LRUCache } from 'lru-cache';
import { checkJobId, checkPage, pathOf } from './arguments.js';
import { allowedActions, isTerminal } from '../fine-tune-jobs/lifecycle.js';
import type {
  FineTuneDatasetResolvers,
  FineTuneJobResolvers,
  FineTuneJobStatus,
} from '../generated/graphql.js';
import { KNOWN_JOB_STATUSES } from '../upstream/records.js';

const KNOWN: ReadonlySet<string> = new Set(KNOWN_JOB_STATUSES);
// Unknown statuses are logged once, not once per job per request; bounded, since the values come
// from outside (past 100, the least recently seen may be logged again).
const reportedUnknownStatuses = new LRUCache<string, true>({ max: 100 });

export const FineTuneJob: FineTuneJobResolvers = {
  // Federation: a router's `_entities` call for jobs goes through the request's by-id loader.
  // Async so a refused id fails its own entity, not every representation of the call.
  async __resolveReference(reference, { loaders, operation }, info) {
    checkJobId(reference.id);
    const job = await loaders.jobByIdLoader.load(reference.id);
    if (job !== null) operation.budget.takeJobs(pathOf(info), 1);
    return job;
  },
  orgUuid: (job) => job.org_uuid,
  status(job, _args, { logger }) {
    if (KNOWN.has(job.status)) return job.status as FineTuneJobStatus;
    if (!reportedUnknownStatuses.has(job.status)) {
      reportedUnknownStatuses.set(job.status, true);
      logger.warn(
        { upstreamStatus: job.status, jobId: job.id },
        'upstream sent an unknown job status; shown as UNKNOWN',
      );
    }
    return 'UNKNOWN';
  },
  upstreamStatus: (job) => job.status,
  isTerminal: (job) => isTerminal(job.status),
  allowedActions: (job) => allowedActions(job.status),
  createdAt: (job) => job.created_at,
  updatedAt: (job) => job.updated_at,
  inferenceConfigPath: (job) => job.inference_config_path ?? null,
  metrics(job, args, { loaders }) {
    const { limit, offset } = checkPage(args);
    return loaders.jobMetricsLoader.load({ jobId: job.id, limit, offset });
  },
};

export const FineTuneDataset: FineTuneDatasetResolvers = {
  fileIds: (dataset) => dataset.file_ids,
};
