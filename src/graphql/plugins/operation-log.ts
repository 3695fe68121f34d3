// One log line per GraphQL operation when its response is sent (name, duration, upstream calls,
// outcome, and whether the answer was shared), its count and duration in the metrics, and a
// line for each failure with its details.
import type { ApolloServerPlugin } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import type { GraphQLFormattedError } from 'graphql';
import type { GatewayContext } from '../../context.js';
import { ErrorCode, unexpectedCause } from '../../errors.js';
import type { GatewayMetrics } from '../../observability/metrics.js';
import { UpstreamError } from '../../upstream/errors.js';

/** The codes the client was sent (a shared answer's errors were formatted for its first request). */
function errorCodes(errors: readonly GraphQLFormattedError[] | undefined): string[] {
  return errors?.map((e) => String(e.extensions?.code ?? ErrorCode.INTERNAL_SERVER_ERROR)) ?? [];
}

export function operationLogPlugin(metrics: GatewayMetrics): ApolloServerPlugin<GatewayContext> {
  return {
    // The pipeline itself failed (a plugin's hook threw): Apollo Server answers 500; the line
    // says which request and why.
    async unexpectedErrorProcessingRequest({ requestContext, error }) {
      requestContext.contextValue.logger.error({ err: error }, 'unexpected error in the request pipeline');
    },
    async requestDidStart({ contextValue }) {
      const started = performance.now();
      return {
        async didEncounterErrors({ errors }) {
          for (const error of errors) {
            const original = unwrapResolverError(error);
            if (original instanceof UpstreamError) {
              const { extensions } = original.describe();
              contextValue.logger.warn(
                { code: extensions.code, upstream: original.details, path: error.path },
                original.message,
              );
              continue;
            }
            // A resolver's bug, or an error Apollo Server wrapped: the client sees
            // INTERNAL_SERVER_ERROR only, the log has the stack and the request id.
            const cause = unexpectedCause(error);
            if (cause !== undefined) {
              contextValue.logger.error({ err: cause, path: error.path }, 'unexpected error in the gateway');
            }
          }
        },
        async willSendResponse({ operationName, response }) {
          const { body } = response;
          const codes = errorCodes(
            body.kind === 'single' ? body.singleResult.errors : body.initialResult.errors,
          );
          const durationMs = performance.now() - started;
          contextValue.logger.info(
            {
              operationName,
              durationMs: Math.round(durationMs),
              upstreamCalls: contextValue.operation.upstreamCalls.attempts,
              outcome: codes.length ? 'error' : 'ok',
              ...(codes.length && { errorCodes: codes }),
              ...(contextValue.operation.sharedFrom && { sharedFrom: contextValue.operation.sharedFrom }),
            },
            'graphql operation',
          );
          metrics.operation(operationName ?? null, codes[0] ?? 'ok', durationMs / 1000);
        },
      };
    },
  };
}
