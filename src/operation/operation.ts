// One GraphQL operation's own state, reached from its context as `context.operation`: what the
// plugins and modules that own a concern keep for the operation (its budget and record of
// upstream calls, how its answer was shared, its span, a subscription's stream), so that the
// context itself holds only what every resolver needs. Each operation of a batch has its own;
// a subscription starts a fresh budget and record for each event.
import type { ExecutionResult } from 'graphql';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { GatewayTracing, TraceContext } from '../observability/tracing.js';
import { OperationBudget, RequestSpend, type BudgetLimits } from './budget.js';
import { UpstreamCalls } from './upstream-calls.js';

/** What every operation's state is built from: the gateway's, the same for all. */
export interface OperationSettings {
  metrics: GatewayMetrics;
  budgetLimits: BudgetLimits;
  /** Keep each operation's calls for `extensions.upstream`. */
  keepUpstreamCalls: boolean;
  /** Spans per upstream call, when tracing is on. */
  tracing?: { tracing: GatewayTracing; baseUrl: URL };
}

/** Who a token says is calling: its subject and the organization it acts for (never the key). */
export interface Caller {
  subject?: string;
  organization?: string;
  /** The token's scopes; undefined for a key (no token), whose fields no scope policy guards. */
  scopes?: readonly string[];
}

/** How an operation reached the pipeline: /graphql over HTTP, graphql-ws, or /mcp (a tool call). */
export type Transport = 'http' | 'websocket' | 'mcp';

export class OperationState {
  /** How the answer came: joined an identical query in flight, or kept from one before. */
  sharedFrom: 'flight' | 'cache' | undefined;
  /** The operation's span (tracing on): the parent of its upstream calls' spans. */
  span: TraceContext | undefined;
  /** A subscription's stream of event results, once its operation has opened it (WebSocket). */
  liveEvents: AsyncGenerator<ExecutionResult> | undefined;
  /**
   * The job each create, stop and cancel of the operation ran for, by the field's response key
   * (a create's id may be the one the gateway chose): for the audit trail.
   */
  readonly jobWrites = new Map<string, string>();
  private budgetOfRun: OperationBudget | undefined;
  private callsOfRun: UpstreamCalls | undefined;

  constructor(
    /** Where the operation came in: HTTP, a graphql-ws socket, or an MCP tool call. */
    readonly transport: Transport,
    private readonly settings: OperationSettings,
    /** The strings its calls' paths never show (the caller's key). */
    private readonly secrets: readonly string[],
    /** What the request has spent: this operation's, or a whole batch's (shared by its operations). */
    private spendOfRequest: RequestSpend,
    /** The person a verified token names (JWT authentication), for the audit trail and limits. */
    readonly caller: Caller = {},
  ) {}

  /** What the request has spent so far (its batch's operations together). */
  get spend(): RequestSpend {
    return this.spendOfRequest;
  }

  /** What this operation may still cost the upstream: its calls, and the jobs it returns. */
  get budget(): OperationBudget {
    this.budgetOfRun ??= new OperationBudget(this.settings.budgetLimits, this.spendOfRequest);
    return this.budgetOfRun;
  }

  /** The one record of this operation's upstream calls (the log, `extensions.upstream`, spans, metrics). */
  get upstreamCalls(): UpstreamCalls {
    this.callsOfRun ??= new UpstreamCalls({
      metrics: this.settings.metrics,
      keepEntries: this.settings.keepUpstreamCalls,
      secrets: this.secrets,
      budget: this.budget,
      ...(this.settings.tracing && { tracing: this.settings.tracing }),
      parentSpan: () => this.span,
    });
    return this.callsOfRun;
  }

  /**
   * A subscription runs one execution per event: each gets a fresh budget, spend and record, so
   * what one event spent or read is never counted against the next.
   */
  startSubscriptionEvent(): void {
    this.spendOfRequest = new RequestSpend();
    this.budgetOfRun = undefined;
    this.callsOfRun = undefined;
  }
}
