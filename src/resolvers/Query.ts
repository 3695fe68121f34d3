import { checkJobId, checkPage } from './arguments.js';
import type { QueryResolvers } from '../generated/graphql.js';
import type { FineTuneJobRecord } from '../upstream/records.js';

const NO_JOBS: FineTuneJobRecord[] = [];

export const Query: QueryResolvers = {
  fineTuneJobs(_parent, args, { loaders }) {
    const { limit, offset } = checkPage(args);
    // "One of no statuses" matches nothing; no need to ask the upstream.
    if (args.statuses?.length === 0) return NO_JOBS;
    // Sorted and unique, so equivalent filters share one loader key and one upstream call.
    const statuses = args.statuses ? [...new Set(args.statuses)].sort() : null;
    return loaders.jobListLoader.load({ statuses, limit, offset });
  },

  fineTuneJob(_parent, { id }, { loaders }) {
    checkJobId(id);
    return loaders.jobByIdLoader.load(id);
  },
};
