// A subscription sent over plain HTTP gets a clear 400 (`BAD_REQUEST`) that says where
// subscriptions are served, instead of running without its stream.
import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError } from 'graphql';
import type { GatewayContext } from '../../context.js';

export function subscriptionsOverHttpPlugin(): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation, contextValue }) {
          if (operation?.operation !== 'subscription' || contextValue.operation.transport === 'websocket')
            return;
          throw new GraphQLError(
            'Subscriptions are served over WebSocket (graphql-ws protocol) at this same URL, not over HTTP.',
            { extensions: { code: 'BAD_REQUEST', http: { status: 400 } } },
          );
        },
      };
    },
  };
}
