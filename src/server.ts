// Builds the gateway: Apollo Server behind a plain node:http listener. Importing this module
// starts nothing; `startGateway` listens and returns how to reach and stop it.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer, HeaderMap, type HTTPGraphQLRequest } from '@apollo/server';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import cors from 'cors';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { createContext, type GatewayContext } from './context.js';
import { createErrorFormatter } from './errors.js';
import { DirectRequests } from './execution/direct-requests.js';
import { jitExecution } from './graphql/jit-executor.js';
import { JsonExecutor } from './execution/json-executor.js';
import { operationLogPlugin } from './observability/logging.js';
import { GatewayMetrics } from './observability/metrics.js';
import { queryLimitProtection } from './limits/query-limits.js';
import { buildGatewaySchema } from './graphql/schema.js';
import { LiveJobPollers } from './subscriptions/live-jobs.js';
import {
  serveSubscriptions,
  subscriptionDrainPlugin,
  subscriptionsOverHttpPlugin,
  type SubscriptionServer,
} from './subscriptions/websocket.js';
import {
  requestIdentity,
  runsSingleQuery,
  SharedOperations,
  type SharedResponse,
} from './shared-operations.js';
import { UpstreamHttp } from './upstream/http.js';
import { upstreamTracePlugin } from './observability/upstream-trace.js';

export interface GatewayOptions {
  config: Config;
  /** Where the fine-tune API is: the real one, or a simulator. */
  upstreamBaseUrl: string;
  /** The gateway's own key, used for clients that send none. */
  serverApiKey: string | undefined;
  logger: Logger;
}

export interface RunningGateway {
  /** The GraphQL endpoint, e.g. `http://localhost:4000/graphql`. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

const GRAPHQL_PATH = '/graphql';
const REQUEST_ID = /^[\w.:-]{1,128}$/;

class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(body));
}

function sendRequestError(res: ServerResponse, status: number, message: string): void {
  sendJson(res, status, { errors: [{ message, extensions: { code: 'BAD_REQUEST' } }] });
}

// Events rather than `for await`: the async iterator costs a promise per chunk, per request.
function readBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  const tooLarge = () => new RequestError(413, `Request body is larger than ${maxBytes} bytes.`);
  if (Number(req.headers['content-length']) > maxBytes) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        req.off('data', onData);
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    let ended = false;
    req.on('data', onData);
    req.once('end', () => {
      ended = true;
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    // A client that goes away mid-body: 'error' (ECONNRESET, "aborted"), then 'close' without 'end'.
    // Its doing, not the gateway's: a 400 the socket no longer takes, and no error in the log.
    const cutShort = () => {
      if (!ended) reject(new RequestError(400, 'The request body was cut short.'));
    };
    req.once('error', cutShort);
    req.once('close', cutShort);
  });
}

function parseBody(text: string, contentType: string | undefined): unknown {
  if (text === '') return undefined;
  if (!contentType?.toLowerCase().includes('json')) return text;
  try {
    return JSON.parse(text);
  } catch {
    throw new RequestError(400, 'Request body is not valid JSON.');
  }
}

function toHeaderMap(req: IncomingMessage): HeaderMap {
  const headers = new HeaderMap();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  return headers;
}

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const { config, logger } = options;
  const metrics = new GatewayMetrics();
  const limits = queryLimitProtection(config.queryLimits, config.fieldSuggestions);

  const schema = await buildGatewaySchema({ federation: config.federationSubgraph });
  const formatError = createErrorFormatter({ fieldSuggestions: config.fieldSuggestions });
  // Set once the listener exists; Apollo's drain phase closes it.
  const live: { subscriptions?: SubscriptionServer } = {};
  const apollo = new ApolloServer<GatewayContext>({
    // Apollo's executor hook: operations run compiled by graphql-jit (see execution/).
    gateway: jitExecution(schema),
    introspection: config.introspection,
    includeStacktraceInErrorResponses: false,
    // main.ts owns SIGTERM/SIGINT: it stops the listener first, then Apollo, then exits.
    stopOnTerminationSignals: false,
    // csrfPrevention is on by default in Apollo Server 5: GETs and simple POSTs need a preflight header.
    formatError,
    logger,
    validationRules: limits.validationRules,
    parseOptions: limits.parseOptions,
    plugins: [
      config.sandbox
        ? ApolloServerPluginLandingPageLocalDefault({ embed: true, includeCookies: false })
        : ApolloServerPluginLandingPageDisabled(),
      // No cache hints are used; the plugin would otherwise wrap every field resolver.
      ApolloServerPluginCacheControlDisabled(),
      ...limits.plugins,
      operationLogPlugin(metrics),
      upstreamTracePlugin(),
      subscriptionDrainPlugin(() => live.subscriptions),
      subscriptionsOverHttpPlugin(),
    ],
  });
  await apollo.start();

  // Identical queries in flight for the same credential share one execution and response (and,
  // with CACHE_TTL_MS, a recent answer); every write to the upstream empties the cache.
  const sharedOperations = new SharedOperations(config.cacheTtlMs);
  const upstream = new UpstreamHttp(
    { baseUrl: options.upstreamBaseUrl, ...config.upstreamSettings },
    metrics,
    { onWrite: () => sharedOperations.forgetAll() },
  );
  const contextDependencies = {
    http: upstream,
    metrics,
    serverApiKey: options.serverApiKey,
    logger,
    traceUpstream: config.upstreamTrace,
    loaderSettings: { metricsConcurrency: config.metricsConcurrency },
    jobWriteSettings: {
      // Same budget as a GET's retries; only writes whose answer was lost are retried.
      attempts: 1 + config.upstreamSettings.retryLimit,
      backoffLimitMs: config.upstreamSettings.backoffLimitMs,
    },
  };
  let stopping = false;
  const liveJobPollers = new LiveJobPollers(config.subscriptionPoll, logger);
  // Plain queries are answered straight to JSON; the rest, and every error, by Apollo Server.
  const directRequests = config.directExecution
    ? new DirectRequests(
        new JsonExecutor(schema, {
          validationRules: limits.validationRules,
          parseOptions: limits.parseOptions,
          costCheck: (document, operationName) => limits.costCheck(schema, document, operationName),
        }),
        metrics,
      )
    : undefined;
  const corsMiddleware = cors({ origin: config.corsOrigins, maxAge: 600 });

  /** Runs a request's operation, sharing it when it is a query (see shared-operations.ts). */
  async function runGraphQL(
    req: IncomingMessage,
    search: string,
    bodyText: string,
    identity: string,
    requestId: string,
  ): Promise<SharedResponse> {
    const body = parseBody(bodyText, req.headers['content-type']);
    const direct = directRequests?.match(req, body);
    const execute = async () => {
      const context = createContext(contextDependencies, {
        authorization: req.headers.authorization,
        requestId,
      });
      const answered = direct && (await directRequests!.answer(direct, context));
      if (answered) return answered;
      const httpGraphQLRequest: HTTPGraphQLRequest = {
        method: req.method?.toUpperCase() ?? 'GET',
        headers: toHeaderMap(req),
        search,
        body,
      };
      return apollo.executeHTTPGraphQLRequest({ httpGraphQLRequest, context: async () => context });
    };
    const shared = direct !== undefined || runsSingleQuery(req, search, body);
    return sharedOperations.run(shared ? identity : undefined, execute);
  }

  async function handleGraphQL(req: IncomingMessage, res: ServerResponse, search: string): Promise<void> {
    // A caller's request id is kept so logs can be joined across services; otherwise we make one.
    const incomingId = req.headers['x-request-id'];
    const requestId =
      typeof incomingId === 'string' && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    res.setHeader('x-request-id', requestId);
    const bodyText = await readBody(req, config.maxRequestBytes);
    // An identical request in flight (or, with CACHE_TTL_MS, a recent answer) serves this one
    // before anything else is done for it; a streamed answer cannot be shared and runs again.
    const identity = requestIdentity(req, search, bodyText);
    const inFlight = sharedOperations.join(identity);
    const { response, bytes, joined, cached } =
      (inFlight && (await inFlight)) ?? (await runGraphQL(req, search, bodyText, identity, requestId));
    if (cached) metrics.cachedResponse();
    else if (joined) metrics.sharedOperationJoined();

    res.statusCode = response.status ?? 200;
    for (const [name, value] of response.headers) res.setHeader(name, value);
    if (response.body.kind === 'complete') {
      res.end(bytes ?? response.body.string);
      return;
    }
    for await (const chunk of response.body.asyncIterator) res.write(chunk);
    res.end();
  }

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    search: string,
  ): Promise<void> {
    if (path === '/') {
      res.writeHead(302, { location: GRAPHQL_PATH }).end();
      return;
    }
    // Probes and metrics, for the platform that runs the gateway (not behind CORS).
    if (path === '/healthz') {
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (path === '/readyz') {
      if (stopping) {
        sendJson(res, 503, { status: 'stopping' });
        return;
      }
      const readiness = await upstream.readiness();
      sendJson(res, readiness.ready ? 200 : 503, {
        status: readiness.ready ? 'ready' : 'not ready',
        upstream: readiness.upstream,
      });
      return;
    }
    if (path === '/metrics') {
      res.setHeader('content-type', metrics.registry.contentType);
      res.end(await metrics.registry.metrics());
      return;
    }
    if (path !== GRAPHQL_PATH) {
      sendJson(res, 404, {
        errors: [
          { message: `Not found; GraphQL is served at ${GRAPHQL_PATH}.`, extensions: { code: 'NOT_FOUND' } },
        ],
      });
      return;
    }
    if (req.method === 'OPTIONS') {
      corsMiddleware(req, res, () => res.writeHead(204).end());
      return;
    }
    if (req.headers.origin === undefined) {
      // What the cors middleware does for a request without Origin (a server, curl), without it.
      res.setHeader('vary', 'Origin');
    } else {
      await new Promise<void>((resolve, reject) =>
        corsMiddleware(req, res, (error?: unknown) => (error ? reject(error) : resolve())),
      );
    }
    await handleGraphQL(req, res, search);
  }

  const KNOWN_PATHS = new Set([GRAPHQL_PATH, '/healthz', '/readyz', '/metrics']);
  const server = createServer((req, res) => {
    const arrived = performance.now();
    let target = req.url ?? '/';
    // The absolute form (`http://host/graphql`, from some proxies) is normalized once.
    if (!target.startsWith('/')) {
      try {
        const url = new URL(target);
        target = `${url.pathname}${url.search}`;
      } catch {
        target = '/not-a-url';
      }
    }
    const queryAt = target.indexOf('?');
    const path = queryAt < 0 ? target : target.slice(0, queryAt);
    const search = queryAt < 0 ? '' : target.slice(queryAt);
    const label = KNOWN_PATHS.has(path) ? path : 'other';
    const done = metrics.httpRequestArrived();
    res.once('close', () => {
      done();
      if (res.writableFinished) metrics.httpRequest(label, (performance.now() - arrived) / 1000);
      else metrics.httpRequestAborted(label);
    });
    handle(req, res, path, search).catch((error: unknown) => {
      if (error instanceof RequestError) {
        if (!res.headersSent) sendRequestError(res, error.status, error.message);
        else res.destroy();
        return;
      }
      logger.error({ err: error }, 'request failed outside GraphQL execution');
      if (!res.headersSent) {
        sendJson(res, 500, {
          errors: [{ message: 'Internal server error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }],
        });
      } else {
        res.destroy();
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Attached once listening: graphql-ws would print a listen failure (a port in use) as its own.
  const subscriptions = serveSubscriptions({
    httpServer: server,
    path: GRAPHQL_PATH,
    schema,
    pollers: liveJobPollers,
    maxOperationsPerSocket: config.subscriptionsPerConnection,
    maxMessageBytes: config.maxRequestBytes,
    shutdownGraceMs: config.shutdownGraceMs,
    allowedOrigins: config.corsOrigins,
    operationLimits: limits,
    introspection: config.introspection,
    formatError,
    // Same credential rules as HTTP; no trace, as WebSocket events carry no extensions.
    createContext: (authorization, requestId) =>
      createContext(
        { ...contextDependencies, traceUpstream: false, liveJobPollers },
        { authorization, requestId },
      ),
    logger,
  });
  live.subscriptions = subscriptions;

  const { port } = server.address() as AddressInfo;
  const shownHost = ['0.0.0.0', '::', ''].includes(config.host) ? 'localhost' : config.host;

  return {
    url: `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}${GRAPHQL_PATH}`,
    port,
    async stop() {
      stopping = true;
      // Stop accepting at once; in-flight requests may finish and subscribers are told to go,
      // both within the grace period, after which what is left is cut (the listener closes only
      // once its upgraded sockets are gone too).
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const subscribersGone = subscriptions.dispose();
      // A keep-alive connection goes idle once its last response is sent: close it then, not later.
      server.closeIdleConnections();
      const idle = setInterval(() => server.closeIdleConnections(), 50);
      const grace = setTimeout(() => server.closeAllConnections(), config.shutdownGraceMs);
      await Promise.all([closed, subscribersGone]);
      clearInterval(idle);
      clearTimeout(grace);
      await apollo.stop();
      await upstream.close();
    },
  };
}
