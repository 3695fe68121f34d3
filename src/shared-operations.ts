// Which HTTP requests may share one execution and one serialized response with an identical
// request already in flight (see singleflight.ts), and under which key. Only queries are
// shared, and only between callers with the same credential: the key holds a hash of the
// Authorization header, never the header itself.
import { createHash, hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { HTTPGraphQLResponse } from '@apollo/server';
import { parse, type DocumentNode } from 'graphql';
import { BoundedMap } from './bounded-map.js';
import { Singleflight } from './singleflight.js';

const DOCUMENT_CACHE_SIZE = 500;
/** Characters of operation names kept, all documents together (names come from clients). */
const DOCUMENT_CACHE_CHARS = 1024 * 1024;
// Parsing here only decides sharing: a longer document simply runs on its own (and meets
// Apollo's own token limit there).
const MAX_TOKENS = 10_000;
// Whether a document's operations are queries, by a hash of its text (never the text itself,
// which can carry a user's ids and names); bounded in entries and in the names it holds.
const queryOnlyDocuments = new BoundedMap<string, Map<string | null, boolean>>(
  DOCUMENT_CACHE_SIZE,
  DOCUMENT_CACHE_CHARS,
  (_hash, byName) => {
    let chars = 0;
    for (const name of byName.keys()) chars += name?.length ?? 0;
    return chars;
  },
);

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
    queryOnlyDocuments.set(documentHash, byName);
  }
  return byName.get(operationName) === true;
}

function header(req: IncomingMessage, name: string): string {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : (value ?? '');
}

// Every header that can change the response: content negotiation, CSRF checks, and a federation
// router asking a subgraph for its trace (FEDERATION_SUBGRAPH).
const KEY_HEADERS = [
  'accept',
  'content-type',
  'apollo-require-preflight',
  'x-apollo-operation-name',
  'apollo-federation-include-trace',
];

/**
 * What a GraphQL HTTP request's answer depends on (credential, method, query string, the headers
 * above, body text), as one string holding only a hash of the credential. Requests with equal
 * identities are either all shareable or none is, so a request whose identity is already in
 * flight may join before its body is even parsed.
 */
export function requestIdentity(req: IncomingMessage, search: string, bodyText: string): string {
  let key = `${hash('sha256', header(req, 'authorization'), 'base64')}\n${req.method}\n${search}\n`;
  for (const name of KEY_HEADERS) key += `${header(req, name)}\n`;
  return key + bodyText;
}

/**
 * The request runs one query operation (not a mutation or subscription) and may share its
 * answer: false for persisted-query hashes and anything unusual.
 */
export function runsSingleQuery(req: IncomingMessage, search: string, body: unknown): boolean {
  let query: unknown;
  let operationName: unknown;
  if (req.method === 'POST') {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
    ({ query, operationName } = body as Record<string, unknown>);
  } else if (req.method === 'GET') {
    const params = new URLSearchParams(search);
    query = params.get('query');
    operationName = params.get('operationName');
  } else {
    return false;
  }
  if (typeof query !== 'string') return false;
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') {
    return false;
  }
  return runsQuery(query, operationName ?? null);
}

export interface SharedResponse {
  response: HTTPGraphQLResponse;
  /** A complete body, encoded once for every request that shares it. */
  bytes: Buffer | undefined;
  /** This request got the answer of an identical one already in flight, or a recent one. */
  joined?: boolean;
  /** The answer came from the response cache (CACHE_TTL_MS), not from a flight. */
  cached?: boolean;
}

/** Responses the cache holds at most; the oldest goes first. */
const CACHED_RESPONSES = 1000;
/** Bytes of response bodies the cache holds at most (a page of every job is about 1 MB). */
const CACHED_BYTES = 64 * 1024 * 1024;

/**
 * Runs an operation, or joins the identical one in flight when the request has a sharing key.
 * With a TTL (CACHE_TTL_MS, off by default), a successful answer also serves identical requests
 * for that long after it completes; any write to the upstream empties the cache, and an answer
 * whose flight overlapped a write is never kept.
 */
export class SharedOperations {
  private readonly flights = new Singleflight<SharedResponse>();
  // Weighed by body bytes plus key characters: the key holds the request's text.
  private readonly recent = new BoundedMap<string, { expires: number; shared: SharedResponse }>(
    CACHED_RESPONSES,
    CACHED_BYTES,
    (key, { shared }) => key.length + (shared.bytes?.length ?? 0),
  );
  // Bumped by every write: an answer is kept only if no write began or ended during its flight.
  private writes = 0;

  constructor(private readonly ttlMs = 0) {}

  /**
   * The upstream's data may have changed: nothing answered before is served again, and no
   * request from now on joins a flight that began before (it may have read the old data).
   */
  forgetAll(): void {
    this.writes += 1;
    this.recent.clear();
    this.flights.detachAll();
  }

  /**
   * The answer of an identical request already in flight (or, with a TTL, a recent one) for a
   * request identity (see `requestIdentity`); undefined when there is none to join.
   */
  join(key: string): Promise<SharedResponse | undefined> | undefined {
    const hit = this.recentAnswer(key);
    if (hit !== undefined) return Promise.resolve(hit);
    const running = this.flights.joinable(key);
    // A streamed body can be read once only: the request then runs through `run` itself.
    return running?.then((shared) => (shared.bytes === undefined ? undefined : { ...shared, joined: true }));
  }

  async run(key: string | undefined, execute: () => Promise<HTTPGraphQLResponse>): Promise<SharedResponse> {
    if (key === undefined) return { response: await execute(), bytes: undefined };
    const hit = this.recentAnswer(key);
    if (hit !== undefined) return hit;
    const writesBefore = this.writes;
    const { result, joined } = this.flights.run(key, async () => {
      const response = await execute();
      const { body } = response;
      const shared = { response, bytes: body.kind === 'complete' ? Buffer.from(body.string) : undefined };
      if (this.ttlMs > 0 && this.writes === writesBefore && isPlainSuccess(response)) this.keep(key, shared);
      return shared;
    });
    const shared = await result;
    // A streamed body can be read once only: a joiner then runs the operation itself.
    if (joined && shared.bytes === undefined) return { response: await execute(), bytes: undefined };
    return joined ? { ...shared, joined } : shared;
  }

  private recentAnswer(key: string): SharedResponse | undefined {
    if (this.ttlMs === 0) return undefined;
    const hit = this.recent.get(key);
    if (hit !== undefined && hit.expires > performance.now())
      return { ...hit.shared, joined: true, cached: true };
    if (hit !== undefined) this.recent.delete(key);
    return undefined;
  }

  private keep(key: string, shared: SharedResponse): void {
    // A streamed body is never kept; the oldest answers make room, by count and by bytes.
    if (shared.bytes === undefined) return;
    this.recent.set(key, { expires: performance.now() + this.ttlMs, shared });
  }
}

/** A 200 whose body is data without errors (Apollo Server writes `errors` first when there are any). */
function isPlainSuccess(response: HTTPGraphQLResponse): boolean {
  return (
    (response.status ?? 200) === 200 &&
    response.body.kind === 'complete' &&
    response.body.string.startsWith('{"data":')
  );
}
