// What went wrong on a call to the upstream API, in the upstream's own terms: ky's HTTPError and
// TimeoutError, the socket's error, the policies' refusals, read into one UpstreamError, and the
// one translation of such a failure to the GraphQL code and extensions a client sees.
import { BrokenCircuitError, BulkheadRejectedError } from 'cockatiel';
import { HTTPError, TimeoutError } from 'ky';
import { DescribedFailure, ErrorCode, type DescribedError } from '../errors.js';
import { redactSecrets } from '../observability/secrets.js';
import { UnexpectedStatusError } from './buffered-fetch.js';
import { requestedDelayMs, type FailedAttempt } from './retry-policy.js';

export type UpstreamFailureKind =
  | 'http' // the upstream answered with an error status
  | 'timeout' // no answer within the configured time
  | 'network' // connection refused, reset or dropped
  | 'bad-response' // a success status with a body that is not JSON or not the documented shape
  | 'circuit-open' // not sent: the circuit breaker is open after repeated upstream failures
  | 'overloaded'; // not sent: too many calls already in flight and waiting

/** One error as the upstream reported it, whatever envelope it came in. */
export interface UpstreamErrorDetail {
  code?: string;
  message?: string;
  suggestion?: string;
  errorUid?: string;
  /** The input field the error is about (older envelope: `details.field`). */
  field?: string;
  /** How long to wait before trying again (older envelope: `details.retry_after`, seconds). */
  retryAfterSeconds?: number;
}

export class UpstreamError extends DescribedFailure {
  override readonly name = 'UpstreamError';

  constructor(
    readonly kind: UpstreamFailureKind,
    message: string,
    readonly details: {
      /** `GET /fine-tune/jobs/…`: which call failed. */
      operation: string;
      status?: number;
      errors?: UpstreamErrorDetail[];
      /** The delay the upstream asked for (`requestedDelayMs`), when it asked for one. */
      retryAfterMs?: number;
      /** The body, scrubbed of credentials, kept for the log only. */
      rawBody?: string;
      /**
       * For a failed create: the id the gateway gave the job. Retrying with it is safe (a job
       * that did land is found, not duplicated), so the client is told it.
       */
      jobId?: string;
    },
  ) {
    super(message);
  }

  /** This failure as the retry policy reads it; undefined for one that no retry can fix. */
  get attempt(): FailedAttempt | undefined {
    if (this.kind === 'timeout' || this.kind === 'network') return this.kind;
    if (this.kind !== 'http') return undefined;
    return { status: this.details.status ?? 0, retryAfterMs: this.details.retryAfterMs };
  }

  /** The code and client-facing extensions of this failure. */
  describe(): DescribedError {
    const described = describeFailure(this);
    const { jobId } = this.details;
    if (jobId !== undefined) described.extensions = { ...described.extensions, jobId };
    return described;
  }
}

function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * Reads an error body in any of the provider's envelopes: current (`errors` array), legacy
 * (`detail`), older (`error` object). Returns an empty list for anything else, including a
 * body that is not JSON: the caller keeps the raw text for the log.
 */
export function parseErrorBody(text: string): UpstreamErrorDetail[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return [];
  }
  if (typeof body !== 'object' || body === null) return [];
  const record = body as Record<string, unknown>;

  if (Array.isArray(record.errors)) {
    return record.errors
      .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null)
      .map((e) => ({
        code: asString(e.code),
        message: asString(e.message),
        suggestion: asString(e.suggestion),
        errorUid: asString(e.error_uid),
      }));
  }
  if (typeof record.detail === 'string') {
    return [{ message: record.detail }];
  }
  if (typeof record.error === 'object' && record.error !== null) {
    const e = record.error as Record<string, unknown>;
    const details = (typeof e.details === 'object' && e.details !== null ? e.details : {}) as Record<
      string,
      unknown
    >;
    return [
      {
        code: asString(e.code),
        message: asString(e.message),
        field: asString(details.field),
        retryAfterSeconds: delaySeconds(details.retry_after),
      },
    ];
  }
  return [];
}

/** A delay in seconds, given as a number or a numeric string; undefined for anything else. */
function delaySeconds(value: unknown): number | undefined {
  const seconds = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof seconds === 'number' && Number.isFinite(seconds)
    ? Math.max(0, Math.ceil(seconds))
    : undefined;
}

// undici's own timeouts (connect, headers, body), a backstop behind ky's `timeout`.
const UNDICI_TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** The `code` of a Node or undici error (`ECONNREFUSED`, `UND_ERR_SOCKET`, …). */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** No answer in time: ky's timeout, or undici's own. */
export function isUpstreamTimeout(error: unknown): boolean {
  if (error instanceof TimeoutError) return true;
  const code = errorCode(error);
  return code !== undefined && UNDICI_TIMEOUT_CODES.has(code);
}

/**
 * One failed call as an UpstreamError: the status, the errors the body reports and the delay
 * it asks for; a timeout, an open circuit, a full queue, or a socket that failed. Every text
 * that came from the upstream is scrubbed of `secrets` (the caller's key) and of bearer tokens.
 */
export async function readUpstreamFailure(
  operation: string,
  error: unknown,
  secrets: readonly string[],
): Promise<UpstreamError> {
  const redact = (text: string) => redactSecrets(text, secrets);
  if (error instanceof HTTPError) {
    const { status } = error.response;
    // ky hands the response over unread: its body is read here, once.
    const rawBody = await error.response.text();
    const errors = parseErrorBody(rawBody).map((e) => ({
      ...e,
      message: e.message === undefined ? undefined : redact(e.message),
      suggestion: e.suggestion === undefined ? undefined : redact(e.suggestion),
    }));
    const message = errors.find((e) => e.message)?.message ?? `HTTP ${status}`;
    return new UpstreamError('http', message, {
      operation,
      status,
      errors,
      retryAfterMs: requestedDelayMs(error.response.headers.get('retry-after'), errors),
      // Redacted before it is cut: a key across the cut would leave its start in the log.
      rawBody: redact(rawBody).slice(0, 2000),
    });
  }
  if (error instanceof UnexpectedStatusError) {
    return new UpstreamError('bad-response', error.message, { operation, status: error.status });
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
  return new UpstreamError('network', `the upstream could not be reached (${redact(reason)})`, {
    operation,
  });
}

function codeForStatus(status: number): ErrorCode {
  if (status === 400 || status === 413 || status === 422) return ErrorCode.BAD_USER_INPUT;
  if (status === 401) return ErrorCode.UNAUTHENTICATED;
  if (status === 403) return ErrorCode.FORBIDDEN;
  if (status === 404) return ErrorCode.NOT_FOUND;
  if (status === 409) return ErrorCode.CONFLICT;
  if (status === 429) return ErrorCode.UPSTREAM_RATE_LIMITED;
  if (status >= 500) return ErrorCode.UPSTREAM_UNAVAILABLE;
  // Any other status is outside the documented contract.
  return ErrorCode.UPSTREAM_BAD_RESPONSE;
}

function describeFailure(error: UpstreamError): DescribedError {
  const { operation, status, errors = [], retryAfterMs } = error.details;
  switch (error.kind) {
    case 'timeout':
      return {
        message: `The fine-tune API did not answer in time (${operation}).`,
        extensions: { code: ErrorCode.UPSTREAM_TIMEOUT, upstream: { operation } },
      };
    case 'network':
      return {
        message: `The fine-tune API could not be reached (${operation}).`,
        extensions: { code: ErrorCode.UPSTREAM_UNAVAILABLE, upstream: { operation } },
      };
    case 'circuit-open':
      return {
        message: `The fine-tune API is failing; the gateway is not calling it for a few seconds (${operation}).`,
        extensions: { code: ErrorCode.UPSTREAM_UNAVAILABLE, upstream: { operation, circuit: 'open' } },
      };
    case 'overloaded':
      return {
        message: `The gateway has too many calls to the fine-tune API waiting; try again shortly (${operation}).`,
        extensions: { code: ErrorCode.UPSTREAM_UNAVAILABLE, upstream: { operation, overloaded: true } },
      };
    case 'bad-response':
      return {
        message: `The fine-tune API sent a response the gateway cannot read (${operation}): ${error.message}.`,
        extensions: { code: ErrorCode.UPSTREAM_BAD_RESPONSE, upstream: { operation } },
      };
    case 'http': {
      const first = errors[0];
      const code = codeForStatus(status ?? 0);
      return {
        message: `The fine-tune API answered ${status} (${operation}): ${error.message}`,
        extensions: {
          code,
          // Whole seconds, as `Retry-After` says it.
          ...(retryAfterMs !== undefined && { retryAfter: Math.ceil(retryAfterMs / 1000) }),
          upstream: {
            operation,
            status,
            ...(first?.code !== undefined && { code: first.code }),
            ...(first?.errorUid !== undefined && { errorUid: first.errorUid }),
            ...(first?.suggestion !== undefined && { suggestion: first.suggestion }),
            ...(first?.field !== undefined && { field: first.field }),
            ...(errors.length > 1 && { errors }),
          },
        },
      };
    }
  }
}
