// Wires the gateway: the upstream client, Apollo Server with its plugins, the Fastify app that
// serves it over HTTP and graphql-ws on the same port. Importing this module starts nothing;
// `startGateway` listens and returns how to reach and stop it.
import type { ApolloServerPlugin } from '@apollo/server';
import type { Logger } from 'pino';
import { JwtAuthentication } from './auth/jwt-authentication.js';
import type { Config } from './config.js';
import {
  createContext,
  credentialIdentity,
  type ContextDependencies,
  type GatewayContext,
} from './context.js';
import { createErrorFormatter } from './errors.js';
import { LeasedPolling } from './fleet/leased-poller.js';
import { FleetRedis } from './fleet/redis.js';
import { FleetAnswers, FleetPersistedQueries } from './fleet/shared-cache.js';
import { createApolloServer } from './graphql/apollo-server.js';
import { SharedOperations } from './graphql/plugins/shared-operations.js';
import { ResultSerializer } from './graphql/result-serializer.js';
import { buildGatewaySchema } from './graphql/schema.js';
import { TrustedDocuments, type ReloadTrigger } from './graphql/trusted-document-list.js';
import { buildHttpApp, buildMetricsApp, GRAPHQL_PATH } from './http/app.js';
import { explorerLandingPage } from './http/explorer.js';
import { queryLimitProtection } from './graphql/query-limits.js';
import { GatewayMetrics } from './observability/metrics.js';
import { startTracing } from './observability/start-tracing.js';
import { HeldDocuments } from './subscriptions/held-documents.js';
import { LiveJobPollers } from './subscriptions/live-jobs.js';
import { serveSubscriptions, type SubscriptionServer } from './http/websocket.js';
import { UpstreamHttp } from './upstream/http.js';
import { McpEndpoint } from './mcp/mcp-endpoint.js';
import { loadOperationTools, SHIPPED_OPERATIONS } from './mcp/tool-operations.js';

export interface GatewayOptions {
  config: Config;
  /** Where the fine-tune API is: the real one, or a simulator. */
  upstreamBaseUrl: string;
  /** The gateway's own key, used for clients that send none. */
  serverApiKey: string | undefined;
  logger: Logger;
  /**
   * Apollo Server plugins of the operator's (usage reporting, tracing, an auth check): they
   * run for every operation, over HTTP and WebSocket, shared or not.
   */
  plugins?: ApolloServerPlugin<GatewayContext>[];
}

export interface RunningGateway {
  /** The GraphQL endpoint, e.g. `http://localhost:4000/graphql`. */
  url: string;
  port: number;
  /** Prometheus metrics, e.g. `http://localhost:9464/metrics` (METRICS_PORT). */
  metricsUrl: string;
  /** Reads the trusted documents again (security.trustedDocuments; nothing without). main.ts: on SIGHUP. */
  reloadTrustedDocuments(trigger: ReloadTrigger): Promise<void>;
  stop(): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const { config, logger } = options;
  const metrics = new GatewayMetrics();
  // First, as it may refuse the start (a manifest that cannot be read): nothing is open yet.
  const trustedDocuments =
    config.security.trustedDocuments &&
    (await TrustedDocuments.load({ source: config.security.trustedDocuments.source, logger, metrics }));
  const limits = queryLimitProtection(config.limits, config.security.fieldSuggestions);
  const schema = await buildGatewaySchema({ federation: config.federation.subgraph });
  // Read and checked against the schema before anything opens: a file that is no tool stops the start.
  const operationTools = config.mcp.enabled
    ? loadOperationTools(schema, config.mcp.operations ?? SHIPPED_OPERATIONS)
    : [];
  const formatError = createErrorFormatter({ fieldSuggestions: config.security.fieldSuggestions });
  const serializer = new ResultSerializer();

  // REDIS_URL: the instances of a fleet share the answers cache, APQ and subscription polling
  // (docs/fleet.md). Starts whether or not Redis answers: without it, the instance works alone.
  const fleetRedis = config.redis && new FleetRedis(config.redis, logger);
  await fleetRedis?.connect();
  // Identical queries in flight for the same credential share one execution (and, with
  // http.responseCacheTtlMs, a recent answer); every write to the upstream empties what is shared.
  const sharedOperations = new SharedOperations({
    ttlMs: config.http.responseCacheTtlMs,
    metrics,
    serializer,
    ...(fleetRedis && { fleet: new FleetAnswers(fleetRedis, config.http.responseCacheTtlMs, logger) }),
  });
  // Undefined unless an OTLP endpoint is set: then no OpenTelemetry module is even loaded.
  const tracing = await startTracing(config.telemetry.tracing, logger);
  const upstream = new UpstreamHttp({ baseUrl: options.upstreamBaseUrl, ...config.upstream }, metrics, {
    // The writer's organization's answers, on every instance before the write's answer is sent.
    onWrite: (apiKey) => sharedOperations.forgetAll(credentialIdentity(apiKey)),
  });
  const fleetPolling = fleetRedis && new LeasedPolling(fleetRedis, logger);
  const liveJobPollers = new LiveJobPollers(config.subscriptions, logger, metrics, tracing, fleetPolling);
  const heldDocuments = new HeldDocuments(
    config.subscriptions.documentBytes,
    config.subscriptions.documentBytesPerKey,
  );
  metrics.watchSubscriptionDocuments(() => heldDocuments.bytes);
  const contextDependencies: ContextDependencies = {
    http: upstream,
    metrics,
    serverApiKey: options.serverApiKey,
    logger,
    liveJobPollers,
    anonymousWrites: config.security.anonymousWrites,
    allowedHosts: new Set(config.security.allowedHosts),
    jwt:
      config.auth.identityProvider &&
      new JwtAuthentication(config.auth.identityProvider, config.auth, options.serverApiKey, logger),
    operationSettings: {
      metrics,
      budgetLimits: {
        maxUpstreamCalls: config.limits.maxUpstreamCalls,
        maxJobs: config.limits.maxJobs,
      },
      keepUpstreamCalls: config.telemetry.upstreamTrace,
      ...(tracing && { tracing: { tracing, baseUrl: new URL(options.upstreamBaseUrl) } }),
    },
  };

  // Set once listening; Apollo's drain phase closes it too.
  const live: { subscriptions?: SubscriptionServer } = {};
  const apollo = createApolloServer({
    schema,
    logger,
    metrics,
    introspection: config.security.introspection,
    landingPage: config.explorer.enabled ? explorerLandingPage(config.explorer.page) : undefined,
    heldDocuments,
    limits,
    maxBatch: config.limits.maxBatch,
    formatError,
    serializer,
    sharedOperations,
    rateLimits: { settings: config.rateLimits, redis: fleetRedis },
    ...(fleetRedis && { persistedQueriesCache: new FleetPersistedQueries(fleetRedis, logger) }),
    trustedDocuments: trustedDocuments && {
      documents: trustedDocuments,
      only: config.security.trustedDocuments?.only ?? false,
    },
    tracing,
    requiredScopes: config.auth.identityProvider && config.auth.requiredScopes,
    lifecyclePlugins: [
      {
        async serverWillStart() {
          return {
            async drainServer() {
              await live.subscriptions?.dispose();
            },
          };
        },
      },
    ],
    plugins: options.plugins ?? [],
  });
  await apollo.start();

  // AI assistants (mcp.enabled): each tool call runs through `apollo` as a GraphQL operation.
  const mcp = config.mcp.enabled
    ? new McpEndpoint({
        apollo,
        schema,
        settings: config.mcp,
        operationTools,
        trustedDocuments: trustedDocuments && {
          documents: trustedDocuments,
          only: config.security.trustedDocuments?.only ?? false,
        },
        limits: {
          maxBytes: config.limits.maxBytes,
          parseOptions: limits.parseOptions,
          validationRules: limits.validationRules,
        },
        createContext: (caller) =>
          createContext(
            {
              ...contextDependencies,
              operationSettings: { ...contextDependencies.operationSettings, keepUpstreamCalls: false },
            },
            { ...caller, transport: 'mcp' },
          ),
      })
    : undefined;

  let stopping = false;
  const app = await buildHttpApp({
    apollo,
    logger,
    metrics,
    maxRequestBytes: config.http.maxRequestBytes,
    corsOrigins: config.security.corsOrigins,
    limits: config.http,
    maxDocumentBytes: config.limits.maxBytes,
    explorer: config.explorer.enabled,
    maxBatch: config.limits.maxBatch,
    documentIds: trustedDocuments !== undefined,
    createContext: (request) =>
      createContext(contextDependencies, {
        authorization: request.headers.authorization,
        requestId: request.id,
        transport: 'http',
        host: request.headers.host,
        // Fastify's child of the gateway's pino logger, bound to the request id.
        logger: request.log as Logger,
      }),
    // Redis down is a detail, not unreadiness: the instance serves from the upstream meanwhile.
    readiness: async () => ({
      ...(await upstream.readiness()),
      ...(fleetRedis && { redis: fleetRedis.up ? 'reachable' : 'unreachable' }),
    }),
    stopping: () => stopping,
    encodedBody: (text) => serializer.encodedBody(text),
    mcp,
  });
  const metricsApp = await buildMetricsApp(metrics, logger);
  await app.listen({ port: config.port, host: config.host });
  try {
    await metricsApp.listen({ port: config.metricsPort, host: config.host });
  } catch (error) {
    await app.close();
    await fleetRedis?.close();
    throw error;
  }

  // Attached once listening: graphql-ws would print a listen failure (a port in use) as its own.
  const subscriptions = serveSubscriptions({
    httpServer: app.server,
    path: GRAPHQL_PATH,
    schema,
    apollo,
    pollers: liveJobPollers,
    maxOperationsPerSocket: config.subscriptions.perConnection,
    maxConnectionsPerAddress: config.subscriptions.connectionsPerAddress,
    maxMessageBytes: config.http.maxRequestBytes,
    maxDocumentBytes: config.limits.maxBytes,
    shutdownGraceMs: config.http.shutdownGraceMs,
    allowedOrigins: config.security.corsOrigins,
    documentIds: trustedDocuments !== undefined,
    formatError,
    createContext: (authorization, requestId, host) =>
      // Same credential rules as HTTP; no trace, as WebSocket events carry no extensions.
      createContext(
        {
          ...contextDependencies,
          operationSettings: { ...contextDependencies.operationSettings, keepUpstreamCalls: false },
        },
        { authorization, requestId, transport: 'websocket', host },
      ),
    logger,
  });
  live.subscriptions = subscriptions;
  trustedDocuments?.watch();

  const portOf = (server: typeof app.server, fallback: number) => {
    const address = server.address();
    return typeof address === 'object' && address !== null ? address.port : fallback;
  };
  const port = portOf(app.server, config.port);
  const shownHost = ['0.0.0.0', '::', ''].includes(config.host) ? 'localhost' : config.host;
  const origin = (p: number) => `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${p}`;

  return {
    url: `${origin(port)}${GRAPHQL_PATH}`,
    port,
    metricsUrl: `${origin(portOf(metricsApp.server, config.metricsPort))}/metrics`,
    reloadTrustedDocuments: async (trigger) => trustedDocuments?.reload(trigger),
    async stop() {
      stopping = true;
      // Stop accepting at once; in-flight requests may finish and subscribers are told to go,
      // both within the grace period, after which what is left is cut (the listener closes only
      // once its upgraded sockets are gone too).
      const closed = app.close();
      const subscribersGone = subscriptions.dispose();
      // A keep-alive connection goes idle once its last response is sent: close it then, not later.
      const idle = setInterval(() => app.server.closeIdleConnections(), 50);
      const grace = setTimeout(() => app.server.closeAllConnections(), config.http.shutdownGraceMs);
      try {
        await Promise.all([closed, subscribersGone]);
      } finally {
        clearInterval(idle);
        clearTimeout(grace);
      }
      await apollo.stop();
      await trustedDocuments?.close();
      await metricsApp.close();
      await upstream.close();
      // The leases this instance gave up are released first: another takes over at once.
      await fleetPolling?.settled();
      await fleetRedis?.close();
      // Last: the spans of everything above are sent before the gateway is gone.
      await tracing?.shutdown();
    },
  };
}
