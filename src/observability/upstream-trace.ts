// The per-operation upstream trace: which REST calls one GraphQL operation made, and which
// loads were answered without a call. The client records the calls, the loaders record the
// reuses; the plugin adds the trace to the response as `extensions.upstream`. It holds methods,
// paths and statuses only: no headers, and the key is redacted from paths (job ids are input).
import type { ApolloServerPlugin } from '@apollo/server';
import { redactSecrets } from './secrets.js';

/** How a load was answered: by a REST call, or by this operation's loaders without one. */
export type TraceSource = 'upstream' | 'loader' | 'coalesced';

export interface TracedRequest {
  method: string;
  /** Path under the API's base URL, with its query string: `/fine-tune/jobs?limit=5&offset=0`. */
  path: string;
}

export interface TraceEntry extends TracedRequest {
  /**
   * `upstream`: a REST call was made. `loader`: answered from a result this operation already
   * had (the same page, or a job seen in a list). `coalesced`: joined an identical call still in
   * flight.
   */
  source: TraceSource;
  /** The HTTP status of the last attempt; null when none arrived (timeout, network). */
  status?: number | null;
  /** From sending the first attempt to the end of the last, retries included. */
  durationMs?: number;
  /** Attempts after the first (the client's retries of a failed read). */
  retries?: number;
}

export interface UpstreamTraceSummary {
  /** REST calls made (attempts after the first are in each call's `retries`). */
  calls: number;
  /** Loads answered without a call. */
  reused: number;
  entries: TraceEntry[];
}

export class UpstreamTrace {
  private readonly entries: TraceEntry[] = [];

  constructor(private readonly secrets: readonly string[]) {}

  call(
    request: TracedRequest,
    outcome: { status: number | null; durationMs: number; retries: number },
  ): void {
    this.entries.push({ ...this.clean(request), source: 'upstream', ...outcome });
  }

  reuse(request: TracedRequest, source: 'loader' | 'coalesced'): void {
    this.entries.push({ ...this.clean(request), source });
  }

  summary(): UpstreamTraceSummary {
    const calls = this.entries.filter((e) => e.source === 'upstream').length;
    return { calls, reused: this.entries.length - calls, entries: [...this.entries] };
  }

  private clean(request: TracedRequest): TracedRequest {
    return { method: request.method, path: redactSecrets(request.path, this.secrets) };
  }
}

/** What the plugin needs from the context: this operation's trace, when tracing is on. */
export interface TracedContext {
  readonly upstreamTrace: UpstreamTrace | undefined;
}

/** Adds `extensions.upstream` to each response whose operation has a trace. */
export function upstreamTracePlugin(): ApolloServerPlugin<TracedContext> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ response, contextValue }) {
          const trace = contextValue.upstreamTrace;
          if (trace === undefined || response.body.kind !== 'single') return;
          const result = response.body.singleResult;
          result.extensions = { ...result.extensions, upstream: trace.summary() };
        },
      };
    },
  };
}
