// Which HTTP requests may share one execution and one serialized response with an identical
// request already in flight (see singleflight.ts), and under which key. Only queries are
// shared, and only between callers with the same credential: the key holds a hash of the
// Authorization header, never the header itself.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { HTTPGraphQLResponse } from '@apollo/server';
import { parse, type DocumentNode } from 'graphql';
import { Singleflight } from './singleflight.js';

const DOCUMENT_CACHE_SIZE = 500;
// Parsing here only decides sharing: a longer document simply runs on its own (and meets
// Apollo's own token limit there).
const MAX_TOKENS = 10_000;
// Whether a document's operations are queries, by a hash of its text (never the text itself,
// which can carry a user's ids and names); bounded, cleared when full.
const queryOnlyDocuments = new Map<string, Map<string | null, boolean>>();

/** The operation the request runs is a query (not a mutation or subscription), if it parses. */
function runsQuery(query: string, operationName: string | null): boolean {
  const documentHash = createHash('sha256').update(query).digest('base64');
  let byName = queryOnlyDocuments.get(documentHash);
  if (byName === undefined) {
    let document: DocumentNode;
    try {
      document = parse(query, { noLocation: true, maxTokens: MAX_TOKENS });
    } catch {
      return false;
    }
    byName = new Map();
    const operations = document.definitions.filter((d) => d.kind === 'OperationDefinition');
    for (const operation of operations) {
      byName.set(operation.name?.value ?? null, operation.operation === 'query');
    }
    // Without an operation name, graphql runs the only operation there is.
    if (operations.length === 1) byName.set(null, operations[0]!.operation === 'query');
    if (queryOnlyDocuments.size >= DOCUMENT_CACHE_SIZE) queryOnlyDocuments.clear();
    queryOnlyDocuments.set(documentHash, byName);
  }
  return byName.get(operationName) === true;
}

function header(req: IncomingMessage, name: string): string {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : (value ?? '');
}

// Every header that can change the response (credential, content negotiation, CSRF checks).
const KEY_HEADERS = [
  'authorization',
  'accept',
  'content-type',
  'apollo-require-preflight',
  'x-apollo-operation-name',
];

/**
 * The sharing key of a GraphQL HTTP request, or undefined when it must run on its own (not a
 * single query operation, persisted-query hashes, anything unusual).
 */
export function sharedOperationKey(
  req: IncomingMessage,
  search: string,
  bodyText: string,
  body: unknown,
): string | undefined {
  let query: unknown;
  let operationName: unknown;
  if (req.method === 'POST') {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
    ({ query, operationName } = body as Record<string, unknown>);
  } else if (req.method === 'GET') {
    const params = new URLSearchParams(search);
    query = params.get('query');
    operationName = params.get('operationName');
  } else {
    return undefined;
  }
  if (typeof query !== 'string') return undefined;
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') {
    return undefined;
  }
  if (!runsQuery(query, operationName ?? null)) return undefined;

  const hash = createHash('sha256');
  for (const name of KEY_HEADERS) hash.update(header(req, name)).update('\n');
  hash.update(req.method).update('\n').update(search).update('\n').update(bodyText);
  return hash.digest('base64');
}

export interface SharedResponse {
  response: HTTPGraphQLResponse;
  /** A complete body, encoded once for every request that shares it. */
  bytes: Buffer | undefined;
  /** This request got the answer of an identical one already in flight. */
  joined?: boolean;
}

/** Runs an operation, or joins the identical one in flight when the request has a sharing key. */
export class SharedOperations {
  private readonly flights = new Singleflight<SharedResponse>();

  async run(key: string | undefined, execute: () => Promise<HTTPGraphQLResponse>): Promise<SharedResponse> {
    if (key === undefined) return { response: await execute(), bytes: undefined };
    const { result, joined } = this.flights.run(key, async () => {
      const response = await execute();
      const { body } = response;
      return { response, bytes: body.kind === 'complete' ? Buffer.from(body.string) : undefined };
    });
    const shared = await result;
    // A streamed body can be read once only: a joiner then runs the operation itself.
    if (joined && shared.bytes === undefined) return { response: await execute(), bytes: undefined };
    return joined ? { ...shared, joined } : shared;
  }
}
