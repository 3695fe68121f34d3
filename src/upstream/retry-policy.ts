// The one retry policy of calls to the upstream: which failures a retry may fix, for a read and
// for a write; how long to wait before each retry (an exponential backoff with jitter, or the
// delay the upstream asked for, up to a cap); how many retries. Reads follow it through ky's
// `retry` (src/upstream/http.ts), writes through their own loop, which reads the job back
// between attempts (src/fine-tune-jobs/job-writes.ts).
import type { UpstreamSettings } from '../config.js';

/** What the policy reads of the upstream's settings (retries, the longest Retry-After, the backoff's bound). */
export type RetrySettings = Pick<UpstreamSettings, 'retries' | 'maxRetryAfterMs' | 'backoffLimitMs'>;

/** How an attempt failed, as far as retrying goes. */
export type FailedAttempt =
  /** An error status, and the delay the answer asked for (`requestedDelayMs`). */
  | { status: number; retryAfterMs?: number }
  /** No answer in time. */
  | 'timeout'
  /** The socket failed: refused, reset or dropped. */
  | 'network';

const FIRST_BACKOFF_MS = 300;
/** A retry may fix these: rate limited, or a proxy in front of the API failed. */
const RETRY_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);
/** Statuses whose asked-for delay is honoured (up to the cap) instead of the backoff. */
const RETRY_AFTER_STATUSES: ReadonlySet<number> = new Set([429, 503]);
/** From a proxy in front of the API: the request may or may not have been handled. */
const LOST_ANSWER_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);

/**
 * The delay the upstream asked for, in milliseconds: its `Retry-After` header (delay-seconds,
 * fractions kept, or an HTTP date), or else a `retry_after` in its error body (the older
 * envelope's `details`). No other header (`RateLimit-Reset`, …) is read: the cap applies to every
 * delay the gateway waits for.
 */
export function requestedDelayMs(
  header: string | null,
  errors: readonly { retryAfterSeconds?: number }[] = [],
  now = Date.now(),
): number | undefined {
  if (header !== null && header.trim() !== '') {
    const seconds = Number(header);
    if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
    const date = Date.parse(header);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }
  const seconds = errors.find((e) => e.retryAfterSeconds !== undefined)?.retryAfterSeconds;
  return seconds === undefined ? undefined : seconds * 1000;
}

export class RetryPolicy {
  constructor(
    private readonly settings: RetrySettings,
    /** Failed attempts in a row, across all calls, so far (the breaker's run). */
    private readonly failedInARow: () => number = () => 0,
  ) {}

  /** Attempts of one call at most, the first one included. */
  get attempts(): number {
    return 1 + this.settings.retries;
  }

  /**
   * A read is retried after a 429, 502, 503 or 504, or a failed socket; not after a timeout
   * (the upstream is slow, and a retry would add to its load).
   */
  retriesRead(failure: FailedAttempt): boolean {
    if (failure === 'timeout') return false;
    return failure === 'network' || RETRY_STATUSES.has(failure.status);
  }

  /**
   * A write is retried only when its answer was lost (a timeout, a failed socket, a 502, 503 or
   * 504 from a proxy): it may or may not have been handled, which the writer finds out.
   */
  answerWasLost(failure: FailedAttempt): boolean {
    return typeof failure === 'string' || LOST_ANSWER_STATUSES.has(failure.status);
  }

  /**
   * The wait before retry `retry` (1 for the first) after `failure`: the delay a 429 or 503
   * asked for, or else the backoff. Undefined when there is no retry: past the limit, a delay
   * asked for past the cap, or while the upstream is failing: once as many attempts in a row
   * have failed as one call may send, across all calls, a retry (a read's or a write's) would
   * only add to its load until an attempt succeeds.
   */
  delayMs(failure: FailedAttempt, retry: number): number | undefined {
    if (retry > this.settings.retries || this.failedInARow() > this.settings.retries) return undefined;
    const asked =
      typeof failure === 'object' && RETRY_AFTER_STATUSES.has(failure.status)
        ? failure.retryAfterMs
        : undefined;
    if (asked !== undefined) return asked > this.settings.maxRetryAfterMs ? undefined : asked;
    // Jittered below the ceiling, so that callers failed by the same fault do not retry together.
    const ceiling = Math.min(this.settings.backoffLimitMs, FIRST_BACKOFF_MS * 2 ** (retry - 1));
    return ceiling * (0.5 + Math.random() / 2);
  }
}
