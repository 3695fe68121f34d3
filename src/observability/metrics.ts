// Prometheus metrics (prom-client), served at GET /metrics. One registry per gateway, so two
// gateways in one process (tests) never mix their figures.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Operation names come from clients: past this many distinct ones, the rest share one label. */
const MAX_OPERATION_NAMES = 200;
/** A longer name shares that label too: a few huge names would otherwise make /metrics huge. */
const MAX_OPERATION_NAME_LENGTH = 100;
const OTHER_OPERATIONS = '(other)';

export type CircuitStateName = 'closed' | 'half-open' | 'open';
const CIRCUIT_STATE_VALUE: Record<CircuitStateName, number> = { closed: 0, 'half-open': 1, open: 2 };

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly operationNames = new Set<string>();

  private readonly operations = new Counter({
    name: 'gateway_graphql_operations_total',
    help: 'GraphQL operations by operation name and outcome (ok or the first error code).',
    labelNames: ['operation', 'outcome'],
    registers: [this.registry],
  });
  private readonly operationDuration = new Histogram({
    name: 'gateway_graphql_operation_duration_seconds',
    help: 'Time from receiving a GraphQL operation to sending its response.',
    labelNames: ['operation', 'outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly httpDuration = new Histogram({
    name: 'gateway_http_request_duration_seconds',
    help: 'Time from a request arriving at the gateway to its response finishing, by path.',
    labelNames: ['path'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly httpAborted = new Counter({
    name: 'gateway_http_requests_aborted_total',
    help: 'Requests whose connection closed before their response finished (client gone, or cut at shutdown), by path.',
    labelNames: ['path'],
    registers: [this.registry],
  });
  /** Arrival times of the requests being handled, for the age of the oldest. */
  private readonly inFlight = new Set<{ arrived: number }>();
  private readonly oldestInFlight = new Gauge({
    name: 'gateway_http_oldest_in_flight_seconds',
    help: 'Age of the oldest request the gateway is still handling (0 when none).',
    registers: [this.registry],
    collect: () => {
      let oldest = Number.POSITIVE_INFINITY;
      for (const r of this.inFlight) oldest = Math.min(oldest, r.arrived);
      this.oldestInFlight.set(oldest === Number.POSITIVE_INFINITY ? 0 : (performance.now() - oldest) / 1000);
    },
  });
  private readonly upstreamRequests = new Counter({
    name: 'gateway_upstream_requests_total',
    help: 'HTTP requests sent to the fine-tune API, by endpoint and status (or timeout / network).',
    labelNames: ['endpoint', 'status'],
    registers: [this.registry],
  });
  private readonly upstreamDuration = new Histogram({
    name: 'gateway_upstream_request_duration_seconds',
    help: 'Time of one HTTP request to the fine-tune API, until its response headers.',
    labelNames: ['endpoint', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly upstreamRetries = new Counter({
    name: 'gateway_upstream_retries_total',
    help: 'Retries of a request to the fine-tune API, by endpoint.',
    labelNames: ['endpoint'],
    registers: [this.registry],
  });
  private readonly upstreamTimeouts = new Counter({
    name: 'gateway_upstream_timeouts_total',
    help: 'Requests to the fine-tune API that got no answer in time, by endpoint.',
    labelNames: ['endpoint'],
    registers: [this.registry],
  });
  private readonly upstreamRejections = new Counter({
    name: 'gateway_upstream_rejections_total',
    help: 'Calls refused without reaching the upstream: circuit_open, or concurrency (queue full).',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  private readonly circuitState = new Gauge({
    name: 'gateway_upstream_circuit_state',
    help: 'The upstream circuit breaker: 0 closed, 1 half-open, 2 open.',
    registers: [this.registry],
  });
  private readonly loaderHits = new Counter({
    name: 'gateway_loader_hits_total',
    help: 'Loads answered without an upstream call: same key earlier in the operation (cache) or a job already in a list (list).',
    labelNames: ['loader', 'source'],
    registers: [this.registry],
  });

  private readonly sharedJoins = new Counter({
    name: 'gateway_graphql_shared_operation_joins_total',
    help: 'Requests answered by an identical query already in flight for the same credential (singleflight).',
    registers: [this.registry],
  });

  private readonly subscriptionListChanges = new Counter({
    name: 'gateway_subscription_list_changes_total',
    help: 'Jobs found changed by the polls of job lists for subscriptions (once per poll, however many subscribers).',
    registers: [this.registry],
  });

  private readonly subscriptionPolls = new Counter({
    name: 'gateway_subscription_polls_total',
    help: 'Polls of the upstream for subscriptions, done and told to their subscribers, by resource (job, jobs, metrics).',
    labelNames: ['resource'],
    registers: [this.registry],
  });

  private pollersRunning: () => number = () => 0;
  private readonly subscriptionPollers: Gauge = new Gauge({
    name: 'gateway_subscription_pollers',
    help: 'Shared pollers running for subscriptions (one per key identity and watched resource).',
    registers: [this.registry],
    collect: (): void => this.subscriptionPollers.set(this.pollersRunning()),
  });

  private heldDocumentBytes: () => number = () => 0;
  private readonly subscriptionDocumentBytes: Gauge = new Gauge({
    name: 'gateway_subscription_document_bytes',
    help: 'Bytes of the documents of the subscriptions running over WebSocket, held while they run (subscriptions.documentBytes).',
    registers: [this.registry],
    collect: (): void => this.subscriptionDocumentBytes.set(this.heldDocumentBytes()),
  });

  private readonly cachedResponses = new Counter({
    name: 'gateway_graphql_cached_responses_total',
    help: 'Requests answered from the response cache (http.responseCacheTtlMs).',
    registers: [this.registry],
  });

  private readonly jobWrites = new Counter({
    name: 'gateway_job_writes_total',
    help: 'Creates, stops and cancels of jobs (each an audit log line), by action and outcome: done, refused by the gateway, failed upstream.',
    labelNames: ['action', 'outcome'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.circuitState.set(0);
  }

  operation(name: string | null, outcome: string, seconds: number): void {
    let label = name ?? '(anonymous)';
    if (label.length > MAX_OPERATION_NAME_LENGTH) label = OTHER_OPERATIONS;
    if (!this.operationNames.has(label)) {
      if (this.operationNames.size >= MAX_OPERATION_NAMES) label = OTHER_OPERATIONS;
      else this.operationNames.add(label);
    }
    this.operations.inc({ operation: label, outcome });
    this.operationDuration.observe({ operation: label, outcome }, seconds);
  }

  jobWrite(action: string, outcome: string): void {
    this.jobWrites.inc({ action, outcome });
  }

  subscriptionPolled(resource: string): void {
    this.subscriptionPolls.inc({ resource });
  }

  watchPollers(count: () => number): void {
    this.pollersRunning = count;
  }

  watchSubscriptionDocuments(bytes: () => number): void {
    this.heldDocumentBytes = bytes;
  }

  listChanges(count: number): void {
    this.subscriptionListChanges.inc(count);
  }

  cachedResponse(): void {
    this.cachedResponses.inc();
  }

  sharedOperationJoined(): void {
    this.sharedJoins.inc();
  }

  httpRequest(path: string, seconds: number): void {
    this.httpDuration.observe({ path }, seconds);
  }

  /** Tracks a request from arrival; call the returned function when its connection closes. */
  httpRequestArrived(): () => void {
    const entry = { arrived: performance.now() };
    this.inFlight.add(entry);
    return () => void this.inFlight.delete(entry);
  }

  httpRequestAborted(path: string): void {
    this.httpAborted.inc({ path });
  }

  upstreamRequest(endpoint: string, status: string, seconds: number): void {
    this.upstreamRequests.inc({ endpoint, status });
    this.upstreamDuration.observe({ endpoint, status }, seconds);
    if (status === 'timeout') this.upstreamTimeouts.inc({ endpoint });
  }

  upstreamRetry(endpoint: string): void {
    this.upstreamRetries.inc({ endpoint });
  }

  upstreamRejected(reason: 'circuit_open' | 'concurrency'): void {
    this.upstreamRejections.inc({ reason });
  }

  circuit(state: CircuitStateName): void {
    this.circuitState.set(CIRCUIT_STATE_VALUE[state]);
  }

  loaderHit(loader: string, source: 'cache' | 'list'): void {
    this.loaderHits.inc({ loader, source });
  }
}
