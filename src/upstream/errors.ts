// What went wrong on a call to the upstream API, in the upstream's own terms. The translation
// to GraphQL error codes lives in src/errors.ts; this module only reads what the upstream said.

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

export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';

  constructor(
    readonly kind: UpstreamFailureKind,
    message: string,
    readonly details: {
      /** `GET /fine-tune/jobs/…`: which call failed. */
      operation: string;
      status?: number;
      errors?: UpstreamErrorDetail[];
      /** Seconds from the upstream's `Retry-After`, or else its body's `retry_after`, when it sent one. */
      retryAfterSeconds?: number;
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

/**
 * The delay the upstream asked for: its `Retry-After` header, or else a `retry_after` in the
 * error body (the older envelope's `details` carries one).
 */
export function requestedRetryAfter(
  header: string | null,
  errors: UpstreamErrorDetail[],
): number | undefined {
  return parseRetryAfter(header) ?? errors.find((e) => e.retryAfterSeconds !== undefined)?.retryAfterSeconds;
}

/** `Retry-After` is either delay-seconds or an HTTP date. */
export function parseRetryAfter(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(header);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - now) / 1000));
}
