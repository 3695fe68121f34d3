// Hive Gateway in front of the fine-tune gateway (subgraph `fine-tune-jobs`, federation.subgraph: true)
// and the teams subgraph. Read by `hive-gateway supergraph supergraph.graphql` from this folder;
// test/router.test.ts runs exactly this file.
import { defineConfig, type GatewayPlugin, type WSTransportOptions } from '@graphql-hive/gateway';

interface ClientContext {
  request?: Request;
  connectionParams?: Record<string, unknown>;
  clientAuthorization?: string;
}

/**
 * The caller's key: its `Authorization` header, or for a WebSocket client the `Authorization`
 * of its connection_init payload (in any case, as the fine-tune gateway itself reads it).
 */
function clientAuthorization(context: ClientContext): string | undefined {
  const header = context.request?.headers.get('authorization');
  if (header) return header;
  const entry = Object.entries(context.connectionParams ?? {}).find(
    ([name]) => name.toLowerCase() === 'authorization',
  );
  return typeof entry?.[1] === 'string' ? entry[1] : undefined;
}

/** Puts the caller's key on the context, where header propagation and `connectionParams` read it. */
const useClientAuthorization = (): GatewayPlugin<ClientContext> => ({
  onContextBuilding({ context, extendContext }) {
    extendContext({ clientAuthorization: clientAuthorization(context) });
  },
});

export const gatewayConfig = defineConfig<ClientContext>({
  plugins: () => [useClientAuthorization()],
  // Queries and mutations (HTTP): the caller's key travels with each one to the fine-tune
  // gateway, and to no other subgraph.
  propagateHeaders: {
    fromClientToSubgraphs: ({ context, subgraphName }) =>
      subgraphName === 'fine-tune-jobs' ? { authorization: context.clientAuthorization } : {},
  },
  transportEntries: {
    // Subscriptions to the fine-tune gateway go over graphql-ws on its /graphql. Without this the
    // router asks for an event stream over HTTP (GraphQL over SSE), which the gateway does not
    // serve: BAD_REQUEST. The key goes in connection_init, as the gateway's own clients send it
    // (WebSocket transports ignore propagateHeaders); the router opens one socket per distinct
    // key and carries all of that key's subscriptions on it.
    'fine-tune-jobs': {
      options: {
        subscriptions: {
          kind: 'ws',
          location: '/graphql',
          options: {
            connectionParams: { Authorization: '{context.clientAuthorization}' },
          } satisfies WSTransportOptions,
        },
      },
    },
  },
});
