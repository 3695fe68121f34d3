// The one record of an operation's upstream calls (or a poller's): the upstream client tells it
// of each call and attempt (src/upstream/recorder.ts), and it feeds everything that reports them:
// the operation's budget (a call past it is refused unsent), `extensions.upstream` and the log
// line's count, the Prometheus metrics, and a CLIENT span per call when tracing is on. The loaders
// add the loads they answered without a call. It holds methods, paths and statuses only: no
// headers, and the key is redacted from paths (job ids are input).
import type { GatewayMetrics } from '../observability/metrics.js';
import { redactSecrets } from '../observability/secrets.js';
import type { GatewayTracing, TraceContext } from '../observability/tracing.js';
import type {
  UpstreamAttempt,
  UpstreamCall,
  UpstreamCallEnd,
  UpstreamCallListener,
  UpstreamRecorder,
} from '../upstream/recorder.js';
import type { OperationBudget } from './budget.js';

/**
 * How a load was answered: by a REST call, by this operation's loaders without one, or by an
 * identical operation whose answer this one shared.
 */
export type UpstreamCallSource = 'upstream' | 'loader' | 'coalesced' | 'shared';

export interface UpstreamCallEntry {
  method: string;
  /** Path under the API's base URL, with its query string: `/fine-tune/jobs?limit=5&offset=0`. */
  path: string;
  /**
   * `upstream`: a REST call was made. `loader`: answered from a result this operation already
   * had (the same page, or a job seen in a list). `coalesced`: joined an identical call still in
   * flight. `shared`: the whole operation was answered by an identical one (in flight, or kept
   * with the answers cache), whose call this was.
   */
  source: UpstreamCallSource;
  /** The HTTP status of the last attempt; null when none arrived (timeout, network). */
  status?: number | null;
  /** From sending the first attempt to the end of the last, retries included. */
  durationMs?: number;
  /** Attempts after the first (the client's retries of a failed read). */
  retries?: number;
}

export interface UpstreamCallsSummary {
  /** REST calls made (attempts after the first are in each call's `retries`). */
  calls: number;
  /** Loads answered without a call. */
  reused: number;
  entries: UpstreamCallEntry[];
}

export interface UpstreamCallsOptions {
  metrics: GatewayMetrics;
  /** Keep each call for `extensions.upstream` (off in production by default). */
  keepEntries: boolean;
  /** Strings never shown in a path (the caller's key). */
  secrets: readonly string[];
  /** The operation's budget; none for a poller, whose calls no operation pays for. */
  budget?: OperationBudget;
  /** Spans per call, when tracing is on, and the upstream's base URL for their attributes. */
  tracing?: { tracing: GatewayTracing; baseUrl: URL };
  /** The parent of the calls' spans: the operation's span, or a poll's. */
  parentSpan?: () => TraceContext | undefined;
}

/** Short types of the calls refused before any attempt, as the metrics name them. */
const REJECTED = { circuit_open: 'circuit_open', concurrency_limit: 'concurrency' } as const;

export class UpstreamCalls implements UpstreamRecorder {
  /** Attempts sent to the upstream (retries included): the log line's `upstreamCalls`. */
  attempts = 0;
  private readonly entries: UpstreamCallEntry[] = [];

  constructor(private readonly options: UpstreamCallsOptions) {}

  callStarting(call: UpstreamCall): UpstreamCallListener {
    const { metrics, budget } = this.options;
    const tracing = this.options.tracing?.tracing;
    // Past the operation's budget the call is not sent (QUERY_LIMIT_EXCEEDED).
    budget?.takeUpstreamCall();
    const span = tracing && this.callSpan(tracing, call);
    const headers: Record<string, string> = {};
    if (span) tracing!.inject(span.context, (name, value) => (headers[name] = value));
    return {
      headers,
      attempted: (attempt: UpstreamAttempt) => {
        this.attempts += 1;
        metrics.upstreamRequest(call.endpoint, attempt.outcome, attempt.durationMs / 1000);
        // An attempt that did not succeed is an event of the call's span: which one, and how.
        if (span && !attempt.outcome.startsWith('2')) {
          span.span.addEvent('upstream.attempt', {
            'gateway.upstream.attempt': attempt.number,
            'gateway.upstream.outcome': attempt.outcome,
          });
        }
      },
      retrying: () => metrics.upstreamRetry(call.endpoint),
      ended: (end: UpstreamCallEnd) => {
        const rejected = end.failure && REJECTED[end.failure as keyof typeof REJECTED];
        if (rejected) metrics.upstreamRejected(rejected);
        if (this.options.keepEntries) {
          this.entries.push({
            ...this.clean(call),
            source: 'upstream',
            status: end.status,
            durationMs: Math.round(end.durationMs),
            retries: end.retries,
          });
        }
        if (span) {
          span.span.setAttributes({
            ...(end.status !== null && { 'http.response.status_code': end.status }),
            // The spec's resend count, and the attempts sent in all (0: refused before any).
            ...(end.retries > 0 && { 'http.request.resend_count': end.retries }),
            'gateway.upstream.attempts': end.attempts,
          });
          if (end.failure !== undefined) tracing!.fail(span.span, end.failure);
          span.span.end();
        }
      },
    };
  }

  /** A load answered without a call: from this operation's loaders, or joining one in flight. */
  reuse(call: UpstreamCall, source: 'loader' | 'coalesced'): void {
    if (this.options.keepEntries) this.entries.push({ ...this.clean(call), source });
  }

  /** This operation shared the answer of another, which made these calls. */
  shared(entries: readonly UpstreamCallEntry[]): void {
    if (!this.options.keepEntries) return;
    for (const entry of entries)
      this.entries.push({ method: entry.method, path: entry.path, source: 'shared' });
  }

  /** What `extensions.upstream` shows; undefined when calls are not kept. */
  summary(): UpstreamCallsSummary | undefined {
    if (!this.options.keepEntries) return undefined;
    const calls = this.entries.filter((e) => e.source === 'upstream').length;
    return { calls, reused: this.entries.length - calls, entries: [...this.entries] };
  }

  /**
   * A CLIENT span named by the endpoint (`GET /fine-tune/jobs/{job_id}`): the route template,
   * never the URL with its ids; a child of the operation's span, or of the poll's.
   */
  private callSpan(tracing: GatewayTracing, call: UpstreamCall) {
    const parent = this.options.parentSpan?.() ?? tracing.ambient();
    const base = this.options.tracing?.baseUrl;
    const span = tracing.startSpan(call.endpoint, {
      kind: 'client',
      parent,
      attributes: {
        'http.request.method': call.method,
        ...(base && {
          // `/v0.5/fine-tune/jobs/{job_id}`: the endpoint's path under the base URL's.
          'url.template': `${base.pathname.replace(/\/+$/, '')}${call.endpoint.slice(call.endpoint.indexOf(' ') + 1)}`,
          'server.address': base.hostname,
          'server.port': Number(base.port || (base.protocol === 'https:' ? 443 : 80)),
        }),
      },
    });
    return { span, context: tracing.contextOf(span, parent) };
  }

  private clean(call: UpstreamCall): { method: string; path: string } {
    return { method: call.method, path: redactSecrets(call.path, this.options.secrets) };
  }
}
