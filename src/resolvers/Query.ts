import { checkJobId, checkPage } from './arguments.js';
import type { FineTuneJobStatus, QueryResolvers } from '../generated/graphql.js';
import { loadFineTuneJobPage } from '../fine-tune-jobs/connection.js';
import type { FineTuneJobRecord } from '../upstream/records.js';

const NO_JOBS: FineTuneJobRecord[] = [];

/** Sorted and unique, so equivalent filters share one loader key and one upstream call. */
function normalizedStatuses(statuses: readonly FineTuneJobStatus[] | null | undefined): string[] | null {
  return statuses ? [...new Set(statuses)].sort() : null;
}

export const Query: QueryResolvers = {
  fineTuneJobs(_parent, args, { loaders }) {
    const { limit, offset } = checkPage(args);
    // "One of no statuses" matches nothing; no need to ask the upstream.
    if (args.statuses?.length === 0) return NO_JOBS;
    return loaders.jobListLoader.load({ statuses: normalizedStatuses(args.statuses), limit, offset });
  },

  fineTuneJobsConnection(_parent, args, { loaders }) {
    return loadFineTuneJobPage(loaders, {
      statuses: normalizedStatuses(args.statuses),
      first: args.first ?? 20,
      after: args.after,
    });
  },

  fineTuneJob(_parent, { id }, { loaders }) {
    checkJobId(id);
    return loaders.jobByIdLoader.load(id);
  },
};
