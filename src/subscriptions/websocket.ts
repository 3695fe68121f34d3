// GraphQL subscriptions over WebSocket (the graphql-ws protocol) on the HTTP server's own port
// and path: `ws` takes the upgrade requests, graphql-ws runs the protocol with the same schema
// and context rules as HTTP, the same introspection setting, and errors formatted by the same
// `formatError`.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { ApolloServerPlugin } from '@apollo/server';
import {
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type ParseOptions,
  type ValidationRule,
} from 'graphql';
import { unwrapResolverError } from '@apollo/server/errors';
import { useServer } from 'graphql-ws/use/ws';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { GatewayContext } from '../context.js';
import { UpstreamError } from '../upstream/errors.js';
import type { LiveJobPollers } from './live-jobs.js';

export interface SubscriptionServerOptions {
  httpServer: Server;
  path: string;
  schema: GraphQLSchema;
  pollers: LiveJobPollers;
  /** The most operations one socket may run at once; more are refused with BAD_REQUEST. */
  maxOperationsPerSocket: number;
  /** The largest message a client may send, in bytes. */
  maxMessageBytes: number;
  /** How long `dispose` waits for peers to answer their close before cutting them (SHUTDOWN_GRACE_MS). */
  shutdownGraceMs: number;
  /** The query limits HTTP operations get (src/query-limits.ts), applied to socket operations too. */
  operationLimits: OperationLimits;
  /** Whether introspection is allowed (GRAPHQL_INTROSPECTION), as over HTTP. */
  introspection: boolean;
  /** The errors' formatting over HTTP (src/errors.ts), so the socket's errors read the same. */
  formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError;
  /** Browser origins allowed besides the gateway's own (CORS_ORIGINS). */
  allowedOrigins: readonly string[];
  /** The context of one subscription, from the caller's `Authorization` (or none). */
  createContext(authorization: string | undefined, requestId: string): GatewayContext;
  logger: Logger;
}

export interface OperationLimits {
  validationRules: readonly ValidationRule[];
  parseOptions: ParseOptions;
  costError(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Record<string, unknown>,
    operationName: string | null | undefined,
  ): GraphQLError | undefined;
}

export interface SubscriptionServer {
  /**
   * Closes every socket (1001, going away), stops the pollers and the WebSocket server; a peer
   * that has not answered its close within `shutdownGraceMs` is cut.
   */
  dispose(): Promise<void>;
}

/**
 * A subscription sent over plain HTTP gets a clear 400 (`BAD_REQUEST`) that says where
 * subscriptions are served, instead of running without its stream.
 */
export function subscriptionsOverHttpPlugin(): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation }) {
          if (operation?.operation !== 'subscription') return;
          throw new GraphQLError(
            'Subscriptions are served over WebSocket (graphql-ws protocol) at this same URL, not over HTTP.',
            { extensions: { code: 'BAD_REQUEST', http: { status: 400 } } },
          );
        },
      };
    },
  };
}

/** Apollo's drain-server pattern: stopping Apollo also closes the WebSocket side. */
export function subscriptionDrainPlugin(server: () => SubscriptionServer | undefined): ApolloServerPlugin {
  return {
    async serverWillStart() {
      return {
        async drainServer() {
          await server()?.dispose();
        },
      };
    },
  };
}

/**
 * The key a WebSocket client sends: `Authorization` in the connection parameters (browsers
 * cannot set headers on a WebSocket), else the upgrade request's header.
 */
function authorizationOf(
  connectionParams: Readonly<Record<string, unknown>> | undefined,
  header: string | undefined,
): string | undefined {
  const entry = Object.entries(connectionParams ?? {}).find(
    ([name]) => name.toLowerCase() === 'authorization',
  );
  if (entry === undefined || entry[1] === undefined || entry[1] === null) return header;
  // Anything but a string is a malformed credential, refused like a malformed header.
  return typeof entry[1] === 'string' ? entry[1] : `(${typeof entry[1]})`;
}

/** No Origin (not a browser), the gateway's own origin (its Sandbox page), or an allowed one. */
function originAllowed(
  origin: string | undefined,
  host: string | undefined,
  allowed: readonly string[],
): boolean {
  if (!origin) return true;
  if (allowed.includes(origin)) return true;
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

function withCode(error: GraphQLError, code: string): GraphQLError {
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    extensions: { ...error.extensions, code },
  });
}

/**
 * Parse, validation and query-limit errors, coded as Apollo codes them over HTTP (formatError
 * then recodes a limit's as QUERY_LIMIT_EXCEEDED).
 */
function documentErrors(
  schema: GraphQLSchema,
  limits: OperationLimits,
  introspection: boolean,
  payload: { query: string; variables?: Record<string, unknown> | null; operationName?: string | null },
): readonly GraphQLError[] | undefined {
  let document;
  try {
    document = parse(payload.query, limits.parseOptions);
  } catch (error) {
    if (error instanceof GraphQLError) return [withCode(error, 'GRAPHQL_PARSE_FAILED')];
    throw error;
  }
  const rules = [
    ...specifiedRules,
    ...limits.validationRules,
    ...(introspection ? [] : [NoSchemaIntrospectionCustomRule]),
  ];
  const errors = validate(schema, document, rules);
  if (errors.length > 0) return errors.map((e) => withCode(e, 'GRAPHQL_VALIDATION_FAILED'));
  const costError = limits.costError(schema, document, payload.variables ?? {}, payload.operationName);
  return costError ? [costError] : undefined;
}

export function serveSubscriptions(options: SubscriptionServerOptions): SubscriptionServer {
  const { logger, pollers } = options;
  const formatted = (errors: readonly GraphQLError[]) =>
    errors.map((error) => {
      // The client sees INTERNAL_SERVER_ERROR only: what went wrong goes to the log, as over HTTP.
      const original = unwrapResolverError(error);
      if (!(original instanceof GraphQLError) && !(original instanceof UpstreamError)) {
        logger.error({ err: original, path: error.path }, 'unexpected error in a subscription');
      }
      return options.formatError(error.toJSON(), error);
    });
  const wsServer = new WebSocketServer({
    server: options.httpServer,
    path: options.path,
    // ws would otherwise accept messages up to 100 MiB.
    maxPayload: options.maxMessageBytes,
    // Browsers do not apply CORS to WebSockets: without this check any web page could subscribe
    // with the gateway's own key. Non-browser clients send no Origin.
    verifyClient: ({ origin, req }: { origin: string | undefined; req: IncomingMessage }) =>
      originAllowed(origin, req.headers.host, options.allowedOrigins),
  });
  const server = useServer(
    {
      schema: options.schema,
      context: (ctx) =>
        options.createContext(
          authorizationOf(ctx.connectionParams, ctx.extra.request.headers.authorization),
          randomUUID(),
        ),
      onConnect: () => {
        logger.debug('subscription client connected');
      },
      onSubscribe: (ctx, id, payload) => {
        // Each distinct job watched is a poller: one socket may not start them without bound.
        // graphql-ws has already reserved this operation's id, so it counts itself.
        if (Object.keys(ctx.subscriptions).length > options.maxOperationsPerSocket) {
          return [
            new GraphQLError(
              `At most ${options.maxOperationsPerSocket} operations at once on one connection; open another connection or end some.`,
              { extensions: { code: 'BAD_REQUEST' } },
            ),
          ];
        }
        logger.info(
          { operationName: payload.operationName ?? null, subscriptionId: id },
          'subscription started',
        );
        // Valid documents are left to graphql-ws, which parses and validates them as usual.
        return documentErrors(options.schema, options.operationLimits, options.introspection, payload);
      },
      onComplete: (_ctx, id, payload) => {
        logger.info(
          { operationName: payload.operationName ?? null, subscriptionId: id },
          'subscription ended',
        );
      },
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors ? { ...result, errors: formatted(result.errors) } : undefined,
      onError: (_ctx, _id, _payload, errors) => formatted(errors),
    },
    wsServer,
  );
  // graphql-ws prints a socket's error (a message over MAX_REQUEST_BYTES, a bad frame) with its
  // stack to stderr, which any client can repeat at will. ws has already closed such a socket
  // (1009, 1002): the error is the client's, and goes to the log as one line.
  wsServer.on('connection', (socket) => {
    socket.removeAllListeners('error');
    socket.on('error', (error) => {
      logger.warn({ reason: error.message }, 'WebSocket client error; connection closed');
      if (socket.readyState === socket.OPEN) socket.close(1011, 'Internal server error');
    });
  });
  let disposed: Promise<void> | undefined;
  return {
    dispose() {
      // Once only: both the gateway's stop() and Apollo's drain phase call it.
      disposed ??= (async () => {
        // ws waits up to 30 s for a peer's answer to the close frame; we wait the grace period.
        const cut = setTimeout(() => {
          for (const socket of wsServer.clients) socket.terminate();
        }, options.shutdownGraceMs);
        try {
          await server.dispose();
        } finally {
          clearTimeout(cut);
          pollers.stopAll();
        }
      })();
      return disposed;
    },
  };
}
