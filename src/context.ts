// The per-request context every resolver receives: who is calling (the API key to use), a
// request id and logger, and the loaders, built fresh for each request.
import { createHash } from 'node:crypto';
import type { ExecutionResult } from 'graphql';
import type { Logger } from 'pino';
import { ErrorCode, gatewayError } from './errors.js';
import { createFineTuneJobLoaders, type FineTuneJobLoaders } from './loaders/fine-tune-jobs.js';
import type { GatewayMetrics } from './observability/metrics.js';
import type { HeldDocuments } from './subscriptions/held-documents.js';
import type { LiveJobPollers, LiveJobs } from './subscriptions/live-jobs.js';
import { FineTuneApiClient } from './upstream/client.js';
import type { UpstreamHttp } from './upstream/http.js';
import { OperationBudget, RequestSpend, type BudgetLimits } from './limits/operation-budget.js';
import { UpstreamTrace } from './observability/upstream-trace.js';
import type { TraceContext } from './observability/tracing.js';
import { FineTuneJobWrites, type JobWriteSettings } from './upstream/job-writes.js';

export interface GatewayContext {
  requestId: string;
  logger: Logger;
  /** Where the operation came in: HTTP, or a graphql-ws socket. */
  readonly transport: 'http' | 'websocket';
  /**
   * Who the operation's answer belongs to, for sharing it (a hash of the API key it uses, never
   * the key); undefined when the request has no usable key.
   */
  readonly credentialIdentity: string | undefined;
  /** How the answer came: set by the sharing plugins (joined a flight, or kept), read by the log. */
  readonly answer: { from?: 'flight' | 'cache' };
  /** A subscription's stream of event results, once its operation has opened it (WebSocket). */
  readonly liveStream: { events?: AsyncGenerator<ExecutionResult> };
  /** The documents running subscriptions hold, all keys together (subscriptions.documentBytes). */
  readonly heldDocuments: HeldDocuments | undefined;
  /** HTTP requests this operation sent upstream so far; the upstream client counts, the log reads. */
  readonly upstreamCalls: { count: number };
  /**
   * The loaders for this request. Reading it without an API key throws UNAUTHENTICATED, so a
   * resolver that needs the upstream fails before any call, while introspection still works.
   */
  readonly loaders: FineTuneJobLoaders;
  /**
   * Create, stop and cancel, with the never-duplicate, never-lose retries; same key check, and
   * UNAUTHENTICATED for a client without a key of its own unless security.anonymousWrites.
   */
  readonly jobWrites: FineTuneJobWrites;
  /** This operation's upstream calls, when tracing is on (`extensions.upstream`). */
  readonly upstreamTrace: UpstreamTrace | undefined;
  /**
   * This operation's OpenTelemetry span, as the context its upstream calls start theirs in; set
   * by the tracing plugin on the operation's copy of the context, undefined when tracing is off.
   */
  operationSpan: TraceContext | undefined;
  /** What this operation may still cost the upstream: its calls, and the jobs it returns. */
  readonly budget: OperationBudget;
  /** What the request has spent: one operation's, or a whole batch's (shared by its operations). */
  readonly spend: RequestSpend;
  /** Live streams for subscriptions, shared per key identity; same key check as `loaders`. */
  readonly liveJobs: LiveJobs;
  /**
   * A subscription runs one execution per event with one context: this gives each event fresh
   * loaders, so what one event read is never served to the next.
   */
  startSubscriptionEvent(): void;
}

export interface ContextDependencies {
  http: UpstreamHttp;
  metrics: GatewayMetrics;
  /** The gateway's own key, used when the client sends none. */
  serverApiKey: string | undefined;
  logger: Logger;
  jobWriteSettings: JobWriteSettings;
  /** Record each operation's upstream calls for `extensions.upstream`. */
  traceUpstream: boolean;
  /** The gateway's shared pollers, for subscriptions. */
  liveJobPollers?: LiveJobPollers;
  /** The bound on what running subscriptions' documents hold. */
  heldDocuments?: HeldDocuments;
  /** A client without a key of its own may create, stop and cancel with the gateway's key. */
  anonymousWrites: boolean;
  /** Host names whose requests may act with the gateway's key (lower case, no port). */
  allowedHosts: ReadonlySet<string>;
  /** What one operation may cost the upstream at run time. */
  budgetLimits: BudgetLimits;
}

export interface IncomingRequest {
  authorization: string | undefined;
  requestId: string;
  transport: 'http' | 'websocket';
  /** The request's `Host` (HTTP, or the WebSocket upgrade), as the client sent it. */
  host: string | undefined;
  /** The request's logger (Fastify's, bound to the request id); a child of the gateway's otherwise. */
  logger?: Logger;
}

/** The identity of a key for sharing: a hash, so the key itself is never a map key. */
export function credentialIdentity(apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('base64');
}

// RFC 6750 token characters only: anything else (control characters, non-ASCII) could not
// travel in an HTTP header, and over WebSocket connection params nothing else stops it.
const BEARER = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i;

type Credential = { apiKey: string; own: boolean } | { error: string };

/** `api.example.com:4000` → `api.example.com`; `[::1]:4000` → `::1`; lower case. */
export function hostName(host: string | undefined): string | undefined {
  if (host === undefined || host === '') return undefined;
  try {
    return new URL(`http://${host}/`).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * The API key for this request: the client's bearer token (its own), else the gateway's key.
 * The gateway's key serves only requests addressed to one of its own host names: a web page
 * under another name that resolves to the gateway (DNS rebinding) is same-origin to the
 * browser, and would otherwise act with the gateway's key.
 */
function resolveApiKey(incoming: IncomingRequest, deps: ContextDependencies): Credential {
  const header = incoming.authorization?.trim();
  if (header) {
    const match = BEARER.exec(header);
    if (!match) return { error: 'The Authorization header must be `Bearer <your Archetype AI API key>`.' };
    return { apiKey: match[1]!, own: true };
  }
  if (deps.serverApiKey === undefined) {
    return { error: 'No API key: send `Authorization: Bearer <your Archetype AI API key>`.' };
  }
  const name = hostName(incoming.host);
  if (name === undefined || !deps.allowedHosts.has(name)) {
    return {
      error:
        "No API key, and the gateway's own key serves only its own host names (security.allowedHosts): send `Authorization: Bearer <your Archetype AI API key>`.",
    };
  }
  return { apiKey: deps.serverApiKey, own: false };
}

/**
 * A class, not an object literal: Apollo Server copies the context's own properties per
 * operation, which would run an own getter eagerly; getters on the prototype stay lazy.
 */
class RequestContext implements GatewayContext {
  // Plain fields (not #private): Apollo's copy of the context must carry them. Eager ones are
  // shared by every copy (each operation of a batch gets one), lazy ones belong to one copy.
  readonly liveStream: { events?: AsyncGenerator<ExecutionResult> } = {};
  operationSpan: TraceContext | undefined = undefined;
  spend = new RequestSpend();
  private callsOfOperation: { count: number } | undefined;
  private answerOfOperation: { from?: 'flight' | 'cache' } | undefined;
  private api: FineTuneApiClient | undefined;
  private loadersOfRequest: FineTuneJobLoaders | undefined;
  private jobWritesOfRequest: FineTuneJobWrites | undefined;
  private traceOfOperation: UpstreamTrace | undefined;
  private identityOfKey: string | undefined;
  private budgetOfOperation: OperationBudget | undefined;

  constructor(
    readonly requestId: string,
    readonly transport: 'http' | 'websocket',
    readonly logger: Logger,
    private readonly credential: Credential,
    private readonly deps: ContextDependencies,
  ) {}

  private client(): FineTuneApiClient {
    if ('error' in this.credential) throw gatewayError(ErrorCode.UNAUTHENTICATED, this.credential.error);
    this.api ??= new FineTuneApiClient(this.deps.http, {
      apiKey: this.credential.apiKey,
      requestId: this.requestId,
      calls: this.upstreamCalls,
      trace: this.upstreamTrace,
      budget: this.budget,
      span: this.operationSpan,
    });
    return this.api;
  }

  // Lazy like the loaders: each operation's copy of the context, and each subscription event,
  // has its own, all adding to the request's spend.
  get budget(): OperationBudget {
    this.budgetOfOperation ??= new OperationBudget(this.deps.budgetLimits, this.spend);
    return this.budgetOfOperation;
  }

  get upstreamCalls(): { count: number } {
    this.callsOfOperation ??= { count: 0 };
    return this.callsOfOperation;
  }

  get answer(): { from?: 'flight' | 'cache' } {
    this.answerOfOperation ??= {};
    return this.answerOfOperation;
  }

  get heldDocuments(): HeldDocuments | undefined {
    return this.deps.heldDocuments;
  }

  get credentialIdentity(): string | undefined {
    if (!('apiKey' in this.credential)) return undefined;
    this.identityOfKey ??= credentialIdentity(this.credential.apiKey);
    return this.identityOfKey;
  }

  // Lazy like the loaders, so each operation's copy of the context records its own calls.
  get upstreamTrace(): UpstreamTrace | undefined {
    if (!this.deps.traceUpstream) return undefined;
    this.traceOfOperation ??= new UpstreamTrace('apiKey' in this.credential ? [this.credential.apiKey] : []);
    return this.traceOfOperation;
  }

  get loaders(): FineTuneJobLoaders {
    this.loadersOfRequest ??= createFineTuneJobLoaders(this.client(), this.deps.metrics, this.budget);
    return this.loadersOfRequest;
  }

  get liveJobs(): LiveJobs {
    const pollers = this.deps.liveJobPollers;
    if (pollers === undefined) throw new Error('this context serves no subscriptions');
    if ('error' in this.credential) throw gatewayError(ErrorCode.UNAUTHENTICATED, this.credential.error);
    const { apiKey } = this.credential;
    // The pollers outlive this request, so they get a client of their own, without a trace.
    const caller = { apiKey, requestId: this.requestId, calls: { count: 0 } };
    // Its polls are linked to this operation's span (tracing on).
    return pollers.forKey(
      new FineTuneApiClient(this.deps.http, caller),
      this.credentialIdentity!,
      this.operationSpan,
    );
  }

  startSubscriptionEvent(): void {
    this.api = undefined;
    this.loadersOfRequest = undefined;
    this.traceOfOperation = undefined;
    this.budgetOfOperation = undefined;
    this.spend = new RequestSpend();
  }

  get jobWrites(): FineTuneJobWrites {
    // Anonymous access reads: a write with the gateway's key needs the operator's consent.
    if ('apiKey' in this.credential && !this.credential.own && !this.deps.anonymousWrites) {
      throw gatewayError(
        ErrorCode.UNAUTHENTICATED,
        "Creating, stopping and cancelling jobs needs your own key: send `Authorization: Bearer <your Archetype AI API key>` (the gateway's own key only reads).",
      );
    }
    this.jobWritesOfRequest ??= new FineTuneJobWrites(this.client(), this.deps.jobWriteSettings, this.logger);
    return this.jobWritesOfRequest;
  }
}

export function createContext(deps: ContextDependencies, incoming: IncomingRequest): GatewayContext {
  return new RequestContext(
    incoming.requestId,
    incoming.transport,
    incoming.logger ?? deps.logger.child({ requestId: incoming.requestId }),
    resolveApiKey(incoming, deps),
    deps,
  );
}
