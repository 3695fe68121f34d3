// Structured logs (pino): the process logger, and one line per GraphQL operation with its
// outcome. Keys are redacted at the logger, whatever a caller passes in.
import type { ApolloServerPlugin } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import { GraphQLError } from 'graphql';
import { pino, type Logger } from 'pino';
import type { GatewayContext } from './context.js';
import { describeUpstreamError, errorCodeOf } from './errors.js';
import { UpstreamError } from './upstream/errors.js';

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: ['authorization', '*.authorization', '*.headers.authorization', 'apiKey', '*.apiKey'],
        censor: '[REDACTED]',
      },
    },
    destination,
  );
}

/** Logs each operation once when its response is sent, and each failure with its details. */
export function operationLogPlugin(): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart({ contextValue }) {
      const started = performance.now();
      return {
        async didEncounterErrors({ errors }) {
          for (const error of errors) {
            const original = unwrapResolverError(error);
            if (original instanceof UpstreamError) {
              const { extensions } = describeUpstreamError(original);
              contextValue.logger.warn(
                { code: extensions.code, upstream: original.details, path: error.path },
                original.message,
              );
            } else if (!(original instanceof GraphQLError)) {
              contextValue.logger.error(
                { err: original, path: error.path },
                'unexpected error in a resolver',
              );
            }
          }
        },
        async willSendResponse({ operationName, errors }) {
          contextValue.logger.info(
            {
              operationName: operationName ?? null,
              durationMs: Math.round(performance.now() - started),
              outcome: errors?.length ? 'error' : 'ok',
              ...(errors?.length && { errorCodes: errors.map(errorCodeOf) }),
            },
            'graphql operation',
          );
        },
      };
    },
  };
}
