// The fine-tune jobs REST API, one method per endpoint. Calls go through one shared ky
// instance (timeouts, retries); each client carries one caller's API key. Responses are
// validated against the documented shapes and returned as the upstream's records.
import ky, { HTTPError, TimeoutError, type KyInstance, type Options } from 'ky';
import type { z } from 'zod';
import { redactSecrets } from '../secrets.js';
import { UpstreamError, parseErrorBody, parseRetryAfter } from './errors.js';
import {
  fineTuneJobList,
  fineTuneJobMetricsRecord,
  fineTuneJobRecord,
  type CreateJobRequest,
  type FineTuneJobMetricsRecord,
  type FineTuneJobRecord,
  type ListJobsQuery,
  type MetricsPage,
} from './records.js';

export interface UpstreamSettings {
  /** Base URL including the version, e.g. `https://api.u1.archetypeai.app/v0.5`. */
  baseUrl: string;
  /** Per attempt, until the response headers arrive. */
  timeoutMs: number;
  /** Retries of a GET after the first attempt. */
  retryLimit: number;
  /** The longest `Retry-After` the gateway waits for; a longer one fails at once. */
  maxRetryAfterMs: number;
  /** Upper bound of the exponential backoff between retries. */
  backoffLimitMs: number;
}

const RETRY_STATUSES = [429, 502, 503, 504];

/** The HTTP layer shared by every request's client: one place for timeouts and retries. */
export function createUpstreamHttp(settings: UpstreamSettings): KyInstance {
  return ky.create({
    prefixUrl: settings.baseUrl,
    timeout: settings.timeoutMs,
    retry: {
      limit: settings.retryLimit,
      // Only reads are retried blindly; writes have their own read-back logic.
      methods: ['get'],
      statusCodes: RETRY_STATUSES,
      afterStatusCodes: [429, 503],
      maxRetryAfter: settings.maxRetryAfterMs,
      backoffLimit: settings.backoffLimitMs,
      jitter: (delay) => delay * (0.5 + Math.random() / 2),
      shouldRetry: ({ error }) => {
        // A Retry-After past the cap is not worth waiting for: report it to the client now.
        if (error instanceof HTTPError) {
          const after = parseRetryAfter(error.response.headers.get('retry-after'));
          if (after !== undefined && after * 1000 > settings.maxRetryAfterMs) return false;
        }
        return undefined;
      },
    },
  });
}

export class FineTuneApiClient {
  constructor(
    private readonly http: KyInstance,
    private readonly apiKey: string,
  ) {}

  /** `GET /fine-tune/jobs`, with filter and page pushed down to the query string. */
  listJobs(query: ListJobsQuery): Promise<FineTuneJobRecord[]> {
    const searchParams = new URLSearchParams();
    searchParams.set('limit', String(query.limit));
    searchParams.set('offset', String(query.offset));
    for (const status of query.statuses ?? []) searchParams.append('statuses', status);
    return this.call('GET /fine-tune/jobs', 'fine-tune/jobs', fineTuneJobList, {
      method: 'get',
      searchParams,
    });
  }

  /** `GET /fine-tune/jobs/{job_id}`; null when the organization has no such job. */
  async getJob(id: string): Promise<FineTuneJobRecord | null> {
    try {
      return await this.call(
        'GET /fine-tune/jobs/{job_id}',
        `fine-tune/jobs/${encodeURIComponent(id)}`,
        fineTuneJobRecord,
        { method: 'get' },
      );
    } catch (error) {
      if (error instanceof UpstreamError && error.details.status === 404) return null;
      throw error;
    }
  }

  /**
   * `POST /fine-tune/jobs`, one attempt. Never retried here: whether a lost answer may be
   * retried is decided in job-writes.ts, which knows the id makes it safe.
   */
  createJob(request: CreateJobRequest): Promise<FineTuneJobRecord> {
    return this.call('POST /fine-tune/jobs', 'fine-tune/jobs', fineTuneJobRecord, {
      method: 'post',
      json: request,
    });
  }

  /** `PUT /fine-tune/jobs/{job_id}/stop`, one attempt (see job-writes.ts). */
  stopJob(id: string): Promise<FineTuneJobRecord> {
    return this.call(
      'PUT /fine-tune/jobs/{job_id}/stop',
      `fine-tune/jobs/${encodeURIComponent(id)}/stop`,
      fineTuneJobRecord,
      { method: 'put' },
    );
  }

  /** `PUT /fine-tune/jobs/{job_id}/cancel`, one attempt (see job-writes.ts). */
  cancelJob(id: string): Promise<FineTuneJobRecord> {
    return this.call(
      'PUT /fine-tune/jobs/{job_id}/cancel',
      `fine-tune/jobs/${encodeURIComponent(id)}/cancel`,
      fineTuneJobRecord,
      { method: 'put' },
    );
  }

  /** `GET /fine-tune/jobs/{job_id}/metrics`, with the page pushed down to the query string. */
  getJobMetrics(id: string, page: MetricsPage): Promise<FineTuneJobMetricsRecord> {
    const searchParams = new URLSearchParams();
    searchParams.set('limit', String(page.limit));
    searchParams.set('offset', String(page.offset));
    return this.call(
      'GET /fine-tune/jobs/{job_id}/metrics',
      `fine-tune/jobs/${encodeURIComponent(id)}/metrics`,
      fineTuneJobMetricsRecord,
      { method: 'get', searchParams },
    );
  }

  private async call<S extends z.ZodType>(
    operation: string,
    path: string,
    schema: S,
    options: Options,
  ): Promise<z.infer<S>> {
    let text: string;
    try {
      const response = await this.http(path, {
        ...options,
        headers: { authorization: `Bearer ${this.apiKey}`, accept: 'application/json' },
      });
      text = await response.text();
    } catch (error) {
      throw await this.failure(operation, error);
    }

    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw this.badResponse(operation, 'the upstream answered with a body that is not JSON', text);
    }
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
      rawBody: this.redact(body.slice(0, 2000)),
    });
  }

  private async failure(operation: string, error: unknown): Promise<UpstreamError> {
    if (error instanceof HTTPError) {
      const { status } = error.response;
      const rawBody = await error.response.text().catch(() => '');
      const errors = parseErrorBody(rawBody).map((e) => ({
        ...e,
        message: e.message === undefined ? undefined : this.redact(e.message),
        suggestion: e.suggestion === undefined ? undefined : this.redact(e.suggestion),
      }));
      const message = errors.find((e) => e.message)?.message ?? `HTTP ${status}`;
      return new UpstreamError('http', message, {
        operation,
        status,
        errors,
        retryAfterSeconds: parseRetryAfter(error.response.headers.get('retry-after')),
        rawBody: this.redact(rawBody.slice(0, 2000)),
      });
    }
    if (error instanceof TimeoutError) {
      return new UpstreamError('timeout', 'the upstream did not answer in time', { operation });
    }
    // fetch rejects with a TypeError whose cause names the socket error (ECONNREFUSED, …).
    const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
    const reason = typeof cause === 'string' ? cause : error instanceof Error ? error.message : 'unknown';
    return new UpstreamError('network', `the upstream could not be reached (${reason})`, { operation });
  }

  private redact(text: string): string {
    return redactSecrets(text, [this.apiKey]);
  }
}
