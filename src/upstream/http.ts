// The HTTP layer every request's client shares: one ky instance over a keep-alive pool, with the
// timeout and the retries of reads (as src/upstream/retry-policy.ts says); for each attempt, a
// slot of the bound on concurrent requests and a sample of the circuit breaker (cockatiel). Each
// call carries its caller (key, request id) in ky's `context`, which the hooks read, and tells the
// caller's recorder of its attempts and its end (src/upstream/recorder.ts): budgets, traces and
// spans listen from above.
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  CircuitState,
  ConsecutiveBreaker,
  SamplingBreaker,
  bulkhead,
  circuitBreaker,
  handleWhen,
  type BulkheadPolicy,
  type CircuitBreakerPolicy,
  type IBreaker,
} from 'cockatiel';
import ky, { HTTPError, type KyInstance, type Options, type RetryOptions } from 'ky';
import { Agent } from 'undici';
import type { UpstreamSettings } from '../config.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { UnexpectedStatusError, bufferedFetch } from './buffered-fetch.js';
import { errorCode, isUpstreamTimeout, parseErrorBody } from './errors.js';
import type { UpstreamCallListener, UpstreamRecorder } from './recorder.js';
import { RetryPolicy, requestedDelayMs, type FailedAttempt } from './retry-policy.js';

/** The upstream's settings (the file's `upstream` section) and where it is. */
export interface UpstreamHttpSettings extends UpstreamSettings {
  /** Base URL including the version, e.g. `https://api.u1.archetypeai.app/v0.5`. */
  baseUrl: string;
}

/** Whose call this is: the key it carries, the request id sent along, and who is told of it. */
export interface Caller {
  apiKey: string;
  requestId: string;
  /** Told of each call before it is sent, of its attempts and of its end. */
  recorder: UpstreamRecorder;
}

export type Readiness = { ready: true; upstream: 'reachable' } | { ready: false; upstream: string };

/** One call to the upstream: a path under the base URL, its query and JSON body. */
export interface UpstreamRequest {
  method: 'GET' | 'POST' | 'PUT';
  /** Path under the base URL, no leading slash: `fine-tune/jobs`. */
  path: string;
  searchParams?: URLSearchParams;
  json?: unknown;
}

/** What the hooks and the fetch read from ky's `context`. */
interface CallContext {
  caller: Caller;
  listener: UpstreamCallListener;
  /**
   * The call's tally. An object of its own: ky hands the hooks a copy of `context`, so only
   * what it points to is shared with `send`.
   */
  tally: CallTally;
}

interface CallTally {
  /** Attempts sent, and how the last one ended (a status, `timeout` or `network`). */
  attempts: number;
  retries: number;
  /** The HTTP status of the last attempt that got one. */
  status: number | null;
  lastOutcome?: string;
}

/** An attempt ky is about to send: its call, and the release of the slot it holds. */
interface Attempt {
  call: CallContext;
  release(): void;
}

/** ky copies `context` into every hook's options: the call the gateway passed in `send`. */
function callOf(options: { context: Record<string, unknown> }): CallContext {
  return options.context as unknown as CallContext;
}

/** A 5xx answer, thrown inside the breaker so that it counts as a failed attempt. */
class FailedStatus extends Error {
  constructor(readonly response: Response) {
    super(`HTTP ${response.status}`);
  }
}

/**
 * Opens the circuit when any of its breakers would: each sees every attempt, so each keeps its
 * own count whichever opened it.
 */
class AnyBreaker implements IBreaker {
  constructor(private readonly breakers: readonly IBreaker[]) {}

  get state(): unknown {
    return this.breakers.map((breaker) => breaker.state);
  }

  set state(value: unknown) {
    (value as unknown[]).forEach((state, i) => (this.breakers[i]!.state = state));
  }

  success(state: CircuitState): void {
    for (const breaker of this.breakers) breaker.success(state);
  }

  failure(state: CircuitState): boolean {
    return this.breakers.map((breaker) => breaker.failure(state)).includes(true);
  }
}

/** How long a readiness answer is reused: a flood of probes is one upstream call a second. */
const READINESS_REUSE_MS = 1_000;

/** The caller's recorder refused the call before it was sent; `reason` is what it threw. */
export class CallRefused extends Error {
  override readonly name = 'CallRefused';

  constructor(readonly reason: unknown) {
    super('the call was refused before it was sent');
  }
}

/** The gateway is stopping: no new attempt is sent (a retry waiting for its delay included). */
export class UpstreamClosedError extends Error {
  override readonly name = 'UpstreamClosedError';

  constructor() {
    super('the gateway is stopping');
  }
}

const READINESS_PROBE_MS = 2_000;

// A request undici refused to build (a caller's bad header value): says nothing of the upstream.
const INVALID_REQUEST_CODES = new Set(['UND_ERR_INVALID_ARG']);

/**
 * A failure that says the upstream is unwell: a 5xx, a timeout, a socket that failed. A 4xx is
 * the caller's problem (bad input, unknown job, rate limit for one key) and never opens the
 * circuit; neither does a request we could not even build, nor one the concurrency bound
 * refused (the upstream never saw it).
 */
function isUpstreamFailure(error: unknown): boolean {
  if (error instanceof FailedStatus) return true;
  if (error instanceof HTTPError) return error.response.status >= 500;
  if (error instanceof BulkheadRejectedError || error instanceof UpstreamClosedError) return false;
  const code = errorCode(error);
  return code === undefined || !INVALID_REQUEST_CODES.has(code);
}

/** A failed call's type: the last attempt's status or failure, or why none was sent. */
function failureType(error: unknown, tally: CallTally): string {
  if (error instanceof BrokenCircuitError) return 'circuit_open';
  if (error instanceof BulkheadRejectedError) return 'concurrency_limit';
  if (error instanceof UpstreamClosedError) return 'gateway_stopping';
  return tally.lastOutcome ?? (error instanceof Error ? error.name : 'unknown');
}

export class UpstreamHttp {
  private readonly dispatcher: Agent;
  private readonly probeDispatcher: Agent;
  /** The readiness probe in flight, which concurrent probes share, and the last answer. */
  private probing: Promise<Readiness> | undefined;
  private lastReadiness: { at: number; value: Readiness } | undefined;
  private readonly api: KyInstance;
  private readonly probe: KyInstance;
  private readonly breaker: CircuitBreakerPolicy;
  /** The breaker's run of failed attempts: the retries stop while it is long. */
  private readonly failedInARow: ConsecutiveBreaker;
  private readonly slots: BulkheadPolicy;
  /** Each attempt, by the Request ky hands to fetch (ky makes a Request per attempt). */
  private readonly attempts = new WeakMap<Request, Attempt>();
  private closed = false;
  /** When a call is retried and after how long: reads here, writes in their own loop. */
  readonly retryPolicy: RetryPolicy;

  constructor(
    private readonly settings: UpstreamHttpSettings,
    private readonly metrics: GatewayMetrics,
    /**
     * `onWrite`: told when a create, stop or cancel is sent, and again once it is over, with the
     * writer's key; the write's answer waits for what the second call returns (the fleet's
     * invalidation, REDIS_URL).
     */
    private readonly events: { onWrite?: (apiKey: string) => void | Promise<void> } = {},
  ) {
    this.dispatcher = new Agent({
      keepAliveTimeout: 30_000,
      connections: 256,
      connect: { timeout: settings.timeoutMs },
    });
    const send = bufferedFetch(this.dispatcher);
    this.failedInARow = new ConsecutiveBreaker(settings.breaker.failuresInARow);
    this.retryPolicy = new RetryPolicy(settings, () => this.failedInARow.state);
    this.slots = bulkhead(settings.maxConcurrency, settings.maxQueue);
    this.breaker = circuitBreaker(handleWhen(isUpstreamFailure), {
      halfOpenAfter: settings.breaker.halfOpenMs,
      // A run of failed attempts, or the failure rate over the window, whichever comes first: the
      // rate alone stays under its threshold for a while after a healthy period fills the window,
      // while every call fails.
      breaker: new AnyBreaker([
        this.failedInARow,
        new SamplingBreaker({
          threshold: settings.breaker.failureRate,
          duration: settings.breaker.windowMs,
          minimumRps: settings.breaker.minCalls / (settings.breaker.windowMs / 1000),
        }),
      ]),
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

    const prefixUrl = `${settings.baseUrl.replace(/\/+$/, '')}/`;
    this.api = ky.create({
      prefixUrl,
      headers: { accept: 'application/json' },
      // Per attempt, from sending it (its slot taken) to the end of its body (buffered-fetch.ts).
      timeout: settings.timeoutMs,
      // Each call brings its own `retry` (see `send`).
      fetch: async (input) => {
        const request = input as Request;
        const attempt = this.attempts.get(request);
        if (attempt === undefined) throw new Error('an upstream attempt without its slot');
        const { call } = attempt;
        const started = performance.now();
        try {
          const response = await this.sampled(() => send(request));
          this.attempted(call, String(response.status), started, response.status);
          return response;
        } catch (error) {
          // The open circuit refused it: nothing was sent, so it is no attempt of the upstream.
          if (error instanceof BrokenCircuitError) {
            // nothing to tell
          } else if (error instanceof UnexpectedStatusError) {
            this.attempted(call, String(error.status), started, error.status);
          } else {
            const label = request.signal.aborted || isUpstreamTimeout(error) ? 'timeout' : 'network';
            this.attempted(call, label, started, null);
          }
          throw error;
        } finally {
          attempt.release();
        }
      },
      hooks: {
        beforeRequest: [
          // The slot is taken here, before ky starts the attempt's timer: waiting for a slot is
          // not the upstream's slowness, and a retry waits for its delay outside any slot.
          async (request, options) => {
            if (this.closed) throw new UpstreamClosedError();
            const call = callOf(options);
            request.headers.set('authorization', `Bearer ${call.caller.apiKey}`);
            request.headers.set('x-request-id', call.caller.requestId);
            for (const [name, value] of Object.entries(call.listener.headers ?? {}))
              request.headers.set(name, value);
            const release = await this.slot();
            // ky aborts an attempt it gave up on: its slot is free at once.
            request.signal.addEventListener('abort', release, { once: true });
            this.attempts.set(request, { call, release });
          },
        ],
        beforeRetry: [
          ({ options }) => {
            const call = callOf(options);
            call.tally.retries += 1;
            call.listener.retrying();
          },
        ],
      },
    });
    // Readiness: no key, no retries; the breaker and the bound as for any call, on a pool of its
    // own, so that probes never take a connection from the traffic.
    this.probeDispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 2 });
    const sendProbe = bufferedFetch(this.probeDispatcher);
    this.probe = ky.create({
      prefixUrl,
      retry: 0,
      throwHttpErrors: false,
      timeout: Math.min(settings.timeoutMs, READINESS_PROBE_MS),
      fetch: (input) => sendProbe(input as Request),
    });
  }

  get circuitOpen(): boolean {
    return this.breaker.state === CircuitState.Open || this.breaker.state === CircuitState.Isolated;
  }

  /**
   * Sends one call and returns its body. A GET is retried as the retry policy says (429, 502,
   * 503, 504 and failed sockets; after the backoff or the delay the upstream asked for). Throws
   * ky's HTTPError or TimeoutError, undici's error, or the policies'.
   */
  async send(endpoint: string, request: UpstreamRequest, caller: Caller): Promise<string> {
    const search = request.searchParams ? `?${request.searchParams}` : '';
    // The recorder may refuse the call (an operation past its budget): then nothing is sent.
    let listener: UpstreamCallListener;
    try {
      listener = caller.recorder.callStarting({
        endpoint,
        method: request.method,
        path: `/${request.path}${search}`,
      });
    } catch (reason) {
      throw new CallRefused(reason);
    }
    const isWrite = request.method !== 'GET';
    if (isWrite) void this.events.onWrite?.(caller.apiKey);
    const tally: CallTally = { attempts: 0, retries: 0, status: null };
    const context: CallContext = { caller, listener, tally };
    const options: Options = {
      method: request.method,
      context: context as unknown as Record<string, unknown>,
      retry: this.readRetry(),
      ...(request.searchParams && { searchParams: request.searchParams }),
      ...(request.json !== undefined && { json: request.json }),
    };
    const started = performance.now();
    let failure: string | undefined;
    try {
      return await (await this.api(request.path, options)).text();
    } catch (error) {
      failure = failureType(error, tally);
      throw error;
    } finally {
      if (isWrite) await this.events.onWrite?.(caller.apiKey);
      listener.ended({
        status: tally.status,
        retries: tally.retries,
        attempts: tally.attempts,
        durationMs: performance.now() - started,
        ...(failure !== undefined && { failure }),
      });
    }
  }

  /**
   * ky's `retry` for one call: the policy decides each retry and its delay, so ky reads no delay
   * header of its own. Writes are sent once here (job-writes.ts retries them).
   */
  private readRetry(): RetryOptions {
    let nextDelayMs = 0;
    return {
      limit: this.settings.retries,
      methods: ['get'],
      shouldRetry: async ({ error, retryCount }) => {
        const delay = await this.retryDelay(error, retryCount);
        if (delay === undefined) return false;
        nextDelayMs = delay;
        return true;
      },
      delay: () => nextDelayMs,
    };
  }

  /**
   * The wait before retry `retry` of a read, or undefined for none: not while stopping or once
   * the circuit is open, not for a refusal of the bound or a request that cannot be built, and
   * otherwise as the retry policy says.
   */
  private async retryDelay(error: Error, retry: number): Promise<number | undefined> {
    if (this.closed || error instanceof BrokenCircuitError) return undefined;
    const policy = this.retryPolicy;
    let failure: FailedAttempt;
    if (error instanceof HTTPError) {
      const { status, headers } = error.response;
      // The body is read for a delay only when the status may be retried at all.
      if (!policy.retriesRead({ status })) return undefined;
      const errors = parseErrorBody(await error.response.text());
      failure = { status, retryAfterMs: requestedDelayMs(headers.get('retry-after'), errors) };
    } else if (isUpstreamTimeout(error)) failure = 'timeout';
    else if (error instanceof UnexpectedStatusError || !isUpstreamFailure(error)) return undefined;
    else failure = 'network';
    return policy.retriesRead(failure) ? policy.delayMs(failure, retry) : undefined;
  }

  /**
   * One attempt as a sample of the circuit breaker: every attempt counts, retries included, so
   * the circuit opens against a dead upstream at any traffic, even one client at a time. A 5xx
   * is a failure; the Response is handed on to ky as it came.
   */
  private async sampled(attempt: () => Promise<Response>): Promise<Response> {
    try {
      return await this.breaker.execute(async () => {
        const response = await attempt();
        if (response.status >= 500) throw new FailedStatus(response);
        return response;
      });
    } catch (error) {
      if (error instanceof FailedStatus) return error.response;
      throw error;
    }
  }

  /** A slot of the concurrency bound, held until the returned release is called. */
  private slot(): Promise<() => void> {
    return new Promise((resolve, reject) => {
      this.slots
        .execute(
          () =>
            new Promise<void>((released) => {
              let done = false;
              resolve(() => {
                if (done) return;
                done = true;
                released();
              });
            }),
        )
        .catch(reject);
    });
  }

  private attempted(call: CallContext, outcome: string, started: number, status: number | null): void {
    const { tally } = call;
    tally.attempts += 1;
    tally.lastOutcome = outcome;
    if (status !== null) tally.status = status;
    call.listener.attempted({
      number: tally.attempts,
      outcome,
      status,
      durationMs: performance.now() - started,
    });
  }

  /**
   * Whether the upstream answers at all: any HTTP answer below 500 to its base URL counts (it
   * needs no key). The probe takes a slot and is a sample of the breaker like any attempt;
   * concurrent probes share one, and an answer is reused for a second.
   */
  readiness(): Promise<Readiness> {
    const last = this.lastReadiness;
    if (last !== undefined && performance.now() - last.at < READINESS_REUSE_MS)
      return Promise.resolve(last.value);
    this.probing ??= this.probeUpstream()
      .then((value) => {
        this.lastReadiness = { at: performance.now(), value };
        return value;
      })
      .finally(() => (this.probing = undefined));
    return this.probing;
  }

  private async probeUpstream(): Promise<Readiness> {
    let release: (() => void) | undefined;
    try {
      release = await this.slot();
      const response = await this.sampled(() => this.probe.get(''));
      if (response.status >= 500) return { ready: false, upstream: `unavailable (${response.status})` };
      return { ready: true, upstream: 'reachable' };
    } catch (error) {
      if (error instanceof BrokenCircuitError) return { ready: false, upstream: 'circuit open' };
      if (error instanceof BulkheadRejectedError) return { ready: false, upstream: 'overloaded' };
      return { ready: false, upstream: isUpstreamTimeout(error) ? 'unreachable (timeout)' : 'unreachable' };
    } finally {
      release?.();
    }
  }

  /**
   * Closes the pooled connections, cutting calls still in flight (the gateway has stopped); a
   * retry waiting for its delay sends nothing more.
   */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([this.dispatcher.destroy(), this.probeDispatcher.destroy()]);
  }
}
