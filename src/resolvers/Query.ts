import { checkJobId, checkPage, pathOf } from './arguments.js';
import type { FineTuneJobStatus, QueryResolvers } from '../generated/graphql.js';
import { loadFineTuneJobPage } from '../fine-tune-jobs/connection.js';
import type { FineTuneJobRecord } from '../upstream/records.js';

const NO_JOBS: FineTuneJobRecord[] = [];

/** Sorted and unique, so equivalent filters share one loader key and one upstream call. */
function normalizedStatuses(statuses: readonly FineTuneJobStatus[] | null | undefined): string[] | null {
  return statuses ? [...new Set(statuses)].sort() : null;
}

export const Query: QueryResolvers = {
  async fineTuneJobs(_parent, args, { loaders, operation }, info) {
    const { limit, offset } = checkPage(args);
    // "One of no statuses" matches nothing; no need to ask the upstream.
    if (args.statuses?.length === 0) return NO_JOBS;
    const jobs = await loaders.jobListLoader.load({
      statuses: normalizedStatuses(args.statuses),
      limit,
      offset,
    });
    operation.budget.takeJobs(pathOf(info), jobs.length);
    return jobs;
  },

  async fineTuneJobsConnection(_parent, args, { loaders, operation }, info) {
    const page = await loadFineTuneJobPage((query) => loaders.jobListLoader.load(query), {
      statuses: normalizedStatuses(args.statuses),
      first: args.first ?? 20,
      after: args.after,
    });
    operation.budget.takeJobs(pathOf(info), page.edges.length);
    return page;
  },

  async fineTuneJob(_parent, { id }, { loaders, operation }, info) {
    checkJobId(id);
    const job = await loaders.jobByIdLoader.load(id);
    if (job !== null) operation.budget.takeJobs(pathOf(info), 1);
    return job;
  },
};
