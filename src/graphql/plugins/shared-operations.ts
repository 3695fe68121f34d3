// Identical queries share one execution. A query whose identical twin (same credential, document,
// operation and variables) is executing waits for that answer instead of running its own; with
// http.responseCacheTtlMs, a successful answer also serves identical queries for that long. Both are
// plugins that answer in `responseForOperation`, after parsing, validation and
// `didResolveOperation`: every request still runs its own pipeline (every plugin's hooks, its
// log line, its inline trace when a router asks) and only the execution is shared.
//
// Never shared: mutations and subscriptions; requests without a usable key; answers across
// organizations (the key holds the credential's identity); answers across a write (a create,
// stop or cancel empties the cache, and no request from then on joins a flight begun before it).
//
// With REDIS_URL the cache is the fleet's (src/fleet/shared-cache.ts): an answer cached by one
// instance serves them all, and a write empties the answers everywhere. The key
// of a flight then holds the fleet's epoch too, so no request after a write through any
// instance joins a flight begun before it. Flights stay per instance.
import type { ApolloServerPlugin, GraphQLRequestContext, GraphQLResponse } from '@apollo/server';
import { HeaderMap } from '@apollo/server';
import type { FormattedExecutionResult } from 'graphql';
import { LRUCache } from 'lru-cache';
import type { GatewayContext } from '../../context.js';
import type { GatewayMetrics } from '../../observability/metrics.js';
import type { UpstreamCallEntry } from '../../operation/upstream-calls.js';
import type { AnswerSlot, FleetAnswers } from '../../fleet/shared-cache.js';
import type { ResultSerializer } from '../result-serializer.js';

/** What identical operations share: the result's data and errors as sent, and its status. */
interface SharedAnswer {
  result: Omit<FormattedExecutionResult, 'extensions'>;
  status: number | undefined;
  /** The upstream calls that made the answer, for the sharers' `extensions.upstream`. */
  trace: readonly UpstreamCallEntry[];
}

/** Answers the cache holds at most; the least recently used goes first. */
const KEPT_ANSWERS = 1000;
/** Characters of kept answers (data text and key) at most: a page of every job is about 1 MB. */
const KEPT_CHARS = 64 * 1024 * 1024;

type OperationContext = GraphQLRequestContext<GatewayContext>;

/**
 * What an operation's answer depends on: whose it is, the document, the operation and the
 * variables. Undefined for what is never shared.
 */
function sharingKey(requestContext: OperationContext): string | undefined {
  const { operation, operationName, queryHash, request, contextValue } = requestContext;
  if (operation?.operation !== 'query' || queryHash === undefined) return undefined;
  const identity = contextValue.credentialIdentity;
  if (identity === undefined) return undefined;
  return `${identity}\n${operationName ?? ''}\n${queryHash}\n${JSON.stringify(request.variables ?? {})}`;
}

function sharedResponse(answer: SharedAnswer, requestContext: OperationContext): GraphQLResponse {
  requestContext.contextValue.operation.upstreamCalls.shared(answer.trace);
  return {
    http: { status: answer.status, headers: new HeaderMap() },
    // A copy of the envelope: each request's plugins add extensions of their own.
    body: { kind: 'single', singleResult: { ...answer.result } },
  };
}

function answerOf(
  requestContext: OperationContext & { response: GraphQLResponse },
): SharedAnswer | undefined {
  const { body, http } = requestContext.response;
  if (body.kind !== 'single') return undefined;
  const { extensions: _own, ...result } = body.singleResult;
  return {
    result,
    status: http.status,
    trace: requestContext.contextValue.operation.upstreamCalls.summary()?.entries ?? [],
  };
}

/** A 200 with data and no errors: the only answer worth keeping. */
function isPlainSuccess(answer: SharedAnswer): boolean {
  return (answer.status ?? 200) === 200 && answer.result.errors === undefined && answer.result.data != null;
}

interface Flight {
  /** Settles when the leading request sends its answer; undefined if it never got one. */
  answer: Promise<SharedAnswer | undefined>;
  settle(answer: SharedAnswer | undefined): void;
}

function newFlight(): Flight {
  let settle!: (answer: SharedAnswer | undefined) => void;
  const answer = new Promise<SharedAnswer | undefined>((resolve) => (settle = resolve));
  return { answer, settle };
}

export interface SharedOperationsOptions {
  /** How long a successful answer serves identical queries (http.responseCacheTtlMs); 0: no cache. */
  ttlMs: number;
  metrics: GatewayMetrics;
  /** Weighs a kept answer by its data text, which responses then reuse. */
  serializer: ResultSerializer;
  /** REDIS_URL: the fleet's cache in Redis instead of this instance's own. */
  fleet?: FleetAnswers;
}

export class SharedOperations {
  private flights = new Map<string, Flight>();
  private readonly kept: LRUCache<string, SharedAnswer> | undefined;
  private readonly fleet: FleetAnswers | undefined;
  /** Where in the fleet's cache each request's answer is looked up and kept (Redis up). */
  private readonly slots = new WeakMap<OperationContext, AnswerSlot>();
  // Bumped by every write: an answer is kept only if no write began or ended during its flight.
  private writes = 0;

  constructor(private readonly options: SharedOperationsOptions) {
    if (options.ttlMs > 0 && options.fleet) this.fleet = options.fleet;
    else if (options.ttlMs > 0) {
      this.kept = new LRUCache<string, SharedAnswer>({
        max: KEPT_ANSWERS,
        maxSize: KEPT_CHARS,
        ttl: options.ttlMs,
        sizeCalculation: (answer, key) =>
          key.length + (answer.result.data ? options.serializer.data(answer.result.data).length : 0),
      });
    }
  }

  /**
   * The upstream's data may have changed: nothing answered before is served again, and no
   * request from now on joins a flight that began before (it may have read the old data).
   */
  forgetAll(identity?: string): Promise<void> {
    this.writes += 1;
    this.kept?.clear();
    this.flights = new Map();
    // The fleet's answers are per organization: the writer's, on every instance.
    return identity !== undefined && this.fleet ? this.fleet.forget(identity) : Promise.resolve();
  }

  /** The plugins, in the order they must run: the cache (when on), then the flights. */
  plugins(): ApolloServerPlugin<GatewayContext>[] {
    if (this.fleet) return [this.fleetCachePlugin(this.fleet), this.flightPlugin()];
    return this.kept ? [this.cachePlugin(this.kept), this.flightPlugin()] : [this.flightPlugin()];
  }

  private fleetCachePlugin(fleet: FleetAnswers): ApolloServerPlugin<GatewayContext> {
    const { metrics } = this.options;
    return {
      requestDidStart: async () => ({
        responseForOperation: async (requestContext) => {
          const key = sharingKey(requestContext);
          if (key === undefined) return null;
          // Undefined while Redis is down: the request runs (or joins a flight) as on one instance.
          const slot = await fleet.slot(requestContext.contextValue.credentialIdentity!, key);
          if (slot === undefined) return null;
          this.slots.set(requestContext, slot);
          const text = await fleet.get(slot);
          if (text === undefined) return null;
          let answer: SharedAnswer;
          try {
            answer = JSON.parse(text) as SharedAnswer;
          } catch {
            return null;
          }
          requestContext.contextValue.operation.sharedFrom = 'cache';
          requestContext.metrics.responseCacheHit = true;
          metrics.cachedResponse();
          return sharedResponse(answer, requestContext);
        },
      }),
    };
  }

  private cachePlugin(kept: LRUCache<string, SharedAnswer>): ApolloServerPlugin<GatewayContext> {
    const { metrics } = this.options;
    return {
      async requestDidStart() {
        return {
          async responseForOperation(requestContext) {
            const key = sharingKey(requestContext);
            const answer = key === undefined ? undefined : kept.get(key);
            if (answer === undefined) return null;
            requestContext.contextValue.operation.sharedFrom = 'cache';
            // What usage reporting reads for an answer served from a cache.
            requestContext.metrics.responseCacheHit = true;
            metrics.cachedResponse();
            return sharedResponse(answer, requestContext);
          },
        };
      },
    };
  }

  private flightPlugin(): ApolloServerPlugin<GatewayContext> {
    // The flight each request leads, for a request whose pipeline failed before its answer.
    const leading = new WeakMap<OperationContext, () => void>();
    return {
      unexpectedErrorProcessingRequest: async ({ requestContext }) => {
        leading.get(requestContext as OperationContext)?.();
      },
      requestDidStart: async () => {
        let lead: { key: string; flight: Flight; writesBefore: number; slot?: AnswerSlot } | undefined;
        // Resolves once the fleet's cache has the answer: a response sent is an answer shared.
        const finish = async (answer: SharedAnswer | undefined): Promise<void> => {
          if (lead === undefined) return;
          const { key, flight, writesBefore, slot } = lead;
          lead = undefined;
          if (this.flights.get(key) === flight) this.flights.delete(key);
          flight.settle(answer);
          if (!answer || this.writes !== writesBefore || !isPlainSuccess(answer)) return;
          if (slot !== undefined) await this.fleet?.set(slot, JSON.stringify(answer));
          else this.kept?.set(key, answer);
        };
        return {
          responseForOperation: async (requestContext) => {
            const slot = this.slots.get(requestContext);
            const key = slot ?? sharingKey(requestContext);
            if (key === undefined) return null;
            const running = this.flights.get(key);
            if (running !== undefined) {
              const answer = await running.answer;
              // Its leader got no answer: this request runs the operation itself.
              if (answer === undefined) return null;
              requestContext.contextValue.operation.sharedFrom = 'flight';
              this.options.metrics.sharedOperationJoined();
              return sharedResponse(answer, requestContext);
            }
            const flight = newFlight();
            this.flights.set(key, flight);
            lead = { key, flight, writesBefore: this.writes, ...(slot !== undefined && { slot }) };
            leading.set(requestContext, () => void finish(undefined));
            return null;
          },
          willSendResponse: async (requestContext) => {
            if (lead !== undefined) await finish(answerOf(requestContext));
          },
        };
      },
    };
  }
}
