// The three writes. Input is checked before any upstream call; the retry and read-back logic
// lives in fine-tune-jobs/job-writes.ts; afterwards this request's loaders see the job as returned.
// Each notes the job it runs for, for the audit line (graphql/plugins/audit-trail.ts).
import { createJobRequest } from '../fine-tune-jobs/create-input.js';
import type { MutationResolvers } from '../generated/graphql.js';
import { checkJobId } from './arguments.js';

export const Mutation: MutationResolvers = {
  async createFineTuneJob(_parent, { input }, { loaders, jobWrites, operation }, info) {
    const request = createJobRequest(input);
    operation.jobWrites.set(String(info.path.key), request.id);
    const job = await jobWrites.create(request);
    loaders.jobWritten(job);
    return job;
  },

  async stopFineTuneJob(_parent, { id }, { loaders, jobWrites, operation }, info) {
    checkJobId(id);
    operation.jobWrites.set(String(info.path.key), id);
    const job = await jobWrites.stop(id);
    loaders.jobWritten(job);
    return job;
  },

  async cancelFineTuneJob(_parent, { id }, { loaders, jobWrites, operation }, info) {
    checkJobId(id);
    operation.jobWrites.set(String(info.path.key), id);
    const job = await jobWrites.cancel(id);
    loaders.jobWritten(job);
    return job;
  },
};
