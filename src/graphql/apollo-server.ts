// Apollo Server, the one way every GraphQL operation is run, over HTTP and over WebSocket: the
// gateway's plugins (limits, fair use per caller, the operation log, the audit trail, extensions.upstream, sharing
// identical queries) and an operator's, graphql-jit behind the executor hook, and the result serializer behind
// `stringifyResult`.
import { ApolloServer, type ApolloServerOptions, type ApolloServerPlugin } from '@apollo/server';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import type { GraphQLFormattedError, GraphQLSchema } from 'graphql';
import type { Logger } from 'pino';
import type { RateLimitSettings } from '../config.js';
import type { GatewayContext } from '../context.js';
import type { FleetRedis } from '../fleet/redis.js';
import type { queryLimitProtection } from './query-limits.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { GatewayTracing } from '../observability/tracing.js';
import { parsedDocuments, registeredDocuments } from './document-memory.js';
import { jitExecution } from './jit-executor.js';
import { auditTrailPlugin } from './plugins/audit-trail.js';
import { operationLogPlugin } from './plugins/operation-log.js';
import { rateLimitsPlugin } from './plugins/rate-limits.js';
import { scopePolicies, scopePoliciesPlugin } from './plugins/scope-policies.js';
import type { SharedOperations } from './plugins/shared-operations.js';
import { subscriptionsOverHttpPlugin } from './plugins/subscriptions-over-http.js';
import { tracingPlugin } from './plugins/tracing.js';
import { trustedDocumentsPlugin } from './plugins/trusted-documents.js';
import { upstreamCallsExtensionPlugin } from './plugins/upstream-calls-extension.js';
import type { ResultSerializer } from './result-serializer.js';
import type { TrustedDocuments } from './trusted-document-list.js';
import type { HeldDocuments } from '../subscriptions/held-documents.js';

/** Apollo Server's APQ cache (a KeyValueCache), as its options name it. */
type PersistedQueriesCache = NonNullable<
  Exclude<ApolloServerOptions<GatewayContext>['persistedQueries'], false | undefined>['cache']
>;

export interface GatewayApolloOptions {
  schema: GraphQLSchema;
  logger: Logger;
  metrics: GatewayMetrics;
  introspection: boolean;
  /**
   * The landing page a browser gets at /graphql (Apollo Sandbox or GraphiQL, from the HTTP layer
   * that serves the explorers); none when the explorers are off.
   */
  landingPage: ApolloServerPlugin<GatewayContext> | undefined;
  limits: ReturnType<typeof queryLimitProtection>;
  /** Operations one HTTP request may batch (limits.maxBatch); 1: batching is off. */
  maxBatch: number;
  formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError;
  serializer: ResultSerializer;
  sharedOperations: SharedOperations;
  /** REDIS_URL: the fleet's APQ cache, so a hash registered on one instance is found on all. */
  persistedQueriesCache?: PersistedQueriesCache;
  /** security.trustedDocuments: the list, and whether only its operations run. */
  trustedDocuments: { documents: TrustedDocuments; only: boolean } | undefined;
  /** Fair use per caller (rateLimits), counted in the fleet's Redis when there is one. */
  rateLimits: { settings: RateLimitSettings; redis: FleetRedis | undefined };
  /** OpenTelemetry spans of every operation (OTEL_*); undefined when tracing is off. */
  tracing?: GatewayTracing;
  /** The bound on what running subscriptions' documents hold. */
  heldDocuments?: HeldDocuments;
  /** auth.requiredScopes, beside the schema's `@requiresScopes`; undefined: JWT authentication is off. */
  requiredScopes: Record<string, string[][]> | undefined;
  /** Server-level plugins of the gateway's own (the drain of its listeners). */
  lifecyclePlugins: ApolloServerPlugin<GatewayContext>[];
  /** An operator's plugins: they see every operation, before the shared answers are looked up. */
  plugins: ApolloServerPlugin<GatewayContext>[];
}

export function createApolloServer(options: GatewayApolloOptions): ApolloServer<GatewayContext> {
  const { limits } = options;
  return new ApolloServer<GatewayContext>({
    // Apollo's executor hook: operations run compiled by graphql-jit (see jit-executor.ts).
    gateway: jitExecution(options.schema, options.heldDocuments),
    introspection: options.introspection,
    includeStacktraceInErrorResponses: false,
    // main.ts owns SIGTERM/SIGINT: it stops the listener first, then Apollo, then exits.
    stopOnTerminationSignals: false,
    // csrfPrevention is on by default in Apollo Server 5; the HTTP layer marks GETs as safe
    // (src/http/app.ts says why), so only simple POSTs need a preflight header.
    // Each operation of a batch runs through the whole pipeline; the HTTP layer bounds its size.
    allowBatchedHttpRequests: options.maxBatch > 1,
    formatError: options.formatError,
    stringifyResult: options.serializer.stringify,
    logger: options.logger,
    validationRules: limits.validationRules,
    parseOptions: limits.parseOptions,
    // Parsed documents and APQ texts, bounded by the memory they hold (document-memory.ts).
    documentStore: parsedDocuments(),
    // With only listed documents allowed, nothing may register one (the trusted-documents plugin
    // answers every id itself), as Apollo Router requires APQ off with its safelist.
    persistedQueries: options.trustedDocuments?.only
      ? false
      : { cache: options.persistedQueriesCache ?? registeredDocuments() },
    plugins: [
      // First: it decides what document the request runs before anything reads it, and its
      // refusal is the one a refused request gets.
      ...(options.trustedDocuments
        ? [
            trustedDocumentsPlugin({
              ...options.trustedDocuments,
              introspection: options.introspection,
              parseOptions: limits.parseOptions,
            }),
          ]
        : []),
      // Before the others: the operation's span is open while their hooks run.
      ...(options.tracing ? [tracingPlugin(options.tracing)] : []),
      options.landingPage ?? ApolloServerPluginLandingPageDisabled(),
      // No cache hints are used; the plugin would otherwise wrap every field resolver.
      ApolloServerPluginCacheControlDisabled(),
      ...(limits.plugins as ApolloServerPlugin<GatewayContext>[]),
      ...(options.rateLimits.settings.enabled
        ? [rateLimitsPlugin(options.rateLimits.settings, options.rateLimits.redis, options.logger)]
        : []),
      subscriptionsOverHttpPlugin(),
      ...(options.requiredScopes
        ? [scopePoliciesPlugin(options.schema, scopePolicies(options.schema, options.requiredScopes))]
        : []),
      operationLogPlugin(options.metrics),
      auditTrailPlugin(options.metrics),
      upstreamCallsExtensionPlugin(),
      ...options.lifecyclePlugins,
      ...options.plugins,
      // Last: a request answered by an identical one has been through every other plugin's hooks.
      ...options.sharedOperations.plugins(),
    ],
  });
}
