// Faults the simulator can inject per route, so tests (and the soak run) can see how the
// gateway handles every way the real API is documented, or known, to misbehave.

export const SIMULATOR_ROUTES = [
  'listJobs',
  'getJob',
  'createJob',
  'stopJob',
  'cancelJob',
  'getJobMetrics',
] as const;
export type SimulatorRoute = (typeof SIMULATOR_ROUTES)[number];

export type ErrorEnvelope = 'current' | 'legacy' | 'older' | 'text';

export interface Fault {
  /** Answer with this error status instead of handling the request. */
  status?: number;
  /** How to wrap the error (default `current`); `text` is a non-JSON body. */
  envelope?: ErrorEnvelope;
  /** The upstream error code in the envelope (default derived from the status). */
  code?: string;
  /** Sent as `Retry-After` (seconds, or an HTTP date). */
  retryAfter?: number | string;
  /** More headers of the error answer (`RateLimit-Reset`, say). */
  headers?: Record<string, string>;
  /** The older envelope's `details` object (default `{}`), e.g. `{ field, retry_after }`. */
  details?: Record<string, unknown>;
  /** Wait this long before handling the request (and so before answering or dropping). */
  delayMs?: number;
  /**
   * Wait for this promise before handling the request: a test holds the upstream until the
   * gateway has done what it must meanwhile (in-process use only; no clock involved).
   */
  until?: Promise<unknown>;
  /**
   * Handle the request (a create commits the job), then wait this long before answering: past
   * the gateway's timeout, this is an answer lost after the write happened.
   */
  answerDelayMs?: number;
  /** Handle the request, then wait for this promise before answering (in-process use only). */
  answerUntil?: Promise<unknown>;
  /** Told once the request has been handled (its answer written, not yet sent). */
  onHandled?: () => void;
  /**
   * Destroy the connection without an answer. `before` does not handle the request;
   * `after` handles it (a create commits the job) and then drops the response.
   */
  drop?: 'before' | 'after';
  /** Answer 200 with a body cut off in the middle of the JSON. */
  malformedJson?: boolean;
  /** Answer 200 with a valid JSON body of the wrong shape. */
  wrongShape?: boolean;
  /** Replace the status of the job in the answer (the first job of a list) with this value. */
  unknownStatus?: string;
  /** Put the caller's bearer token into the error message, as a careless upstream might. */
  echoKey?: boolean;
  /** Answer with exactly this body (status `status`, default 200), for payloads outside the contract. */
  body?: string;
  /** Apply to this share of requests (0 to 1, default 1), chosen at random: for load-and-fault runs. */
  probability?: number;
  /** Apply to this many requests, then clear (default: until cleared). */
  times?: number;
}

export class FaultTable {
  private readonly faults = new Map<SimulatorRoute, Fault & { remaining: number }>();

  set(route: SimulatorRoute, fault: Fault): void {
    this.faults.set(route, { ...fault, remaining: fault.times ?? Number.POSITIVE_INFINITY });
  }

  clear(route?: SimulatorRoute): void {
    if (route) this.faults.delete(route);
    else this.faults.clear();
  }

  /** The fault for this request, if any, counting it against `times`. */
  take(route: SimulatorRoute): Fault | undefined {
    const fault = this.faults.get(route);
    if (!fault) return undefined;
    if (fault.probability !== undefined && Math.random() >= fault.probability) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.faults.delete(route);
    return fault;
  }
}

const DEFAULT_CODES: Record<number, string> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'NOT_FOUND',
  409: 'conflict',
  413: 'payload_too_large',
  422: 'validation_error',
  429: 'rate_limited',
  500: 'internal_error',
  502: 'bad_gateway',
  503: 'service_unavailable',
  504: 'gateway_timeout',
};

/** An error body in one of the provider's envelopes. */
export function errorBody(
  envelope: ErrorEnvelope,
  status: number,
  message: string,
  code = DEFAULT_CODES[status] ?? 'error',
  suggestion?: string,
  details: Record<string, unknown> = {},
): string {
  switch (envelope) {
    case 'legacy':
      return JSON.stringify({ detail: message });
    case 'older':
      return JSON.stringify({ error: { code, message, details } });
    case 'text':
      return `<html><body><h1>${status}</h1><p>${message}</p></body></html>`;
    case 'current':
      return JSON.stringify({
        errors: [
          {
            code,
            message,
            ...(suggestion !== undefined && { suggestion }),
            error_uid: `err-${crypto.randomUUID()}`,
          },
        ],
      });
  }
}
