// What distinct documents may hold in memory. Documents come from clients, and every cache keyed
// by one is bounded by the bytes its entries hold, weighed as measured (`npx tsx
// bench/distinct-documents.ts`; docs/security.md, "Distinct documents"): Apollo Server's parsed
// documents and APQ texts here, graphql-jit's compiled operations in jit-executor.ts.
import type { DocumentNode } from 'graphql';
import { LRUCache } from 'lru-cache';

const MB = 1024 * 1024;
/**
 * Apollo Server's parsed and validated documents, all together. Its own bound, 30 MiB of their
 * JSON, let 40,000 small ones hold 280 MB (a parsed document holds 4 to 9 times its JSON).
 */
export const PARSED_DOCUMENT_BYTES = 16 * MB;
/** APQ texts registered with this instance, all together (Apollo's bound, 30 MiB of text, held 6 times that in short ones). */
export const REGISTERED_DOCUMENT_BYTES = 16 * MB;

/**
 * Measured per token of a parsed document: its Token, AST node and Location, and the cost check
 * remembered with it: 280 to 450 bytes (a 15-token document holds 6.8 KB, one of 384 tokens 146 KB).
 */
const BYTES_PER_TOKEN = 400;
/** A parsed document besides its text and tokens: its DocumentNode, Source and cost check. */
const BYTES_PER_DOCUMENT = 1024;
/** Measured per entry of a cache besides its key and value (its slot, the strings' headers): about 150. */
const BYTES_PER_ENTRY = 256;

/** Bytes a string holds: one per character, two when any is past Latin-1. */
export function textBytes(text: string): number {
  // eslint-disable-next-line no-control-regex
  return /[^\u0000-\u00ff]/.test(text) ? 2 * text.length : text.length;
}

/** Bytes a parsed document holds: its text, and what each of its tokens left in memory. */
export function documentBytes(document: DocumentNode): number {
  let tokens = 0;
  for (let token = document.loc?.startToken ?? null; token; token = token.next) tokens += 1;
  return BYTES_PER_DOCUMENT + textBytes(document.loc?.source.body ?? '') + tokens * BYTES_PER_TOKEN;
}

/**
 * A key-value cache for Apollo Server (its KeyValueCache: the document store, the APQ cache)
 * that holds at most `maxBytes` by `bytesOf`, dropping the least recently used past that.
 */
export class BoundedStore<V extends NonNullable<unknown>> {
  private readonly entries: LRUCache<string, V>;

  constructor(maxBytes: number, bytesOf: (value: V) => number) {
    this.entries = new LRUCache<string, V>({
      maxSize: maxBytes,
      sizeCalculation: (value, key) =>
        cacheWeight(BYTES_PER_ENTRY + textBytes(key) + bytesOf(value), maxBytes),
    });
  }

  async get(key: string): Promise<V | undefined> {
    return this.entries.get(key);
  }

  /** `ttl` in seconds, as Apollo Server gives it (APQ's `persistedQueries.ttl`). */
  async set(key: string, value: V, options?: { ttl?: number | null }): Promise<void> {
    this.entries.set(key, value, options?.ttl ? { ttl: options.ttl * 1000 } : undefined);
  }

  async delete(key: string): Promise<boolean> {
    return this.entries.delete(key);
  }
}

/** Apollo Server's store of parsed and validated documents (its `documentStore`). */
export function parsedDocuments(): BoundedStore<DocumentNode> {
  return new BoundedStore(PARSED_DOCUMENT_BYTES, documentBytes);
}

/** Apollo Server's APQ cache on this instance (REDIS_URL: the fleet's, in Redis, instead). */
export function registeredDocuments(): BoundedStore<string> {
  return new BoundedStore(REGISTERED_DOCUMENT_BYTES, textBytes);
}

/**
 * An entry's weight for an LRUCache of `maxBytes`: a positive integer, and one past the cache's
 * size for what would not fit (it is then not kept), however large the estimate.
 */
export function cacheWeight(bytes: number, maxBytes: number): number {
  return Math.max(1, Math.min(Math.ceil(bytes), maxBytes + 1));
}
