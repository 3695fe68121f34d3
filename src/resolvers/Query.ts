import { ErrorCode, gatewayError } from '../errors.js';
import type { QueryResolvers } from '../generated/graphql.js';
import type { FineTuneJobRecord } from '../upstream/records.js';

const NO_JOBS: FineTuneJobRecord[] = [];

/** The documented range of a job id in paths; anything else cannot exist upstream. */
export function checkJobId(id: string): void {
  if (id.length < 1 || id.length > 64) {
    throw gatewayError(ErrorCode.BAD_USER_INPUT, 'id must be 1 to 64 characters long', { argument: 'id' });
  }
}

export const Query: QueryResolvers = {
  fineTuneJobs(_parent, args, { loaders }) {
    const limit = args.limit ?? -1;
    const offset = args.offset ?? 0;
    if (limit < -1) {
      throw gatewayError(ErrorCode.BAD_USER_INPUT, 'limit must be -1 (all) or a count of 0 or more', {
        argument: 'limit',
      });
    }
    if (offset < 0) {
      throw gatewayError(ErrorCode.BAD_USER_INPUT, 'offset must be 0 or more', { argument: 'offset' });
    }
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
