// Structured logs (pino): the process logger, and one line per GraphQL operation with its
// outcome. Keys are redacted at the logger, whatever a caller passes in.
import type { ApolloServerPlugin } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import { GraphQLError } from 'graphql';
import { pino, type Logger } from 'pino';
import type { GatewayContext } from '../context.js';
import { describeUpstreamError, errorCodeOf } from '../errors.js';
import type { GatewayMetrics } from './metrics.js';
import { UpstreamError } from '../upstream/errors.js';

export interface LoggerOptions {
  /** Human-readable lines (pino-pretty, loaded only then); JSON lines otherwise. */
  pretty?: boolean;
  /** Where lines go instead of stdout (tests collect them). */
  destination?: pino.DestinationStream;
}

export function createLogger(level: string, options: LoggerOptions = {}): Logger {
  const settings: pino.LoggerOptions = {
    level,
    redact: {
      paths: [
        'authorization',
        '*.authorization',
        'headers.authorization',
        '*.headers.authorization',
        'apiKey',
        '*.apiKey',
      ],
      censor: '[REDACTED]',
    },
  };
  if (options.pretty && !options.destination) {
    return pino({ ...settings, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  // Written asynchronously (a line per operation must not cost a blocking write each): lines
  // that arrive while a write is in flight go out together. main.ts flushes before exiting.
  return pino(settings, options.destination ?? pino.destination({ dest: 1, sync: false }));
}

/**
 * Logs each operation once when its response is sent (name, duration, upstream calls, outcome)
 * and counts it in the metrics; logs each failure with its details.
 */
export function operationLogPlugin(metrics: GatewayMetrics): ApolloServerPlugin<GatewayContext> {
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
          logOperation(metrics, contextValue, {
            operationName: operationName ?? null,
            durationMs: performance.now() - started,
            errorCodes: errors?.map(errorCodeOf) ?? [],
          });
        },
      };
    },
  };
}

/** The line and the metrics of one finished operation, whichever way it was executed. */
export function logOperation(
  metrics: GatewayMetrics,
  context: Pick<GatewayContext, 'logger' | 'upstreamCalls'>,
  outcome: { operationName: string | null; durationMs: number; errorCodes: string[] },
): void {
  const { operationName, durationMs, errorCodes } = outcome;
  context.logger.info(
    {
      operationName,
      durationMs: Math.round(durationMs),
      upstreamCalls: context.upstreamCalls.count,
      outcome: errorCodes.length ? 'error' : 'ok',
      ...(errorCodes.length && { errorCodes }),
    },
    'graphql operation',
  );
  metrics.operation(operationName, errorCodes[0] ?? 'ok', durationMs / 1000);
}
