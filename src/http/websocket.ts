// GraphQL over WebSocket (the graphql-ws protocol) on the HTTP server's own port and path. Every
// operation a socket sends runs once through Apollo Server's request pipeline, as over HTTP:
// parsing, validation, the limits and every plugin see it. A query or mutation is answered by
// that run; a subscription's run opens its stream of events (see graphql/jit-executor.ts), whose
// results graphql-ws then sends, their errors formatted as over HTTP.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { ApolloServer } from '@apollo/server';
import {
  GraphQLError,
  Kind,
  OperationTypeNode,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type FormattedExecutionResult,
  type GraphQLFormattedError,
  type GraphQLSchema,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { GatewayContext } from '../context.js';
import { unexpectedCause } from '../errors.js';
import { documentIdAsPersistedQuery } from '../graphql/plugins/trusted-documents.js';
import { documentTooLarge } from '../graphql/query-limits.js';
import type { LiveJobPollers } from '../subscriptions/live-jobs.js';
import { ConnectionsPerAddress } from './connections-per-address.js';

export interface SubscriptionServerOptions {
  httpServer: Server;
  path: string;
  schema: GraphQLSchema;
  apollo: ApolloServer<GatewayContext>;
  pollers: LiveJobPollers;
  /** The most operations one socket may run at once; more are refused with BAD_REQUEST. */
  maxOperationsPerSocket: number;
  /** Sockets one client address may have open at once; the upgrade of one more is refused (429). */
  maxConnectionsPerAddress: number;
  /** The largest message a client may send, in bytes. */
  maxMessageBytes: number;
  /** The largest document (limits.maxBytes): a subscription's is held as long as it runs. */
  maxDocumentBytes: number;
  /** How long `dispose` waits for peers to answer their close before cutting them (http.shutdownGraceMs). */
  shutdownGraceMs: number;
  /** The errors' formatting over HTTP (src/errors.ts), for the errors of subscription events. */
  formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError;
  /** Browser origins allowed besides the gateway's own (security.corsOrigins). */
  allowedOrigins: readonly string[];
  /** Trusted documents are configured: a payload's `documentId` names a listed operation. */
  documentIds: boolean;
  /** The context of one operation, from the caller's `Authorization` (or none) and `Host`. */
  createContext(
    authorization: string | undefined,
    requestId: string,
    host: string | undefined,
  ): Promise<GatewayContext>;
  logger: Logger;
}

export interface SubscriptionServer {
  /**
   * Closes every socket (1001, going away), stops the pollers and the WebSocket server; a peer
   * that has not answered its close within `shutdownGraceMs` is cut.
   */
  dispose(): Promise<void>;
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

/** An error Apollo Server has already formatted, carried to graphql-ws's `error` message as is. */
class FormattedError extends GraphQLError {
  constructor(readonly formatted: GraphQLFormattedError) {
    super(formatted.message);
  }
}

/**
 * graphql-ws sends an operation to `execute` or `subscribe` by its type, read from the document
 * it is given: the pipeline has parsed the real one, so these stand in for it.
 */
function placeholder(operation: OperationTypeNode): DocumentNode {
  return {
    kind: Kind.DOCUMENT,
    definitions: [
      {
        kind: Kind.OPERATION_DEFINITION,
        operation,
        selectionSet: { kind: Kind.SELECTION_SET, selections: [] },
      },
    ],
  };
}
const QUERY = placeholder(OperationTypeNode.QUERY);
const SUBSCRIPTION = placeholder(OperationTypeNode.SUBSCRIPTION);

/** What an operation's run through the pipeline left for graphql-ws to send. */
type Outcome =
  | { kind: 'result'; result: FormattedExecutionResult }
  | { kind: 'stream'; events: AsyncGenerator<ExecutionResult> };

export function serveSubscriptions(options: SubscriptionServerOptions): SubscriptionServer {
  const { logger, pollers, apollo } = options;
  /** An event's errors (graphql-js executed it): formatted as Apollo Server formats them. */
  const formatted = (errors: readonly GraphQLError[]) =>
    errors.map((error) => {
      if (error instanceof FormattedError) return error.formatted;
      // The client sees INTERNAL_SERVER_ERROR only: what went wrong goes to the log, as over HTTP.
      const cause = unexpectedCause(error);
      if (cause !== undefined)
        logger.error({ err: cause, path: error.path }, 'unexpected error in a subscription');
      return options.formatError(error.toJSON(), error);
    });
  const wsServer = new WebSocketServer({
    server: options.httpServer,
    path: options.path,
    // ws would otherwise accept messages up to 100 MiB.
    maxPayload: options.maxMessageBytes,
    // Browsers do not apply CORS to WebSockets: without this check any web page could subscribe
    // with the gateway's own key. Non-browser clients send no Origin. One address may not hold
    // more sockets than its share.
    verifyClient: (
      { origin, req }: { origin: string | undefined; req: IncomingMessage },
      accept: (ok: boolean, status?: number, message?: string) => void,
    ) => {
      if (!originAllowed(origin, req.headers.host, options.allowedOrigins)) return accept(false, 401);
      if (!socketsByAddress.hasRoom(req.socket.remoteAddress ?? '')) {
        return accept(false, 429, 'Too many WebSocket connections from this address');
      }
      accept(true);
    },
  });
  // Open sockets by client address (subscriptions.connectionsPerAddress).
  const socketsByAddress = new ConnectionsPerAddress(options.maxConnectionsPerAddress);
  wsServer.on('connection', (socket, req) => socketsByAddress.add(req.socket.remoteAddress ?? '', socket));
  const outcomeOf = (args: ExecutionArgs) => (args.rootValue as { outcome: Outcome }).outcome;
  const server = useServer(
    {
      schema: options.schema,
      onConnect: () => {
        logger.debug('subscription client connected');
      },
      onSubscribe: async (ctx, id, payload): Promise<ExecutionArgs | readonly GraphQLError[]> => {
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
        if (payload.query && Buffer.byteLength(payload.query) > options.maxDocumentBytes) {
          return [documentTooLarge(options.maxDocumentBytes)];
        }
        const contextValue = await options.createContext(
          authorizationOf(ctx.connectionParams, ctx.extra.request.headers.authorization),
          randomUUID(),
          ctx.extra.request.headers.host,
        );
        // graphql-ws passes a `documentId` on untouched; the APQ extension carries it into Apollo.
        if (options.documentIds) documentIdAsPersistedQuery(payload);
        // The operation's state made here, before Apollo copies the context: the copy it runs
        // shares it, so the stream its execution opens is read here.
        const { operation } = contextValue;
        let response;
        try {
          response = await apollo.executeOperation(
            {
              query: payload.query,
              variables: payload.variables ?? undefined,
              operationName: payload.operationName ?? undefined,
              extensions: payload.extensions ?? undefined,
            },
            { contextValue },
          );
        } catch (error) {
          // Apollo Server has logged it; a stream the run had opened must not poll on unheard.
          void operation.liveEvents?.return(undefined);
          logger.error({ err: error }, 'a WebSocket operation failed in the pipeline');
          return [
            new GraphQLError('Internal server error.', { extensions: { code: 'INTERNAL_SERVER_ERROR' } }),
          ];
        }
        const events = operation.liveEvents;
        if (response.body.kind !== 'single') {
          void events?.return(undefined);
          return [
            new GraphQLError('Incremental delivery is not served over WebSocket.', {
              extensions: { code: 'BAD_REQUEST' },
            }),
          ];
        }
        const result = response.body.singleResult;
        // Refused (parse, validation, limits, a plugin): an `error` message, and no stream left open.
        if (!('data' in result) && result.errors?.length) {
          void events?.return(undefined);
          return result.errors.map((error) => new FormattedError(error));
        }
        if (events !== undefined) {
          logger.info(
            { operationName: payload.operationName ?? null, subscriptionId: id },
            'subscription started',
          );
        }
        const outcome: Outcome = events ? { kind: 'stream', events } : { kind: 'result', result };
        return {
          schema: options.schema,
          document: events ? SUBSCRIPTION : QUERY,
          rootValue: { outcome },
          contextValue,
        };
      },
      // The run through the pipeline has answered; these hand its outcome to graphql-ws.
      execute: (args) => {
        const outcome = outcomeOf(args);
        return outcome.kind === 'result' ? (outcome.result as ExecutionResult) : { data: null };
      },
      subscribe: (args) => {
        const outcome = outcomeOf(args);
        return outcome.kind === 'stream' ? outcome.events : (outcome.result as ExecutionResult);
      },
      onComplete: (_ctx, id, payload) => {
        logger.info(
          { operationName: payload.operationName ?? null, subscriptionId: id },
          'subscription ended',
        );
      },
      // A result from the pipeline is already formatted; an event's errors are graphql-js's.
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors?.some((error) => error instanceof GraphQLError)
          ? { ...result, errors: formatted(result.errors) }
          : (result as FormattedExecutionResult),
      onError: (_ctx, _id, _payload, errors) => formatted(errors),
    },
    wsServer,
  );
  // graphql-ws prints a socket's error (a message over http.maxRequestBytes, a bad frame) with its
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
