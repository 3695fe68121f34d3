// What the upstream client tells about its calls, to whoever listens from above: the operation
// whose calls they are (its budget, its record for `extensions.upstream` and the log line, its
// spans, the metrics), or a subscription's poller. The client owns this interface and knows
// nothing of its listeners.

/** A call about to be sent. */
export interface UpstreamCall {
  /** `GET /fine-tune/jobs/{job_id}`: the endpoint, its ids left out. */
  endpoint: string;
  method: string;
  /** Path under the base URL, with its query string: `/fine-tune/jobs?limit=5&offset=0`. */
  path: string;
}

/** How one attempt of a call ended: an HTTP status, `timeout` or `network`. */
export interface UpstreamAttempt {
  /** 1 for the first attempt, 2 for its first retry, … */
  number: number;
  outcome: string;
  status: number | null;
  durationMs: number;
}

/** How a call ended, all its attempts together. */
export interface UpstreamCallEnd {
  /** The HTTP status of the last attempt that got one; null when none did. */
  status: number | null;
  /** Attempts after the first. */
  retries: number;
  /** Attempts sent (0: refused before any). */
  attempts: number;
  durationMs: number;
  /** Why the call failed, as a short type (`503`, `timeout`, `circuit_open`); absent on success. */
  failure?: string;
}

/** Listens to one call, from its first attempt to its end. */
export interface UpstreamCallListener {
  /** Headers each attempt carries besides the key and request id (a trace's `traceparent`). */
  readonly headers?: Readonly<Record<string, string>>;
  attempted(attempt: UpstreamAttempt): void;
  /** A retry is about to wait for its delay. */
  retrying(): void;
  ended(end: UpstreamCallEnd): void;
}

/** Told of every call of one operation (or poller) before it is sent. */
export interface UpstreamRecorder {
  /** Throwing refuses the call: nothing is sent, and the error is the call's. */
  callStarting(call: UpstreamCall): UpstreamCallListener;
}
