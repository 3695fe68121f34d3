// Per-request DataLoader of job metrics, keyed by job and page: a list of N jobs asking for
// metrics makes one upstream call per distinct (job, page), and the same page asked twice in
// one operation is fetched once. The API has no batch endpoint, so a batch is N single calls;
// p-limit keeps at most `concurrency` of them in flight, so a page of 500 jobs does not open
// 500 connections to the upstream at once.
import pLimit from 'p-limit';
import { upstreamReads, type FineTuneApiClient } from '../upstream/client.js';
import type { FineTuneJobMetricsRecord, MetricsPage } from '../upstream/records.js';
import { RecordingDataLoader, type ReuseRecorder } from './recording-loader.js';

export interface JobMetricsKey extends MetricsPage {
  jobId: string;
}

export type JobMetricsLoader = RecordingDataLoader<JobMetricsKey, FineTuneJobMetricsRecord, string>;

export function jobMetricsCacheKey(key: JobMetricsKey): string {
  return JSON.stringify([key.jobId, key.limit, key.offset]);
}

export interface JobMetricsLoading {
  loader: JobMetricsLoader;
  /** Drops every page of one job's metrics from this request's cache (after a write to it). */
  forgetJob(jobId: string): void;
}

export function createJobMetricsLoader(
  api: FineTuneApiClient,
  concurrency: number,
  reuses: ReuseRecorder,
): JobMetricsLoading {
  // Made on first use: most requests never ask for metrics.
  let limit: ReturnType<typeof pLimit> | undefined;
  // Every key reaches the batch function (nothing is primed), so this knows each job's pages.
  const pagesByJob = new Map<string, JobMetricsKey[]>();
  const loader = new RecordingDataLoader<JobMetricsKey, FineTuneJobMetricsRecord, string>(
    (keys) =>
      Promise.all(
        keys.map((key) => {
          pagesByJob.set(key.jobId, [...(pagesByJob.get(key.jobId) ?? []), key]);
          // Settled one by one: a failed page fails only its own field, not its batch-mates.
          limit ??= pLimit(concurrency);
          return limit(() => api.getJobMetrics(key.jobId, key)).catch((error: unknown) =>
            error instanceof Error ? error : new Error(String(error)),
          );
        }),
      ),
    {
      cacheKeyFn: jobMetricsCacheKey,
      reuses,
      describe: (key) => upstreamReads.getJobMetrics(key.jobId, key),
    },
  );
  return {
    loader,
    forgetJob(jobId) {
      for (const key of pagesByJob.get(jobId) ?? []) loader.clear(key);
      pagesByJob.delete(jobId);
    },
  };
}
