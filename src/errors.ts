// The gateway's error vocabulary and the one formatter of what clients see. Every error a client
// sees carries one of these codes in `extensions.code`. A failure that knows its own code (an
// upstream failure: src/upstream/errors.ts) is a DescribedFailure, described where it is read.
import { unwrapResolverError } from '@apollo/server/errors';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { redactSecrets } from './observability/secrets.js';

export const ErrorCode = {
  /** No API key, or the upstream rejected it (401). */
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  /** The key is valid but not allowed to do this (403). */
  FORBIDDEN: 'FORBIDDEN',
  /** Invalid arguments, caught by the gateway or by the upstream (400, 413, 422). */
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  /** The upstream has no such job (404) where null is not the answer. */
  NOT_FOUND: 'NOT_FOUND',
  /** The request conflicts with the job's current state (409). */
  CONFLICT: 'CONFLICT',
  /** The upstream is rate limiting this key (429); `extensions.retryAfter` in seconds when known. */
  UPSTREAM_RATE_LIMITED: 'UPSTREAM_RATE_LIMITED',
  /** This caller (its token's subject, or its key) is past its rateLimits; `extensions.retryAfter` in seconds, and `limit` names which (429). */
  RATE_LIMITED: 'RATE_LIMITED',
  /** The upstream failed (5xx) or could not be reached. */
  UPSTREAM_UNAVAILABLE: 'UPSTREAM_UNAVAILABLE',
  /** The upstream did not answer within the configured timeout. */
  UPSTREAM_TIMEOUT: 'UPSTREAM_TIMEOUT',
  /** The upstream answered with something outside its contract. */
  UPSTREAM_BAD_RESPONSE: 'UPSTREAM_BAD_RESPONSE',
  /** The query asks for more than the gateway allows (depth, aliases, directives, tokens, validation work, bytes, cost, upstream calls, batch size; or at run time upstream calls and jobs); see `extensions.limit`. Nothing was executed. */
  QUERY_LIMIT_EXCEEDED: 'QUERY_LIMIT_EXCEEDED',
  /** A subscription refused or ended by a bound: too many open for the key, or a consumer too far behind; see `extensions.limit`. */
  SUBSCRIPTION_LIMIT_EXCEEDED: 'SUBSCRIPTION_LIMIT_EXCEEDED',
  /** With security.trustedDocuments.only, a document that is not in the trusted documents; not parsed (Apollo Router's code). */
  PERSISTED_QUERY_NOT_IN_LIST: 'PERSISTED_QUERY_NOT_IN_LIST',
  /** A bug in the gateway; the details are in its log, not in the response. */
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The codes of a request past one of the gateway's limits; `extensions.limit` names which. */
export type LimitCode = typeof ErrorCode.QUERY_LIMIT_EXCEEDED | typeof ErrorCode.SUBSCRIPTION_LIMIT_EXCEEDED;

/** A limit error's extensions: its code, the limit's name, what says the bound, the HTTP status. */
function limitExtensions(
  code: LimitCode,
  limit: string,
  extensions: Record<string, unknown> = {},
  httpStatus?: number,
): Record<string, unknown> & { code: LimitCode } {
  return { code, limit, ...extensions, ...(httpStatus !== undefined && { http: { status: httpStatus } }) };
}

/**
 * The one builder of the error of a request past a limit: `limit` names the limit as the docs
 * do, `extensions` say the bound (`max`, or `maxBytes`, `maxCost`, …) and what went past it,
 * and `httpStatus`, when given, is the status of a response refused before it ran.
 */
export function limitError(
  code: LimitCode,
  limit: string,
  message: string,
  extensions?: Record<string, unknown>,
  httpStatus?: number,
): GraphQLError {
  return new GraphQLError(message, { extensions: limitExtensions(code, limit, extensions, httpStatus) });
}

/** An error the gateway raises itself (argument checks, missing credentials). */
export function gatewayError(
  code: ErrorCode,
  message: string,
  extensions: Record<string, unknown> = {},
): GraphQLError {
  return new GraphQLError(message, { extensions: { ...extensions, code } });
}

// graphql 16 writes "more that", later versions "more than".
const TOO_MANY_TOKENS = /^Syntax Error: Document contains more tha[nt] (\d+) tokens/;
// graphql-js's validation gives up past its own budget of work (comparing fields that share a
// response name in one selection, 500,000 steps; following fragments, 50,000): the document is
// refused for its size, not for a mistake in it.
const VALIDATION_ABORTED = 'Validation aborted.';

export interface DescribedError {
  message: string;
  extensions: Record<string, unknown> & { code: ErrorCode };
}

/**
 * A query limit's code and message, where Apollo reported it otherwise: it recodes validation
 * errors GRAPHQL_VALIDATION_FAILED, graphql-js's token limit is a syntax error, and its
 * validation budget a bare "Validation aborted.".
 */
function queryLimitError(
  message: string,
  extensions: Record<string, unknown> | undefined,
): { message: string; extensions: Record<string, unknown> } | undefined {
  // Ours carry `limit` (limitError); Apollo gives the validation rules' its own code, other codes stay.
  const recoded = extensions?.code === undefined || extensions.code === 'GRAPHQL_VALIDATION_FAILED';
  if (typeof extensions?.limit === 'string' && recoded) {
    return { message, extensions: { ...extensions, code: ErrorCode.QUERY_LIMIT_EXCEEDED } };
  }
  if (message === VALIDATION_ABORTED && extensions?.code === 'GRAPHQL_VALIDATION_FAILED') {
    return {
      message:
        'The document is too large to validate: a selection repeats a field (or alias, or fragment) too many times, and each must be compared with the others. Ask for each field once.',
      extensions: limitExtensions(ErrorCode.QUERY_LIMIT_EXCEEDED, 'validation'),
    };
  }
  const tokens = TOO_MANY_TOKENS.exec(message);
  if (tokens) {
    return {
      message: `Query token limit of ${tokens[1]} exceeded.`,
      extensions: limitExtensions(ErrorCode.QUERY_LIMIT_EXCEEDED, 'tokens'),
    };
  }
  return undefined;
}

/**
 * A failure that says for itself what the client sees: its code, message and extensions. The
 * formatter needs no knowledge of where it came from (the upstream's failures are one kind).
 */
export abstract class DescribedFailure extends Error {
  abstract describe(): DescribedError;
}

export interface ErrorFormatting {
  /** graphql-js may suggest names in its messages (security.fieldSuggestions). */
  fieldSuggestions: boolean;
}

// graphql-js's hints: `Did you mean "name"?`, `Did you mean the enum value "RUNNING"?`.
const SUGGESTION = /Did you mean [^?]*\?/g;
/** What graphql-armor puts in place of a suggestion in validation errors, used for the rest too. */
const SUGGESTION_HIDDEN = '[Suggestion hidden]';

/**
 * The `formatError` of both transports (Apollo Server over HTTP, graphql-ws): upstream failures
 * get their code, anything unexpected is masked (its details go to the log), no message ever
 * carries a bearer token, and with suggestions off no message names a field the caller did not.
 */
export function createErrorFormatter({ fieldSuggestions }: ErrorFormatting) {
  const shown = (message: string) =>
    redactSecrets(fieldSuggestions ? message : message.replace(SUGGESTION, SUGGESTION_HIDDEN));
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError =>
    formatError(formatted, error, shown);
}

/**
 * The error underneath, when it is neither ours nor graphql-js's: a resolver's bug, or one
 * Apollo Server wrapped (a plugin's, the executor's). That is an internal error, whose message
 * is for the log only.
 */
export function unexpectedCause(error: unknown): Error | undefined {
  const original = unwrapResolverError(error);
  if (original instanceof DescribedFailure) return undefined;
  if (!(original instanceof GraphQLError))
    return original instanceof Error ? original : new Error(String(original));
  const cause = original.originalError;
  if (cause === undefined || cause instanceof GraphQLError || cause instanceof DescribedFailure)
    return undefined;
  return cause;
}

function formatError(
  formatted: GraphQLFormattedError,
  error: unknown,
  shown: (message: string) => string,
): GraphQLFormattedError {
  const original = unwrapResolverError(error);
  if (unexpectedCause(error) !== undefined) {
    return {
      message: 'Internal server error.',
      ...(formatted.locations && { locations: formatted.locations }),
      ...(formatted.path && { path: formatted.path }),
      extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
    };
  }
  if (original instanceof DescribedFailure) {
    const { message, extensions } = original.describe();
    return { ...formatted, message: redactSecrets(message), extensions };
  }
  if (original instanceof GraphQLError) {
    // Ours, graphql-js's (validation, coercion) or Apollo's: well-formed, and coded except for
    // graphql-js's request errors outside Apollo (a missing variable over WebSocket, say).
    // `http` is Apollo Server's to read (the status), not the client's; it stays over WebSocket.
    const { stacktrace: _stacktrace, http: _http, ...extensions } = formatted.extensions ?? {};
    const limit = queryLimitError(formatted.message, extensions);
    if (limit) return { ...formatted, ...limit };
    const code = typeof extensions.code === 'string' ? extensions.code : ErrorCode.BAD_USER_INPUT;
    return { ...formatted, message: shown(formatted.message), extensions: { ...extensions, code } };
  }
  return {
    message: 'Internal server error.',
    extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
  };
}
