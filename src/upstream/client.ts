// The fine-tune jobs REST API, one method per endpoint. Every call goes through the one shared
// UpstreamHttp (ky: timeouts, retries; cockatiel: a bound on concurrent requests, a circuit
// breaker); each client carries one caller's API key and request id. Responses are validated
// against the documented shapes and returned as the upstream's records.
import type { z } from 'zod';
import { UpstreamError, readUpstreamFailure } from './errors.js';
import { CallRefused, type Caller, type UpstreamHttp, type UpstreamRequest } from './http.js';
import type { UpstreamCall } from './recorder.js';
import {
  fineTuneJobList,
  fineTuneJobMetricsRecord,
  fineTuneJobRecord,
  isFineTuneJobList,
  isFineTuneJobRecord,
  type CreateJobRequest,
  type FineTuneJobMetricsRecord,
  type FineTuneJobRecord,
  type ListJobsQuery,
  type MetricsPage,
} from './records.js';
import { redactSecrets } from '../observability/secrets.js';

function listJobsParams(query: ListJobsQuery): URLSearchParams {
  const searchParams = new URLSearchParams();
  searchParams.set('limit', String(query.limit));
  searchParams.set('offset', String(query.offset));
  for (const status of query.statuses ?? []) searchParams.append('statuses', status);
  return searchParams;
}

function metricsParams(page: MetricsPage): URLSearchParams {
  const searchParams = new URLSearchParams();
  searchParams.set('limit', String(page.limit));
  searchParams.set('offset', String(page.offset));
  return searchParams;
}

/** The reads as a recorder is told of them, for loads answered without a call. */
export const upstreamReads = {
  listJobs: (query: ListJobsQuery): UpstreamCall => ({
    endpoint: 'GET /fine-tune/jobs',
    method: 'GET',
    path: `/fine-tune/jobs?${listJobsParams(query)}`,
  }),
  getJob: (id: string): UpstreamCall => ({
    endpoint: 'GET /fine-tune/jobs/{job_id}',
    method: 'GET',
    path: `/fine-tune/jobs/${encodeURIComponent(id)}`,
  }),
  getJobMetrics: (id: string, page: MetricsPage): UpstreamCall => ({
    endpoint: 'GET /fine-tune/jobs/{job_id}/metrics',
    method: 'GET',
    path: `/fine-tune/jobs/${encodeURIComponent(id)}/metrics?${metricsParams(page)}`,
  }),
};

export class FineTuneApiClient {
  constructor(
    private readonly http: UpstreamHttp,
    private readonly caller: Caller,
  ) {}

  /** `GET /fine-tune/jobs`, with filter and page pushed down to the query string. */
  listJobs(query: ListJobsQuery): Promise<FineTuneJobRecord[]> {
    return this.call(
      'GET /fine-tune/jobs',
      fineTuneJobList,
      { method: 'GET', path: 'fine-tune/jobs', searchParams: listJobsParams(query) },
      isFineTuneJobList,
    );
  }

  /** `GET /fine-tune/jobs/{job_id}`; null when the organization has no such job. */
  async getJob(id: string): Promise<FineTuneJobRecord | null> {
    try {
      return await this.call(
        'GET /fine-tune/jobs/{job_id}',
        fineTuneJobRecord,
        { method: 'GET', path: `fine-tune/jobs/${encodeURIComponent(id)}` },
        isFineTuneJobRecord,
      );
    } catch (error) {
      if (error instanceof UpstreamError && error.details.status === 404) return null;
      throw error;
    }
  }

  /**
   * `POST /fine-tune/jobs`, one attempt. Never retried here: whether a lost answer may be
   * retried is decided in src/fine-tune-jobs/job-writes.ts, which knows the id makes it safe.
   */
  createJob(request: CreateJobRequest): Promise<FineTuneJobRecord> {
    return this.call(
      'POST /fine-tune/jobs',
      fineTuneJobRecord,
      { method: 'POST', path: 'fine-tune/jobs', json: request },
      isFineTuneJobRecord,
    );
  }

  /** `PUT /fine-tune/jobs/{job_id}/stop`, one attempt (see src/fine-tune-jobs/job-writes.ts). */
  stopJob(id: string): Promise<FineTuneJobRecord> {
    return this.putJobAction(id, 'stop');
  }

  /** `PUT /fine-tune/jobs/{job_id}/cancel`, one attempt (see src/fine-tune-jobs/job-writes.ts). */
  cancelJob(id: string): Promise<FineTuneJobRecord> {
    return this.putJobAction(id, 'cancel');
  }

  private putJobAction(id: string, action: 'stop' | 'cancel'): Promise<FineTuneJobRecord> {
    return this.call(
      `PUT /fine-tune/jobs/{job_id}/${action}`,
      fineTuneJobRecord,
      { method: 'PUT', path: `fine-tune/jobs/${encodeURIComponent(id)}/${action}` },
      isFineTuneJobRecord,
    );
  }

  /** `GET /fine-tune/jobs/{job_id}/metrics`, with the page pushed down to the query string. */
  getJobMetrics(id: string, page: MetricsPage): Promise<FineTuneJobMetricsRecord> {
    return this.call('GET /fine-tune/jobs/{job_id}/metrics', fineTuneJobMetricsRecord, {
      method: 'GET',
      path: `fine-tune/jobs/${encodeURIComponent(id)}/metrics`,
      searchParams: metricsParams(page),
    });
  }

  /**
   * One call, its body parsed and validated against `schema`. `isValid`, when given, is the same
   * check done in place (no copy): a body it accepts is returned as is, and zod runs only to
   * describe one it refuses.
   */
  private async call<S extends z.ZodType>(
    operation: string,
    schema: S,
    request: UpstreamRequest,
    isValid?: (body: unknown) => body is z.infer<S>,
  ): Promise<z.infer<S>> {
    let text: string;
    try {
      text = await this.http.send(operation, request, this.caller);
    } catch (error) {
      if (error instanceof CallRefused) throw error.reason;
      throw await readUpstreamFailure(operation, error, [this.caller.apiKey]);
    }

    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw this.badResponse(operation, 'the upstream answered with a body that is not JSON', text);
    }
    if (isValid?.(body)) return body;
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'unknown';
      throw this.badResponse(operation, `the upstream answered with an unexpected shape (${where})`, text);
    }
    return parsed.data;
  }

  private badResponse(operation: string, message: string, body: string): UpstreamError {
    return new UpstreamError('bad-response', message, {
      operation,
      rawBody: this.redact(body).slice(0, 2000),
    });
  }

  private redact(text: string): string {
    return redactSecrets(text, [this.caller.apiKey]);
  }
}
