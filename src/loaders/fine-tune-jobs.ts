// Per-request DataLoaders over the fine-tune API: within one operation, identical list queries
// make one upstream call, a job is fetched by id at most once, and jobs seen in a list are not
// fetched again by id. Built per request, so nothing here outlives one operation.
import DataLoader from 'dataloader';
import type { GatewayMetrics } from '../observability/metrics.js';
import { upstreamReads, type FineTuneApiClient } from '../upstream/client.js';
import type { FineTuneJobRecord, ListJobsQuery } from '../upstream/records.js';
import {
  createJobMetricsLoader,
  type JobMetricsLoader,
  type JobMetricsLoading,
} from './fine-tune-job-metrics.js';
import { RecordingDataLoader, type ReuseRecorder } from './recording-loader.js';

export interface FineTuneJobLoaders {
  /** Job by id; null when the organization has no such job. */
  jobByIdLoader: DataLoader<string, FineTuneJobRecord | null>;
  /** One page of the job list, keyed by its normalized query. */
  jobListLoader: DataLoader<ListJobsQuery, FineTuneJobRecord[], string>;
  /** One page of one job's metrics. */
  jobMetricsLoader: JobMetricsLoader;
  /**
   * After a create, stop or cancel: this request sees the job as the upstream returned it, and
   * lists and that job's metrics are fetched again if asked for.
   */
  jobWritten(job: FineTuneJobRecord): void;
}

/**
 * The most metrics calls one request has in flight at once: enough to overlap a page of jobs'
 * calls, few enough that one request does not take the upstream's slots (upstream.maxConcurrency
 * bounds them all).
 */
export const METRICS_CONCURRENCY = 4;

/** Settles every call, so one failed key fails only its own field, not its batch-mates. */
function settleEach<K, V>(keys: readonly K[], load: (key: K) => Promise<V>): Promise<(V | Error)[]> {
  return Promise.all(
    keys.map((key) =>
      load(key).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error)))),
    ),
  );
}

/** What the lists of one operation may still return (its OperationBudget). */
export interface JobsBudget {
  remainingJobs(): number;
  tooManyJobs(): Error;
}

export function createFineTuneJobLoaders(
  api: FineTuneApiClient,
  gatewayMetrics: GatewayMetrics,
  budget: JobsBudget,
  reuses: ReuseRecorder,
): FineTuneJobLoaders {
  return new RequestJobLoaders(api, gatewayMetrics, budget, reuses);
}

/**
 * Fetches a batch of list pages within what the operation may still return: never more than
 * limits.maxJobs + 1 jobs in all (the one past the bound tells the resolver it is over), however
 * many aliases ask for every job (`limit: -1`). Pages whose limit fits go out together; the others
 * one at a time, each asking the upstream for no more than what is left.
 */
async function listWithinBudget(
  queries: readonly ListJobsQuery[],
  budget: JobsBudget,
  fetchPage: (query: ListJobsQuery) => Promise<FineTuneJobRecord[]>,
): Promise<(FineTuneJobRecord[] | Error)[]> {
  const results: (FineTuneJobRecord[] | Error)[] = new Array(queries.length);
  let remaining = budget.remainingJobs();
  const fitting: number[] = [];
  const unbounded: number[] = [];
  queries.forEach((query, index) => {
    if (query.limit >= 0 && query.limit <= remaining) {
      remaining -= query.limit;
      fitting.push(index);
    } else {
      unbounded.push(index);
    }
  });
  const settle = async (index: number, query: ListJobsQuery) => {
    try {
      results[index] = await fetchPage(query);
    } catch (error) {
      results[index] = error instanceof Error ? error : new Error(String(error));
    }
  };
  await Promise.all(fitting.map((index) => settle(index, queries[index]!)));
  // What the fitting pages reserved and did not return is left for the others.
  for (const index of fitting) {
    const result = results[index]!;
    remaining += queries[index]!.limit - (result instanceof Error ? 0 : result.length);
  }
  for (const index of unbounded) {
    if (remaining < 0) {
      results[index] = budget.tooManyJobs();
      continue;
    }
    const query = queries[index]!;
    const asked = query.limit < 0 ? remaining + 1 : Math.min(query.limit, remaining + 1);
    await settle(index, { ...query, limit: asked });
    const result = results[index]!;
    if (!(result instanceof Error)) remaining -= result.length;
  }
  return results;
}

/**
 * Each loader is made on first use: most operations need one of the three. A class, so the
 * getters live on the prototype: getters on an object literal measurably slowed every request.
 */
class RequestJobLoaders implements FineTuneJobLoaders {
  // Lists still in flight in this request: a job they return need not be fetched by id.
  private readonly listsInFlight = new Set<Promise<unknown>>();
  // Jobs the lists returned, by id; indexed only when a job is asked for by id or written.
  private readonly seenInLists = new Map<string, FineTuneJobRecord>();
  private readonly listsToIndex: FineTuneJobRecord[][] = [];
  private byId: RecordingDataLoader<string, FineTuneJobRecord | null> | undefined;
  private lists: RecordingDataLoader<ListJobsQuery, FineTuneJobRecord[], string> | undefined;
  private metrics: JobMetricsLoading | undefined;

  constructor(
    private readonly api: FineTuneApiClient,
    private readonly gatewayMetrics: GatewayMetrics,
    private readonly budget: JobsBudget,
    /** Told of each load answered without a call. */
    private readonly reuses: ReuseRecorder,
  ) {}

  get jobByIdLoader(): RecordingDataLoader<string, FineTuneJobRecord | null> {
    const { api, listsInFlight, gatewayMetrics } = this;
    // The upstream has no batch endpoint: a batch is a set of concurrent single-job calls.
    this.byId ??= new RecordingDataLoader<string, FineTuneJobRecord | null>(
      async (ids) => {
        if (listsInFlight.size > 0) await Promise.allSettled(listsInFlight);
        return settleEach(ids, async (id) => {
          const seen = this.listedJob(id);
          if (seen === undefined) return api.getJob(id);
          gatewayMetrics.loaderHit('jobById', 'list');
          this.reuses.reuse(upstreamReads.getJob(id), 'loader');
          return seen;
        });
      },
      {
        // Dispatched after the list loader's batch, whatever the field order, so lists are in flight.
        batchScheduleFn: (dispatch) => setImmediate(dispatch),
        reuses: this.reuses,
        describe: upstreamReads.getJob,
        onCacheHit: () => gatewayMetrics.loaderHit('jobById', 'cache'),
      },
    );
    return this.byId;
  }

  get jobListLoader(): RecordingDataLoader<ListJobsQuery, FineTuneJobRecord[], string> {
    const { api, listsInFlight, listsToIndex, gatewayMetrics, budget } = this;
    this.lists ??= new RecordingDataLoader<ListJobsQuery, FineTuneJobRecord[], string>(
      (queries) =>
        listWithinBudget(queries, budget, async (query) => {
          const pending = api.listJobs(query);
          listsInFlight.add(pending);
          try {
            const jobs = await pending;
            // Remembered, not primed into the by-id loader: priming costs a promise per job of
            // every page, and the by-id batch looks here first anyway.
            listsToIndex.push(jobs);
            return jobs;
          } finally {
            listsInFlight.delete(pending);
          }
        }),
      {
        cacheKeyFn: (q) => JSON.stringify([q.statuses, q.limit, q.offset]),
        reuses: this.reuses,
        describe: upstreamReads.listJobs,
        onCacheHit: () => gatewayMetrics.loaderHit('jobList', 'cache'),
      },
    );
    return this.lists;
  }

  get jobMetricsLoader(): JobMetricsLoader {
    this.metrics ??= createJobMetricsLoader(this.api, METRICS_CONCURRENCY, this.reuses);
    return this.metrics.loader;
  }

  private indexListedJobs(): void {
    for (const jobs of this.listsToIndex) for (const job of jobs) this.seenInLists.set(job.id, job);
    this.listsToIndex.length = 0;
  }

  private listedJob(id: string): FineTuneJobRecord | undefined {
    this.indexListedJobs();
    return this.seenInLists.get(id);
  }

  jobWritten(job: FineTuneJobRecord): void {
    // After the lists' jobs, so the written job replaces the listed one.
    this.indexListedJobs();
    this.seenInLists.set(job.id, job);
    this.jobByIdLoader.clear(job.id).prime(job.id, job);
    this.lists?.clearAll();
    this.metrics?.forgetJob(job.id);
  }
}
