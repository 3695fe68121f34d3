// Apollo Server, the one way every GraphQL operation is run, over HTTP and over WebSocket: the
// gateway's plugins (limits, the operation log, the upstream trace, sharing identical queries)
// and an operator's, graphql-jit behind the executor hook, and the result serializer behind
// `stringifyResult`.
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import type { GraphQLFormattedError, GraphQLSchema } from 'graphql';
import type { Logger } from 'pino';
import type { GatewayContext } from '../context.js';
import type { queryLimitProtection } from '../limits/query-limits.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { jitExecution } from './jit-executor.js';
import { operationLogPlugin } from './plugins/operation-log.js';
import type { SharedOperations } from './plugins/shared-operations.js';
import { subscriptionsOverHttpPlugin } from './plugins/subscriptions-over-http.js';
import { upstreamTracePlugin } from './plugins/upstream-trace.js';
import type { ResultSerializer } from './result-serializer.js';

export interface GatewayApolloOptions {
  schema: GraphQLSchema;
  logger: Logger;
  metrics: GatewayMetrics;
  introspection: boolean;
  sandbox: boolean;
  limits: ReturnType<typeof queryLimitProtection>;
  formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError;
  serializer: ResultSerializer;
  sharedOperations: SharedOperations;
  /** Server-level plugins of the gateway's own (the drain of its listeners). */
  lifecyclePlugins: ApolloServerPlugin<GatewayContext>[];
  /** An operator's plugins: they see every operation, before the shared answers are looked up. */
  plugins: ApolloServerPlugin<GatewayContext>[];
}

export function createApolloServer(options: GatewayApolloOptions): ApolloServer<GatewayContext> {
  const { limits } = options;
  return new ApolloServer<GatewayContext>({
    // Apollo's executor hook: operations run compiled by graphql-jit (see jit-executor.ts).
    gateway: jitExecution(options.schema),
    introspection: options.introspection,
    includeStacktraceInErrorResponses: false,
    // main.ts owns SIGTERM/SIGINT: it stops the listener first, then Apollo, then exits.
    stopOnTerminationSignals: false,
    // csrfPrevention is on by default in Apollo Server 5: GETs and simple POSTs need a preflight header.
    formatError: options.formatError,
    stringifyResult: options.serializer.stringify,
    logger: options.logger,
    validationRules: limits.validationRules,
    parseOptions: limits.parseOptions,
    plugins: [
      options.sandbox
        ? ApolloServerPluginLandingPageLocalDefault({ embed: true, includeCookies: false })
        : ApolloServerPluginLandingPageDisabled(),
      // No cache hints are used; the plugin would otherwise wrap every field resolver.
      ApolloServerPluginCacheControlDisabled(),
      ...(limits.plugins as ApolloServerPlugin<GatewayContext>[]),
      subscriptionsOverHttpPlugin(),
      operationLogPlugin(options.metrics),
      upstreamTracePlugin(),
      ...options.lifecyclePlugins,
      ...options.plugins,
      // Last: a request answered by an identical one has been through every other plugin's hooks.
      ...options.sharedOperations.plugins(),
    ],
  });
}
