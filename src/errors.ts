// The gateway's error vocabulary and the one translation from upstream failures to GraphQL
// errors. Every error a client sees carries one of these codes in `extensions.code`.
import { unwrapResolverError } from '@apollo/server/errors';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { redactSecrets } from './observability/secrets.js';
import { UpstreamError } from './upstream/errors.js';

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
  /** The upstream failed (5xx) or could not be reached. */
  UPSTREAM_UNAVAILABLE: 'UPSTREAM_UNAVAILABLE',
  /** The upstream did not answer within the configured timeout. */
  UPSTREAM_TIMEOUT: 'UPSTREAM_TIMEOUT',
  /** The upstream answered with something outside its contract. */
  UPSTREAM_BAD_RESPONSE: 'UPSTREAM_BAD_RESPONSE',
  /** The query asks for more than the gateway allows (depth, aliases, directives, tokens, bytes, cost, batch size; or at run time upstream calls and jobs); see `extensions.limit`. Nothing was executed. */
  QUERY_LIMIT_EXCEEDED: 'QUERY_LIMIT_EXCEEDED',
  /** A subscription refused or ended by a bound: too many open for the key, or a consumer too far behind; see `extensions.limit`. */
  SUBSCRIPTION_LIMIT_EXCEEDED: 'SUBSCRIPTION_LIMIT_EXCEEDED',
  /** With security.trustedDocuments.only, a document that is not in the trusted documents; not parsed (Apollo Router's code). */
  PERSISTED_QUERY_NOT_IN_LIST: 'PERSISTED_QUERY_NOT_IN_LIST',
  /** A bug in the gateway; the details are in its log, not in the response. */
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error the gateway raises itself (argument checks, missing credentials). */
export function gatewayError(
  code: ErrorCode,
  message: string,
  extensions: Record<string, unknown> = {},
): GraphQLError {
  return new GraphQLError(message, { extensions: { ...extensions, code } });
}

function codeForStatus(status: number): ErrorCode {
  if (status === 400 || status === 413 || status === 422) return ErrorCode.BAD_USER_INPUT;
  if (status === 401) return ErrorCode.UNAUTHENTICATED;
  if (status === 403) return ErrorCode.FORBIDDEN;
  if (status === 404) return ErrorCode.NOT_FOUND;
  if (status === 409) return ErrorCode.CONFLICT;
  if (status === 429) return ErrorCode.UPSTREAM_RATE_LIMITED;
  if (status >= 500) return ErrorCode.UPSTREAM_UNAVAILABLE;
  // Any other status is outside the documented contract.
  return ErrorCode.UPSTREAM_BAD_RESPONSE;
}

// graphql 16 writes "more that", later versions "more than".
const TOO_MANY_TOKENS = /^Syntax Error: Document contains more tha[nt] (\d+) tokens/;

interface DescribedError {
  message: string;
  extensions: Record<string, unknown> & { code: ErrorCode };
}

/** The code and client-facing extensions for one upstream failure. */
export function describeUpstreamError(error: UpstreamError): DescribedError {
  const described = describeFailure(error);
  const { jobId } = error.details;
  if (jobId !== undefined) described.extensions = { ...described.extensions, jobId };
  return described;
}

function describeFailure(error: UpstreamError): DescribedError {
  const { operation, status, errors = [], retryAfterSeconds } = error.details;
  switch (error.kind) {
    case 'timeout':
      return {
        message: `The fine-tune API did not answer in time (${operation}).`,
        extensions: { code: ErrorCode.UPSTREAM_TIMEOUT, upstream: { operation } },
      };
    case 'network':
      return {
        message: `The fine-tune API could not be reached (${operation}).`,
        extensions: { code: ErrorCode.UPSTREAM_UNAVAILABLE, upstream: { operation } },
      };
    case 'circuit-open':
      return {
        message: `The fine-tune API is failing; the gateway is not calling it for a few seconds (${operation}).`,
        extensions: { code: ErrorCode.UPSTREAM_UNAVAILABLE, upstream: { operation, circuit: 'open' } },
      };
    case 'overloaded':
      return {
        message: `The gateway has too many calls to the fine-tune API waiting; try again shortly (${operation}).`,
        extensions: { code: ErrorCode.UPSTREAM_UNAVAILABLE, upstream: { operation, overloaded: true } },
      };
    case 'bad-response':
      return {
        message: `The fine-tune API sent a response the gateway cannot read (${operation}): ${error.message}.`,
        extensions: { code: ErrorCode.UPSTREAM_BAD_RESPONSE, upstream: { operation } },
      };
    case 'http': {
      const first = errors[0];
      const code = codeForStatus(status ?? 0);
      return {
        message: `The fine-tune API answered ${status} (${operation}): ${error.message}`,
        extensions: {
          code,
          ...(retryAfterSeconds !== undefined && { retryAfter: retryAfterSeconds }),
          upstream: {
            operation,
            status,
            ...(first?.code !== undefined && { code: first.code }),
            ...(first?.errorUid !== undefined && { errorUid: first.errorUid }),
            ...(first?.suggestion !== undefined && { suggestion: first.suggestion }),
            ...(first?.field !== undefined && { field: first.field }),
            ...(errors.length > 1 && { errors }),
          },
        },
      };
    }
  }
}

/**
 * A query limit's code and message, where Apollo reported it otherwise: it recodes validation
 * errors GRAPHQL_VALIDATION_FAILED, and graphql-js's token limit is a syntax error.
 */
function queryLimitError(
  message: string,
  extensions: Record<string, unknown> | undefined,
): { message: string; extensions: Record<string, unknown> } | undefined {
  // Ours carry `limit`; Apollo gives the validation rules' its own code, other codes stay.
  const recoded = extensions?.code === undefined || extensions.code === 'GRAPHQL_VALIDATION_FAILED';
  if (typeof extensions?.limit === 'string' && recoded) {
    return { message, extensions: { ...extensions, code: ErrorCode.QUERY_LIMIT_EXCEEDED } };
  }
  const tokens = TOO_MANY_TOKENS.exec(message);
  if (tokens) {
    return {
      message: `Query token limit of ${tokens[1]} exceeded.`,
      extensions: { code: ErrorCode.QUERY_LIMIT_EXCEEDED, limit: 'tokens' },
    };
  }
  return undefined;
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
  if (original instanceof UpstreamError) return undefined;
  if (!(original instanceof GraphQLError))
    return original instanceof Error ? original : new Error(String(original));
  const cause = original.originalError;
  if (cause === undefined || cause instanceof GraphQLError || cause instanceof UpstreamError)
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
  if (original instanceof UpstreamError) {
    const { message, extensions } = describeUpstreamError(original);
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
