// Adds `extensions.upstream` (src/operation/upstream-calls.ts) to each response whose operation
// keeps its calls (on outside production): the REST calls it made and the loads answered
// without one.
import type { ApolloServerPlugin } from '@apollo/server';
import type { GatewayContext } from '../../context.js';

/** `extensions.upstream` from the operation's record of upstream calls (UPSTREAM_TRACE). */
export function upstreamCallsExtensionPlugin(): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ response, contextValue }) {
          const summary = contextValue.operation.upstreamCalls.summary();
          if (summary === undefined || response.body.kind !== 'single') return;
          const result = response.body.singleResult;
          result.extensions = { ...result.extensions, upstream: summary };
        },
      };
    },
  };
}
