// The fine-tune jobs REST API, one method per endpoint. Every call goes through one shared
// UpstreamHttp (timeouts, retries, a bound on concurrent requests, a circuit breaker); each client
// carries one caller's API key and request id. Responses are validated against the documented
// shapes and returned as the upstream's records.
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  CircuitState,
  SamplingBreaker,
  bulkhead,
  circuitBreaker,
  handleWhen,
  wrap,
  type CircuitBreakerPolicy,
  type IPolicy,
} from 'cockatiel';
import ky, { HTTPError, TimeoutError, type KyInstance, type Options } from 'ky';
import type { z } from 'zod';
import type { GatewayMetrics } from '../metrics.js';
import { redactSecrets } from '../secrets.js';
import type { TracedRequest, UpstreamTrace } from '../upstream-trace.js';
import { UpstreamError, parseErrorBody, parseRetryAfter } from './errors.js';
import { createUpstreamFetch } from './fetch.js';
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
  /** Calls to the upstream in flight at once, across all clients of the gateway. */
  maxConcurrency: number;
  /** Calls waiting for a free slot; past this, a call fails at once. */
  maxQueue: number;
  /** The share of failed calls (5xx, timeout, unreachable) in the window that opens the circuit. */
  breakerFailureRate: number;
  /** The sliding window over which calls are counted. */
  breakerWindowMs: number;
  /** The fewest calls in the window for the circuit to open: a quiet gateway never trips on one failure. */
  breakerMinCalls: number;
  /** How long the circuit stays open before one call probes the upstream again. */
  breakerHalfOpenMs: number;
}

/** Whose call this is: the key it carries, the request id sent along, and a tally for the log. */
export interface Caller {
  apiKey: string;
  requestId: string;
  /** Counts the HTTP requests (retries included) this operation sent upstream. */
  calls: { count: number };
  /** Where this operation's calls are recorded for `extensions.upstream`, when tracing is on. */
  trace?: UpstreamTrace;
}

/** What one call's attempts came to, for the upstream trace. */
export interface CallObservation {
  /** Attempts after the first. */
  retries: number;
  /** The HTTP status of the last attempt that got one. */
  status: number | null;
}

export type Readiness = { ready: true; upstream: 'reachable' } | { ready: false; upstream: string };

const RETRY_STATUSES = [429, 502, 503, 504];
const READINESS_PROBE_MS = 2_000;

/**
 * A failure that says the upstream is unwell. A 4xx is the caller's problem (bad input, unknown
 * job, rate limit for one key) and never opens the circuit.
 */
function isUpstreamFailure(error: unknown): boolean {
  if (error instanceof HTTPError) return error.response.status >= 500;
  if (error instanceof TimeoutError) return true;
  // fetch reports a socket failure as a TypeError with a cause; a TypeError without one is a
  // request we could not even build (a caller's bad header value), not the upstream's health.
  return error instanceof TypeError && error.cause !== undefined;
}

/** The HTTP layer shared by every request's client: the one place for timeouts, retries and protection. */
export class UpstreamHttp {
  private readonly ky: KyInstance;
  private readonly breaker: CircuitBreakerPolicy;
  private readonly policy: IPolicy;

  constructor(
    private readonly settings: UpstreamSettings,
    private readonly metrics: GatewayMetrics,
  ) {
    this.ky = ky.create({
      prefixUrl: settings.baseUrl,
      fetch: createUpstreamFetch(),
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
    this.breaker = circuitBreaker(handleWhen(isUpstreamFailure), {
      halfOpenAfter: settings.breakerHalfOpenMs,
      // A failure rate rather than a run of failures: under concurrency, timeouts of requests sent
      // together arrive together, and a run of them says little about the upstream's health.
      breaker: new SamplingBreaker({
        threshold: settings.breakerFailureRate,
        duration: settings.breakerWindowMs,
        minimumRps: settings.breakerMinCalls / (settings.breakerWindowMs / 1000),
      }),
    });
    this.breaker.onStateChange((state) =>
      metrics.circuit(
        state === CircuitState.Open || state === CircuitState.Isolated
          ? 'open'
          : state === CircuitState.HalfOpen
            ? 'half-open'
            : 'closed',
      ),
    );
    // The breaker first: while it is open, a call neither waits in the queue nor reaches the upstream.
    this.policy = wrap(this.breaker, bulkhead(settings.maxConcurrency, settings.maxQueue));
  }

  get circuitOpen(): boolean {
    return this.breaker.state === CircuitState.Open || this.breaker.state === CircuitState.Isolated;
  }

  /** Sends one call (retries included) and returns its body; throws what ky or the policies threw. */
  async send(
    endpoint: string,
    path: string,
    options: Options,
    caller: Caller,
    observation?: CallObservation,
  ): Promise<string> {
    const { metrics } = this;
    let started = 0;
    // Each attempt is measured here and in beforeRetry, not in an afterResponse hook: ky tees the
    // body of every response it hands to one, and an aborted tee can reject where nobody listens.
    const attemptEnded = (outcome: unknown) => {
      const status =
        outcome instanceof Response
          ? String(outcome.status)
          : outcome instanceof HTTPError
            ? String(outcome.response.status)
            : outcome instanceof TimeoutError
              ? 'timeout'
              : 'network';
      metrics.upstreamRequest(endpoint, status, (performance.now() - started) / 1000);
    };
    try {
      return await this.policy.execute(async () => {
        const response = await this.ky(path, {
          ...options,
          headers: {
            authorization: `Bearer ${caller.apiKey}`,
            accept: 'application/json',
            'x-request-id': caller.requestId,
          },
          hooks: {
            beforeRequest: [
              () => {
                caller.calls.count += 1;
                started = performance.now();
              },
            ],
            beforeRetry: [
              ({ error }) => {
                attemptEnded(error);
                metrics.upstreamRetry(endpoint);
                if (observation) observation.retries += 1;
              },
            ],
          },
        });
        attemptEnded(response);
        if (observation) observation.status = response.status;
        return response.text();
      });
    } catch (error) {
      if (error instanceof BrokenCircuitError) metrics.upstreamRejected('circuit_open');
      else if (error instanceof BulkheadRejectedError) metrics.upstreamRejected('concurrency');
      else if (started > 0) attemptEnded(error);
      throw error;
    }
  }

  /**
   * Whether the upstream answers at all: any HTTP answer below 500 to its base URL counts (it
   * needs no key). Never goes through the breaker, so it can see a recovery first.
   */
  async readiness(): Promise<Readiness> {
    if (this.circuitOpen) return { ready: false, upstream: 'circuit open' };
    try {
      const response = await fetch(`${this.settings.baseUrl}/`, {
        signal: AbortSignal.timeout(Math.min(this.settings.timeoutMs, READINESS_PROBE_MS)),
      });
      await response.body?.cancel();
      if (response.status >= 500) return { ready: false, upstream: `unavailable (${response.status})` };
      return { ready: true, upstream: 'reachable' };
    } catch (error) {
      const timedOut = error instanceof Error && error.name === 'TimeoutError';
      return { ready: false, upstream: timedOut ? 'unreachable (timeout)' : 'unreachable' };
    }
  }
}

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

/** The reads as the upstream trace shows them, for loads answered without a call. */
export const upstreamReads = {
  listJobs: (query: ListJobsQuery): TracedRequest => ({
    method: 'GET',
    path: `/fine-tune/jobs?${listJobsParams(query)}`,
  }),
  getJob: (id: string): TracedRequest => ({
    method: 'GET',
    path: `/fine-tune/jobs/${encodeURIComponent(id)}`,
  }),
  getJobMetrics: (id: string, page: MetricsPage): TracedRequest => ({
    method: 'GET',
    path: `/fine-tune/jobs/${encodeURIComponent(id)}/metrics?${metricsParams(page)}`,
  }),
};

export class FineTuneApiClient {
  constructor(
    private readonly http: UpstreamHttp,
    private readonly caller: Caller,
  ) {}

  /** Where this operation's calls are recorded, when tracing is on. */
  get trace(): UpstreamTrace | undefined {
    return this.caller.trace;
  }

  /** `GET /fine-tune/jobs`, with filter and page pushed down to the query string. */
  listJobs(query: ListJobsQuery): Promise<FineTuneJobRecord[]> {
    const searchParams = listJobsParams(query);
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
    return this.putJobAction(id, 'stop');
  }

  /** `PUT /fine-tune/jobs/{job_id}/cancel`, one attempt (see job-writes.ts). */
  cancelJob(id: string): Promise<FineTuneJobRecord> {
    return this.putJobAction(id, 'cancel');
  }

  private putJobAction(id: string, action: 'stop' | 'cancel'): Promise<FineTuneJobRecord> {
    return this.call(
      `PUT /fine-tune/jobs/{job_id}/${action}`,
      `fine-tune/jobs/${encodeURIComponent(id)}/${action}`,
      fineTuneJobRecord,
      { method: 'put' },
    );
  }

  /** `GET /fine-tune/jobs/{job_id}/metrics`, with the page pushed down to the query string. */
  getJobMetrics(id: string, page: MetricsPage): Promise<FineTuneJobMetricsRecord> {
    const searchParams = metricsParams(page);
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
    const started = performance.now();
    const observation: CallObservation = { retries: 0, status: null };
    try {
      text = await this.http.send(operation, path, options, this.caller, observation);
    } catch (error) {
      if (error instanceof HTTPError) observation.status = error.response.status;
      throw await this.failure(operation, error);
    } finally {
      if (this.trace) {
        const search = options.searchParams ? `?${String(options.searchParams)}` : '';
        this.trace.call(
          { method: (options.method ?? 'get').toUpperCase(), path: `/${path}${search}` },
          { ...observation, durationMs: Math.round(performance.now() - started) },
        );
      }
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
    if (error instanceof BrokenCircuitError) {
      return new UpstreamError('circuit-open', 'the upstream is failing; calls are paused', { operation });
    }
    if (error instanceof BulkheadRejectedError) {
      return new UpstreamError('overloaded', 'too many calls to the upstream are waiting', { operation });
    }
    // fetch rejects with a TypeError whose cause names the socket error (ECONNREFUSED, …).
    const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
    const reason = typeof cause === 'string' ? cause : error instanceof Error ? error.message : 'unknown';
    return new UpstreamError('network', `the upstream could not be reached (${this.redact(reason)})`, {
      operation,
    });
  }

  private redact(text: string): string {
    return redactSecrets(text, [this.caller.apiKey]);
  }
}
