// OpenTelemetry spans of each GraphQL operation (installed only when tracing is on): one SERVER
// span per operation, a child of the client's W3C `traceparent` when it sent one, with children
// for parsing, validation and execution as the pipeline runs them. The operation's context is
// left on the operation's state, where the upstream calls and subscriptions find their parent.
// Attributes: the operation's name and type, a hash of its document, how it was answered and
// its error codes; never the document, the variables' values or a key.
import type { ApolloServerPlugin, GraphQLRequestContext } from '@apollo/server';
import type { GraphQLFormattedError } from 'graphql';
import type { GatewayContext } from '../../context.js';
import { ErrorCode } from '../../errors.js';
import type { GatewayTracing, TraceSpan } from '../../observability/tracing.js';

/** The codes the client was sent, each once, in order. */
function errorCodes(errors: readonly GraphQLFormattedError[] | undefined): string[] {
  const codes = errors?.map((e) => String(e.extensions?.code ?? ErrorCode.INTERNAL_SERVER_ERROR)) ?? [];
  return [...new Set(codes)];
}

export function tracingPlugin(tracing: GatewayTracing): ApolloServerPlugin<GatewayContext> {
  // The span of each request still open, for a pipeline that fails before willSendResponse.
  const open = new WeakMap<GraphQLRequestContext<GatewayContext>, TraceSpan>();
  return {
    async unexpectedErrorProcessingRequest({ requestContext }) {
      const span = open.get(requestContext as GraphQLRequestContext<GatewayContext>);
      if (span === undefined) return;
      tracing.fail(span, ErrorCode.INTERNAL_SERVER_ERROR);
      span.end();
    },
    async requestDidStart(requestContext) {
      const { contextValue, request } = requestContext;
      const headers = request.http?.headers;
      const parent = headers && tracing.extract((name) => headers.get(name));
      const span = tracing.startSpan('GraphQL Operation', {
        kind: 'server',
        parent,
        attributes: {
          'gateway.transport': contextValue.operation.transport,
          'gateway.request_id': contextValue.requestId,
        },
      });
      const context = tracing.contextOf(span, parent);
      // This operation's copy of the context: the upstream calls made for it start their spans here.
      contextValue.operation.span = context;
      open.set(requestContext, span);
      let parsed = false;
      let executed = false;
      const child = (name: string) => tracing.startSpan(name, { parent: context });
      return {
        async didResolveSource({ queryHash }) {
          // Apollo's SHA-256 of the document: tells operations apart without showing their text.
          span.setAttribute('graphql.document.hash', queryHash);
        },
        async parsingDidStart() {
          parsed = true;
          const parsing = child('graphql.parse');
          return async (error) => {
            if (error) tracing.fail(parsing, 'GRAPHQL_PARSE_FAILED');
            parsing.end();
          };
        },
        async validationDidStart() {
          const validation = child('graphql.validate');
          return async (errors) => {
            if (errors?.length) tracing.fail(validation, 'GRAPHQL_VALIDATION_FAILED');
            validation.end();
          };
        },
        async didResolveOperation({ operation, operationName }) {
          const type = operation?.operation;
          if (type === undefined) return;
          span.updateName(operationName ? `${type} ${operationName}` : type);
          span.setAttributes({
            'graphql.operation.type': type,
            ...(operationName && { 'graphql.operation.name': operationName }),
            // A document seen before is neither parsed nor validated again (Apollo's document store).
            'graphql.document.cached': !parsed,
          });
        },
        async executionDidStart() {
          executed = true;
          const execution = child('graphql.execute');
          return {
            async executionDidEnd(error) {
              if (error) tracing.fail(execution, ErrorCode.INTERNAL_SERVER_ERROR);
              execution.end();
            },
          };
        },
        async willSendResponse({ response, contextValue: operationContext }) {
          open.delete(requestContext);
          const { body } = response;
          const codes = errorCodes(
            body.kind === 'single' ? body.singleResult.errors : body.initialResult.errors,
          );
          span.setAttributes({
            // Executed here, joined an identical query in flight, kept from one before, or refused.
            'gateway.answered_from':
              operationContext.operation.sharedFrom ?? (executed ? 'execution' : 'none'),
            'gateway.upstream_calls': operationContext.operation.upstreamCalls.attempts,
            'gateway.outcome': codes.length ? 'error' : 'ok',
            'http.response.status_code': response.http.status ?? 200,
            ...(codes.length && { 'graphql.error.codes': codes }),
          });
          if (codes.length) tracing.fail(span, codes[0]!);
          span.end();
        },
      };
    },
  };
}
