// The per-operation upstream trace: which REST calls one GraphQL operation made, and which
// loads were answered without a call. The client records the calls, the loaders record the
// reuses; a plugin (graphql/plugins/upstream-trace.ts) adds the trace to the response as
// `extensions.upstream`. It holds methods, paths and statuses only: no headers, and the key is
// redacted from paths (job ids are input).
import { redactSecrets } from './secrets.js';

/**
 * How a load was answered: by a REST call, by this operation's loaders without one, or by an
 * identical operation whose answer this one shared.
 */
export type TraceSource = 'upstream' | 'loader' | 'coalesced' | 'shared';

export interface TracedRequest {
  method: string;
  /** Path under the API's base URL, with its query string: `/fine-tune/jobs?limit=5&offset=0`. */
  path: string;
}

export interface TraceEntry extends TracedRequest {
  /**
   * `upstream`: a REST call was made. `loader`: answered from a result this operation already
   * had (the same page, or a job seen in a list). `coalesced`: joined an identical call still in
   * flight. `shared`: the whole operation was answered by an identical one (in flight, or kept
   * with http.responseCacheTtlMs), whose call this was.
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

  /** This operation shared the answer of another, which made these calls. */
  shared(entries: readonly TraceEntry[]): void {
    for (const entry of entries)
      this.entries.push({ method: entry.method, path: entry.path, source: 'shared' });
  }

  summary(): UpstreamTraceSummary {
    const calls = this.entries.filter((e) => e.source === 'upstream').length;
    return { calls, reused: this.entries.length - calls, entries: [...this.entries] };
  }

  private clean(request: TracedRequest): TracedRequest {
    return { method: request.method, path: redactSecrets(request.path, this.secrets) };
  }
}
