// The HTTP side of the gateway, on Fastify: GraphQL at /graphql through Apollo Server's Fastify
// integration, CORS there, the probes and /metrics beside it, request ids, the body limit, and
// every error as a GraphQL-shaped JSON body with a code. Fastify's error, 404 and framework
// error handlers answer what never reaches Apollo Server.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { fastifyApolloHandler } from '@as-integrations/fastify';
import type { ApolloServer } from '@apollo/server';
import cors from '@fastify/cors';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type onSendHookHandler,
  type preHandlerHookHandler,
} from 'fastify';
import type { Logger } from 'pino';
import type { HttpLimits } from '../config.js';
import type { GatewayContext } from '../context.js';
import { documentIdAsPersistedQuery } from '../graphql/plugins/trusted-documents.js';
import { MCP_PATH, type McpEndpoint } from '../mcp/mcp-endpoint.js';
import { batchTooLarge, documentTooLarge } from '../graphql/query-limits.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { Readiness } from '../upstream/http.js';
import { ConnectionsPerAddress } from './connections-per-address.js';
import { registerExplorer } from './explorer.js';

export const GRAPHQL_PATH = '/graphql';
/** What a caller's own `x-request-id` may be for the gateway to keep it (and send it upstream). */
const REQUEST_ID = /^[\w.:-]{1,128}$/;
const KNOWN_PATHS = new Set([GRAPHQL_PATH, MCP_PATH, '/healthz', '/readyz']);

export interface HttpAppOptions {
  apollo: ApolloServer<GatewayContext>;
  logger: Logger;
  metrics: GatewayMetrics;
  maxRequestBytes: number;
  corsOrigins: string[];
  limits: HttpLimits;
  /** The largest GraphQL document accepted (limits.maxBytes), checked before Apollo parses it. */
  maxDocumentBytes: number;
  /** Operations one request may batch (limits.maxBatch). */
  maxBatch: number;
  /** Serve GraphiQL at /explorer (where a landing page is shown: explorer.enabled). */
  explorer: boolean;
  /** Trusted documents are configured: a POSTed `{ documentId }` names a listed operation. */
  documentIds: boolean;
  /** The context of one GraphQL request, from its headers. */
  createContext(request: FastifyRequest): Promise<GatewayContext>;
  /** The upstream's, and with REDIS_URL whether Redis is reachable (a detail: still ready). */
  readiness(): Promise<Readiness & { redis?: string }>;
  /** True once the gateway is stopping: /readyz says so before the listener closes. */
  stopping(): boolean;
  /** The bytes of a response body already encoded for an earlier response, if kept. */
  encodedBody(text: string): Buffer | undefined;
  /** AI assistants' tools at /mcp (mcp.enabled); undefined: not served. */
  mcp: McpEndpoint | undefined;
}

/** Headers a `Request` built here must not carry: they describe the connection, not the message. */
const CONNECTION_HEADERS = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'keep-alive',
]);

/** The MCP SDK's transport reads web-standard requests: the headers, the body Fastify parsed. */
function webRequest(request: FastifyRequest): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined || CONNECTION_HEADERS.has(name)) continue;
    headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  return new Request(`http://localhost${MCP_PATH}`, { method: request.method, headers });
}

function errorBody(message: string, code: string) {
  return { errors: [{ message, extensions: { code } }] };
}

/** A JSON-RPC error answer to no request in particular (/mcp), with the gateway's code in `data`. */
function jsonRpcError(
  code: number,
  message: string,
  gatewayCode: string,
  data: Record<string, unknown> = {},
) {
  return { jsonrpc: '2.0', error: { code, message, data: { ...data, code: gatewayCode } }, id: null };
}

/** What Fastify refused before the handler ran, as the client should read it. */
function requestError(error: FastifyError, maxRequestBytes: number): { status: number; message: string } {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, message: `Request body is larger than ${maxRequestBytes} bytes.` };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, message: 'Request body is not valid JSON.' };
    default:
      return { status: error.statusCode ?? 400, message: error.message };
  }
}

function limitConnectionsPerAddress(server: Server, max: number): void {
  const open = new ConnectionsPerAddress(max);
  server.on('connection', (socket: Socket) => {
    if (!open.admit(socket.remoteAddress ?? '', socket)) socket.destroy();
  });
}

/** The documents a GraphQL request carries: one, or each of a batch (a POSTed array). */
function documentsOf(request: FastifyRequest): unknown[] {
  if (request.method === 'GET') return [(request.query as Record<string, unknown> | undefined)?.query];
  const body = request.body as unknown;
  const operations = Array.isArray(body) ? body : [body];
  return operations.map((operation) => (operation as Record<string, unknown> | null | undefined)?.query);
}

function refusedBeforeParsing(request: FastifyRequest, options: HttpAppOptions) {
  if (Array.isArray(request.body) && options.maxBatch > 1 && request.body.length > options.maxBatch) {
    return batchTooLarge(options.maxBatch);
  }
  const tooLarge = documentsOf(request).some(
    (query) => typeof query === 'string' && Buffer.byteLength(query) > options.maxDocumentBytes,
  );
  return tooLarge ? documentTooLarge(options.maxDocumentBytes) : undefined;
}

export async function buildHttpApp(options: HttpAppOptions): Promise<FastifyInstance> {
  const { metrics, maxRequestBytes } = options;
  const app = Fastify({
    // pino, as the gateway's own lines: each request's `request.log` is a child bound to its id.
    loggerInstance: options.logger as FastifyBaseLogger,
    // One line per GraphQL operation is logged by Apollo's plugin; a line per request would double it.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    // A caller's request id is kept so logs can be joined across services; otherwise we make one.
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    },
    bodyLimit: maxRequestBytes,
    // A slow client is cut: headers that trickle in (slowloris), a body sent a byte at a time,
    // a socket that never sends anything, an idle keep-alive connection. Node checks the first
    // three every second here (every 30 s by default, which let them live on).
    http: {
      headersTimeout: options.limits.headersTimeoutMs,
      requestTimeout: options.limits.requestTimeoutMs,
      connectionsCheckingInterval: 1_000,
    },
    requestTimeout: options.limits.requestTimeoutMs,
    keepAliveTimeout: options.limits.keepAliveTimeoutMs,
    // What Node's HTTP parser refuses (headers past its size, a 20 KB query string; a request
    // cut by the timeouts) gets a GraphQL-shaped body too, then the socket is destroyed, as
    // Node's own handler does: `end()` alone half-closes it, and a client that neither reads nor
    // closes would keep it (a file descriptor, a place under http.maxConnections) for good. An
    // answer this small is in the kernel once written, and leaves before the FIN.
    clientErrorHandler: (error, socket) => {
      const code = (error as NodeJS.ErrnoException).code;
      const [status, message] =
        code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'The request did not arrive in time.']
          : code === 'HPE_HEADER_OVERFLOW'
            ? [431, 'The request line and headers are too large: send a long query as a POST body.']
            : [400, 'The request is not valid HTTP.'];
      const body = JSON.stringify(errorBody(message, 'BAD_REQUEST'));
      // A reset socket, or one already ended, has no one to read an answer.
      if (code !== 'ECONNRESET' && socket.writable) {
        socket.write(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
      socket.destroy();
    },
    // A URL Fastify cannot route (`/graphql/%zz`) or a request it refuses before any route.
    frameworkErrors: (error, _request, reply) => {
      void (reply as FastifyReply).code(400).send(errorBody(error.message, 'BAD_REQUEST'));
    },
    // The absolute form (`http://host/graphql`, from some proxies) is routed by its path.
    rewriteUrl: (req) => {
      const url = req.url ?? '/';
      if (url.startsWith('/')) return url;
      try {
        const parsed = new URL(url);
        return `${parsed.pathname}${parsed.search}`;
      } catch {
        return '/not-a-url';
      }
    },
  });

  // Bodies Fastify does not parse (text/plain, forms) reach Apollo Server as text: its CSRF
  // check and its own messages answer them, as the GraphQL-over-HTTP spec has it.
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));

  // Hooks in callback form: an async hook costs a promise per request and hook.
  app.addHook('onRequest', (request, reply, next) => {
    reply.header('x-request-id', request.id);
    const arrived = performance.now();
    const done = metrics.httpRequestArrived();
    const path = request.url.split('?', 1)[0]!;
    const label = KNOWN_PATHS.has(path) ? path : 'other';
    reply.raw.once('close', () => {
      done();
      if (reply.raw.writableFinished) metrics.httpRequest(label, (performance.now() - arrived) / 1000);
      else metrics.httpRequestAborted(label);
    });
    next();
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.statusCode !== undefined && error.statusCode < 500) {
      const { status, message } = requestError(error, maxRequestBytes);
      return reply.code(status).send(errorBody(message, 'BAD_REQUEST'));
    }
    request.log.error({ err: error }, 'request failed outside GraphQL execution');
    return reply.code(500).send(errorBody('Internal server error.', 'INTERNAL_SERVER_ERROR'));
  });
  app.setNotFoundHandler((_request, reply) =>
    reply.code(404).send(errorBody(`Not found; GraphQL is served at ${GRAPHQL_PATH}.`, 'NOT_FOUND')),
  );

  app.get('/', (_request, reply) => reply.redirect(GRAPHQL_PATH, 302));
  if (options.explorer) registerExplorer(app);
  // Probes, for the platform that runs the gateway (not behind CORS); /metrics has a port of its own.
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (options.stopping()) return reply.code(503).send({ status: 'stopping' });
    const readiness = await options.readiness();
    return reply.code(readiness.ready ? 200 : 503).send({
      status: readiness.ready ? 'ready' : 'not ready',
      upstream: readiness.upstream,
      ...(readiness.redis !== undefined && { redis: readiness.redis }),
    });
  });

  // Past this many sockets, new ones are closed as they arrive: a flood of idle sockets cannot
  // take the file descriptors the gateway needs for its upstream calls and its probes.
  app.server.maxConnections = options.limits.maxConnections;
  // And past this many from one address, its new ones are closed: a flood from one client leaves
  // room for the others, and for the probes.
  limitConnectionsPerAddress(app.server, options.limits.maxConnectionsPerAddress);

  await app.register(async (graphql) => {
    await graphql.register(cors, { origin: options.corsOrigins, maxAge: 600 });
    // The integration reads the query string off a URL built on the Host header: a Host no URL
    // can carry (`a b`, `%`, empty) is the client's error, not a 500.
    graphql.addHook('onRequest', (request, reply, next) => {
      if (URL.canParse(`${request.protocol}://${request.hostname}/`)) return next();
      reply.code(400).send(errorBody('The Host header is not a valid host.', 'BAD_REQUEST'));
    });
    // GET runs queries only (Apollo Server refuses a mutation over GET before executing it) and
    // anonymous access only reads, so a cross-site GET can change nothing, and CORS keeps its
    // answer from the page that sent it. urql's, graphql-request's and curl's GET queries work
    // as they are; simple POSTs, which could carry a mutation, keep Apollo's CSRF check.
    graphql.addHook('onRequest', (request, _reply, next) => {
      if (request.method === 'GET') request.headers['apollo-require-preflight'] ??= 'get';
      next();
    });
    // A batch past limits.maxBatch, or a document past limits.maxBytes, is refused before Apollo
    // Server parses anything (its token limit counts neither whitespace nor comments, so a padded
    // document would be parsed, and held).
    const refuseBeforeParsing: preHandlerHookHandler = (request, reply, next) => {
      const error = refusedBeforeParsing(request, options);
      if (error === undefined) return next();
      reply
        .code(400)
        .send({ errors: [{ message: error.message, extensions: { ...error.extensions, http: undefined } }] });
    };
    // Apollo Server reads no `documentId`: it is carried in the APQ extension, which the
    // trusted-documents plugin resolves (POST only; a GET names its document by `extensions`).
    const documentIds: preHandlerHookHandler = (request, _reply, next) => {
      if (request.method === 'POST') {
        for (const operation of Array.isArray(request.body) ? request.body : [request.body])
          documentIdAsPersistedQuery(operation);
      }
      next();
    };
    // A shared answer's body goes out as the bytes already encoded for an earlier response.
    const encodedBody: onSendHookHandler = (_request, _reply, payload, next) => {
      next(null, typeof payload === 'string' ? (options.encodedBody(payload) ?? payload) : payload);
    };
    graphql.route({
      method: ['GET', 'POST'],
      url: GRAPHQL_PATH,
      preHandler: options.documentIds ? [refuseBeforeParsing, documentIds] : [refuseBeforeParsing],
      onSend: encodedBody,
      handler: fastifyApolloHandler(options.apollo, {
        context: async (request) => options.createContext(request),
      }),
    });
    // AI assistants (src/mcp/): the same CORS and Host check, none of GraphQL's own hooks.
    const { mcp } = options;
    if (mcp !== undefined) {
      // What Fastify refuses before the handler (JSON that does not parse, a body past
      // http.maxRequestBytes) is answered in JSON-RPC's shape, which an MCP client reads.
      const mcpErrorHandler = (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
        if (error.statusCode === undefined || error.statusCode >= 500) {
          request.log.error({ err: error }, 'request failed outside GraphQL execution');
          return reply
            .code(500)
            .send(jsonRpcError(-32603, 'Internal server error.', 'INTERNAL_SERVER_ERROR'));
        }
        const { status, message } = requestError(error, maxRequestBytes);
        const unparsed = ['FST_ERR_CTP_INVALID_JSON_BODY', 'FST_ERR_CTP_EMPTY_JSON_BODY'].includes(
          error.code,
        );
        const code = unparsed ? -32700 : -32600;
        return reply.code(status).send(jsonRpcError(code, message, 'BAD_REQUEST'));
      };
      graphql.post(MCP_PATH, { errorHandler: mcpErrorHandler }, async (request, reply) => {
        // A JSON-RPC batch runs its tool calls at once, each an operation: no more of them than
        // limits.maxBatch lets a GraphQL batch carry (the SDK alone allows 100).
        if (Array.isArray(request.body) && request.body.length > options.maxBatch) {
          const { message, extensions } = batchTooLarge(options.maxBatch);
          return reply
            .code(400)
            .send(jsonRpcError(-32600, message, String(extensions.code), { ...extensions, http: undefined }));
        }
        const response = await mcp.handle(webRequest(request), request.body, {
          authorization: request.headers.authorization,
          host: request.headers.host,
          requestId: request.id,
          logger: request.log as Logger,
        });
        response.headers.forEach((value, name) => void reply.header(name, value));
        return reply.code(response.status).send(Buffer.from(await response.arrayBuffer()));
      });
      // Stateless: no session to open a stream on (GET) or to end (DELETE), as the SDK's own
      // stateless servers answer.
      graphql.route({
        method: ['GET', 'DELETE'],
        url: MCP_PATH,
        handler: async (_request, reply) =>
          reply
            .code(405)
            .header('allow', 'POST')
            .send(
              jsonRpcError(
                -32000,
                'Method not allowed: this MCP server is stateless; POST each message.',
                'BAD_REQUEST',
              ),
            ),
      });
    }
  });
  return app;
}

/**
 * `/metrics` (Prometheus text) on a port of its own: the API port may face the internet, the
 * metrics port faces the platform that scrapes it.
 */
export async function buildMetricsApp(metrics: GatewayMetrics, logger: Logger): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  app.get('/metrics', async (_request, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );
  app.setNotFoundHandler((_request, reply) =>
    reply.code(404).send(errorBody('Not found; this port serves /metrics only.', 'NOT_FOUND')),
  );
  return app;
}
