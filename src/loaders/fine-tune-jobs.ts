// Per-request DataLoaders over the fine-tune API: within one operation, identical list queries
// make one upstream call, a job is fetched by id at most once, and jobs seen in a list are not
// fetched again by id. Built per request, so nothing here outlives one operation.
import DataLoader from 'dataloader';
import type { FineTuneApiClient } from '../upstream/client.js';
import type { FineTuneJobRecord, ListJobsQuery } from '../upstream/records.js';

export interface FineTuneJobLoaders {
  /** Job by id; null when the organization has no such job. */
  jobByIdLoader: DataLoader<string, FineTuneJobRecord | null>;
  /** One page of the job list, keyed by its normalized query. */
  jobListLoader: DataLoader<ListJobsQuery, FineTuneJobRecord[], string>;
}

/** Settles every call, so one failed key fails only its own field, not its batch-mates. */
function settleEach<K, V>(keys: readonly K[], load: (key: K) => Promise<V>): Promise<(V | Error)[]> {
  return Promise.all(
    keys.map((key) =>
      load(key).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error)))),
    ),
  );
}

export function createFineTuneJobLoaders(api: FineTuneApiClient): FineTuneJobLoaders {
  // Lists still in flight in this request: a job they return need not be fetched by id.
  const listsInFlight = new Set<Promise<unknown>>();
  const seenInLists = new Map<string, FineTuneJobRecord>();

  // The upstream has no batch endpoint: a batch is a set of concurrent single-job calls.
  const jobByIdLoader = new DataLoader<string, FineTuneJobRecord | null>(
    async (ids) => {
      if (listsInFlight.size > 0) await Promise.allSettled(listsInFlight);
      return settleEach(ids, async (id) => seenInLists.get(id) ?? api.getJob(id));
    },
    // Dispatched after the list loader's batch, whatever the field order, so lists are in flight.
    { batchScheduleFn: (dispatch) => setImmediate(dispatch) },
  );

  const jobListLoader = new DataLoader<ListJobsQuery, FineTuneJobRecord[], string>(
    (queries) =>
      settleEach(queries, async (query) => {
        const pending = api.listJobs(query);
        listsInFlight.add(pending);
        try {
          const jobs = await pending;
          for (const job of jobs) {
            seenInLists.set(job.id, job);
            jobByIdLoader.prime(job.id, job);
          }
          return jobs;
        } finally {
          listsInFlight.delete(pending);
        }
      }),
    { cacheKeyFn: (q) => JSON.stringify([q.statuses, q.limit, q.offset]) },
  );

  return { jobByIdLoader, jobListLoader };
}
