// Adds `extensions.upstream` (see observability/upstream-trace.ts) to each response whose
// operation has a trace: the REST calls it made and the loads answered without one.
import type { ApolloServerPlugin } from '@apollo/server';
import type { UpstreamTrace } from '../../observability/upstream-trace.js';

/** What the plugin needs from the context: this operation's trace, when tracing is on. */
export interface TracedContext {
  readonly upstreamTrace: UpstreamTrace | undefined;
}

export function upstreamTracePlugin(): ApolloServerPlugin<TracedContext> {
  return {
    async requestDidStart({ contextValue }) {
      if (contextValue.upstreamTrace === undefined) return;
      return {
        async willSendResponse({ response, contextValue }) {
          const trace = contextValue.upstreamTrace;
          if (trace === undefined || response.body.kind !== 'single') return;
          const result = response.body.singleResult;
          result.extensions = { ...result.extensions, upstream: trace.summary() };
        },
      };
    },
  };
}
