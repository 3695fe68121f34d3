// The fine-tune jobs REST API, one method per endpoint. Every call goes through one shared
// UpstreamHttp (timeouts, retries, a bound on concurrent requests, a circuit breaker); each client
// carries one caller's API key and request id. Responses are validated against the documented
// shapes and returned as the upstream's records.
import { setTimeout as sleep } from 'node:timers/promises';
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
import { Agent, type Dispatcher } from 'undici';
import type { z } from 'zod';
import type { GatewayMetrics } from '../metrics.js';
import { redactSecrets } from '../secrets.js';
import type { TracedRequest, UpstreamTrace } from '../upstream-trace.js';
import { UpstreamError, parseErrorBody, requestedRetryAfter } from './errors.js';
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

/** One HTTP request to the upstream. */
export interface UpstreamRequest {
  method: 'GET' | 'POST' | 'PUT';
  /** Path under the base URL, with its query string: `fine-tune/jobs?limit=5&offset=0`. */
  path: string;
  /** A JSON body. */
  json?: unknown;
}

/** The upstream answered with a status outside 2xx. */
export class UpstreamStatusError extends Error {
  constructor(
    readonly status: number,
    readonly retryAfter: string | null,
    readonly body: string,
  ) {
    super(`HTTP ${status}`);
  }
}

const RETRY_STATUSES = new Set([429, 502, 503, 504]);
// Statuses whose Retry-After is honoured (up to the cap) instead of the backoff.
const RETRY_AFTER_STATUSES = new Set([429, 503]);
const FIRST_BACKOFF_MS = 300;
const READINESS_PROBE_MS = 2_000;
/** An attempt ran past `timeoutMs` (connecting, sending, waiting for and reading the answer). */
class AttemptTimeoutError extends Error {
  readonly code = 'UPSTREAM_ATTEMPT_TIMEOUT';
}

// An attempt that took too long: ours, and undici's own (connect, headers, body) as a backstop.
const TIMEOUT_CODES = new Set([
  'UPSTREAM_ATTEMPT_TIMEOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);
// A request undici refused to build (a caller's bad header value): says nothing of the upstream.
const INVALID_REQUEST_CODES = new Set(['UND_ERR_INVALID_ARG']);

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isUpstreamTimeout(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && TIMEOUT_CODES.has(code);
}

/**
 * A failure that says the upstream is unwell: a 5xx, a timeout, a socket that failed. A 4xx is
 * the caller's problem (bad input, unknown job, rate limit for one key) and never opens the
 * circuit; neither does a request we could not even build, nor one the concurrency bound
 * refused (the breaker wraps the bound, so it sees those refusals; the upstream never did).
 */
function isUpstreamFailure(error: unknown): boolean {
  if (error instanceof UpstreamStatusError) return error.status >= 500;
  if (error instanceof BulkheadRejectedError) return false;
  const code = errorCode(error);
  return code === undefined || !INVALID_REQUEST_CODES.has(code);
}

/**
 * The HTTP layer shared by every request's client: the one place for timeouts, retries and
 * protection. Built on undici's `request` over a keep-alive pool rather than `fetch` (or ky over
 * fetch): measured on the bench, building WHATWG Request and Response objects per call cost
 * about 1 ms of CPU per call, as much as everything else a page of 50 jobs costs the gateway.
 */
export class UpstreamHttp {
  private readonly dispatcher: Agent;
  private readonly origin: string;
  private readonly basePath: string;
  private readonly breaker: CircuitBreakerPolicy;
  private readonly policy: IPolicy;

  constructor(
    private readonly settings: UpstreamSettings,
    private readonly metrics: GatewayMetrics,
    /** `onWrite`: told when a create, stop or cancel is sent, and again once it is over. */
    private readonly events: { onWrite?: () => void } = {},
  ) {
    const base = new URL(settings.baseUrl);
    this.origin = base.origin;
    this.basePath = base.pathname.replace(/\/$/, '');
    this.dispatcher = new Agent({
      keepAliveTimeout: 30_000,
      connections: 256,
      connect: { timeout: settings.timeoutMs },
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

  /**
   * Sends one call and returns its body. A GET is retried on 429, 502, 503, 504 and socket
   * failures (not on timeouts), up to `retryLimit` times, after an exponential backoff with
   * jitter or the `Retry-After` the upstream asked for (up to `maxRetryAfterMs`; a longer one
   * fails at once). Throws an UpstreamStatusError, undici's error, or the policies' rejection.
   */
  async send(
    endpoint: string,
    request: UpstreamRequest,
    caller: Caller,
    observation: CallObservation = { retries: 0, status: null },
  ): Promise<string> {
    const { metrics, settings } = this;
    const isWrite = request.method !== 'GET';
    if (isWrite) this.events.onWrite?.();
    try {
      return await this.policy.execute(async () => {
        for (let retry = 0; ; retry++) {
          caller.calls.count += 1;
          const started = performance.now();
          try {
            const { status, body } = await this.attempt(request, caller);
            metrics.upstreamRequest(endpoint, String(status), (performance.now() - started) / 1000);
            observation.status = status;
            return body;
          } catch (error) {
            const label =
              error instanceof UpstreamStatusError
                ? String(error.status)
                : isUpstreamTimeout(error)
                  ? 'timeout'
                  : 'network';
            metrics.upstreamRequest(endpoint, label, (performance.now() - started) / 1000);
            if (error instanceof UpstreamStatusError) observation.status = error.status;
            const delay =
              request.method === 'GET' && retry < settings.retryLimit
                ? this.retryDelay(error, retry)
                : undefined;
            if (delay === undefined) throw error;
            metrics.upstreamRetry(endpoint);
            observation.retries += 1;
            await sleep(delay);
          }
        }
      });
    } catch (error) {
      if (error instanceof BrokenCircuitError) metrics.upstreamRejected('circuit_open');
      else if (error instanceof BulkheadRejectedError) metrics.upstreamRejected('concurrency');
      throw error;
    } finally {
      if (isWrite) this.events.onWrite?.();
    }
  }

  /** How long to wait before retrying after `error`; undefined when it is not worth a retry. */
  private retryDelay(error: unknown, retriesSoFar: number): number | undefined {
    if (error instanceof UpstreamStatusError) {
      if (!RETRY_STATUSES.has(error.status)) return undefined;
      const after = RETRY_AFTER_STATUSES.has(error.status)
        ? requestedRetryAfter(error.retryAfter, parseErrorBody(error.body))
        : undefined;
      if (after !== undefined) {
        // A Retry-After past the cap is not worth waiting for: report it to the client now.
        return after * 1000 > this.settings.maxRetryAfterMs ? undefined : after * 1000;
      }
    } else if (isUpstreamTimeout(error) || !isUpstreamFailure(error)) {
      return undefined;
    }
    const backoff = FIRST_BACKOFF_MS * 2 ** retriesSoFar * (0.5 + Math.random() / 2);
    return Math.min(backoff, this.settings.backoffLimitMs);
  }

  /** One attempt: the status and body of a 2xx answer; an UpstreamStatusError for any other. */
  private async attempt(request: UpstreamRequest, caller: Caller): Promise<{ status: number; body: string }> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${caller.apiKey}`,
      accept: 'application/json',
      'x-request-id': caller.requestId,
    };
    let body: string | undefined;
    if (request.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(request.json);
    }
    // Our own timer: undici's timeouts tick at about one second, too coarse for this setting.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new AttemptTimeoutError()), this.settings.timeoutMs);
    let answer: Dispatcher.ResponseData;
    let text: string;
    try {
      answer = await this.dispatcher.request({
        origin: this.origin,
        path: `${this.basePath}/${request.path}`,
        method: request.method,
        headers,
        body,
        signal: abort.signal,
      });
      text = await answer.body.text();
    } finally {
      clearTimeout(timer);
    }
    const status = answer.statusCode;
    if (status >= 200 && status < 300) return { status, body: text };
    const retryAfter = answer.headers['retry-after'];
    throw new UpstreamStatusError(status, typeof retryAfter === 'string' ? retryAfter : null, text);
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
    return this.call(
      'GET /fine-tune/jobs',
      fineTuneJobList,
      { method: 'GET', path: `fine-tune/jobs?${listJobsParams(query)}` },
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
   * retried is decided in job-writes.ts, which knows the id makes it safe.
   */
  createJob(request: CreateJobRequest): Promise<FineTuneJobRecord> {
    return this.call(
      'POST /fine-tune/jobs',
      fineTuneJobRecord,
      { method: 'POST', path: 'fine-tune/jobs', json: request },
      isFineTuneJobRecord,
    );
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
      fineTuneJobRecord,
      { method: 'PUT', path: `fine-tune/jobs/${encodeURIComponent(id)}/${action}` },
      isFineTuneJobRecord,
    );
  }

  /** `GET /fine-tune/jobs/{job_id}/metrics`, with the page pushed down to the query string. */
  getJobMetrics(id: string, page: MetricsPage): Promise<FineTuneJobMetricsRecord> {
    return this.call('GET /fine-tune/jobs/{job_id}/metrics', fineTuneJobMetricsRecord, {
      method: 'GET',
      path: `fine-tune/jobs/${encodeURIComponent(id)}/metrics?${metricsParams(page)}`,
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
    const started = performance.now();
    const observation: CallObservation = { retries: 0, status: null };
    try {
      text = await this.http.send(operation, request, this.caller, observation);
    } catch (error) {
      throw this.failure(operation, error);
    } finally {
      this.trace?.call(
        { method: request.method, path: `/${request.path}` },
        { ...observation, durationMs: Math.round(performance.now() - started) },
      );
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

  private failure(operation: string, error: unknown): UpstreamError {
    if (error instanceof UpstreamStatusError) {
      const { status, body: rawBody } = error;
      const reported = parseErrorBody(rawBody);
      const errors = reported.map((e) => ({
        ...e,
        message: e.message === undefined ? undefined : this.redact(e.message),
        suggestion: e.suggestion === undefined ? undefined : this.redact(e.suggestion),
      }));
      const message = errors.find((e) => e.message)?.message ?? `HTTP ${status}`;
      return new UpstreamError('http', message, {
        operation,
        status,
        errors,
        retryAfterSeconds: requestedRetryAfter(error.retryAfter, reported),
        rawBody: this.redact(rawBody).slice(0, 2000),
      });
    }
    if (isUpstreamTimeout(error)) {
      return new UpstreamError('timeout', 'the upstream did not answer in time', { operation });
    }
    if (error instanceof BrokenCircuitError) {
      return new UpstreamError('circuit-open', 'the upstream is failing; calls are paused', { operation });
    }
    if (error instanceof BulkheadRejectedError) {
      return new UpstreamError('overloaded', 'too many calls to the upstream are waiting', { operation });
    }
    // undici names the socket error in its code (ECONNREFUSED, UND_ERR_SOCKET, …).
    const reason = errorCode(error) ?? (error instanceof Error ? error.message : 'unknown');
    return new UpstreamError('network', `the upstream could not be reached (${this.redact(reason)})`, {
      operation,
    });
  }

  private redact(text: string): string {
    return redactSecrets(text, [this.caller.apiKey]);
  }
}
