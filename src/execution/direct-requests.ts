// Which HTTP requests the JSON executor answers without Apollo Server's pipeline, and the
// response it gives them: the same bytes, status and headers Apollo Server would send for a
// successful operation (content negotiation, `extensions.upstream`, the operation's log line
// and metrics). Anything unusual (GET, another content type, persisted queries, an `accept`
// that is not plain JSON) goes to Apollo Server, as does every answer that would carry errors.
import type { IncomingMessage } from 'node:http';
import { HeaderMap, type HTTPGraphQLResponse } from '@apollo/server';
import Negotiator from 'negotiator';
import type { GatewayContext } from '../context.js';
import { logOperation } from '../observability/logging.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { CompiledJsonOperation, JsonExecutor } from './json-executor.js';

/** Apollo Server's media types for a single result, in its order of preference. */
const JSON_MEDIA_TYPE = 'application/json; charset=utf-8';
const GRAPHQL_RESPONSE_MEDIA_TYPE = 'application/graphql-response+json; charset=utf-8';
const OFFERED = [JSON_MEDIA_TYPE, GRAPHQL_RESPONSE_MEDIA_TYPE, 'application/json; callback=?'];

/** Negotiated media type by `accept` value; bounded, since the values come from clients. */
const negotiated = new Map<string, string | undefined>();
const NEGOTIATIONS_KEPT = 100;

function responseMediaType(accept: string | undefined): string | undefined {
  if (!accept) return JSON_MEDIA_TYPE;
  if (negotiated.has(accept)) return negotiated.get(accept);
  const preferred = new Negotiator({ headers: { accept } }).mediaType(OFFERED);
  // Anything else (JSONP-style callbacks, nothing acceptable) is Apollo Server's to answer.
  const mediaType =
    preferred === JSON_MEDIA_TYPE || preferred === GRAPHQL_RESPONSE_MEDIA_TYPE ? preferred : undefined;
  if (negotiated.size >= NEGOTIATIONS_KEPT) negotiated.clear();
  negotiated.set(accept, mediaType);
  return mediaType;
}

const BODY_KEYS = new Set(['query', 'operationName', 'variables', 'extensions']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A request the JSON executor can answer, once it runs. */
export interface DirectRequest {
  operation: CompiledJsonOperation;
  variables: Record<string, unknown> | undefined;
  mediaType: string;
}

export class DirectRequests {
  constructor(
    private readonly executor: JsonExecutor,
    private readonly metrics: GatewayMetrics,
  ) {}

  /** The compiled operation for this request, or undefined when Apollo Server must run it. */
  match(req: IncomingMessage, body: unknown): DirectRequest | undefined {
    if (req.method !== 'POST' || !isPlainObject(body)) return undefined;
    // A JSON body is never a "simple" request, so Apollo's CSRF check would pass it too.
    const contentType = req.headers['content-type']?.split(';', 1)[0]!.trim().toLowerCase();
    if (contentType !== 'application/json') return undefined;
    const mediaType = responseMediaType(req.headers.accept);
    if (mediaType === undefined) return undefined;

    const { query, operationName, variables, extensions } = body;
    for (const key in body) if (!BODY_KEYS.has(key)) return undefined;
    if (typeof query !== 'string') return undefined;
    if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') {
      return undefined;
    }
    if (variables !== undefined && variables !== null && !isPlainObject(variables)) return undefined;
    // Persisted queries are Apollo's; other extensions (a client's name and version) are ignored.
    if (extensions !== undefined && extensions !== null) {
      if (!isPlainObject(extensions) || 'persistedQuery' in extensions) return undefined;
    }
    const operation = this.executor.operation(query, operationName ?? null);
    if (operation === undefined) return undefined;
    return { operation, variables: variables ?? undefined, mediaType };
  }

  /** The response, or undefined when the answer needs Apollo Server (the context is then ready for it). */
  async answer(request: DirectRequest, context: GatewayContext): Promise<HTTPGraphQLResponse | undefined> {
    const started = performance.now();
    const data = await request.operation.run(request.variables, context);
    if (data === undefined) {
      this.metrics.directOperation('fell_back');
      context.replayFromStart();
      return undefined;
    }
    this.metrics.directOperation('answered');
    const trace = context.upstreamTrace;
    const result = trace ? { data, extensions: { upstream: trace.summary() } } : { data };
    logOperation(this.metrics, context, {
      operationName: request.operation.operationName,
      durationMs: performance.now() - started,
      errorCodes: [],
    });
    return {
      status: undefined,
      headers: new HeaderMap([['content-type', request.mediaType]]),
      // As Apollo Server writes it: `{"data":…,"extensions":…}` and a newline.
      body: { kind: 'complete', string: `${JSON.stringify(result)}\n` },
    };
  }
}
