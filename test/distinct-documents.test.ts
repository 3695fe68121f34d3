// Distinct documents: what a client's stream of never-repeated documents leaves in the gateway's
// memory is bounded, however many it sends. Every cache keyed by a document (Apollo Server's
// parsed documents and APQ texts, graphql-jit's compiled operations) holds at most its bound in
// bytes, so the live heap after a full GC grows by less than their sum.
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARSED_DOCUMENT_BYTES, REGISTERED_DOCUMENT_BYTES } from '../src/graphql/document-memory.js';
import { COMPILED_OPERATION_BYTES } from '../src/graphql/jit-executor.js';
import { ACME_KEY, startStack, type Stack } from './harness.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * The live heap: what full GCs leave (twice: finalizers and weak references let go of more on the
 * second), once V8 has dropped the bytecode of functions not running. With it goes V8's
 * compilation cache's hold on the source of each `new Function`, here graphql-jit's code of the
 * operations the gateway evicted: V8 drops it by itself after 5 major GCs, but a forced GC ages
 * nothing (without this, 130 MB of the evicted operations' code is still counted here).
 */
function liveHeap(): number {
  setFlagsFromString('--stress-flush-code');
  gc();
  gc();
  setFlagsFromString('--no-stress-flush-code');
  return process.memoryUsage().heapUsed;
}

const MAX_BYTES = 64 * 1024;
const DATASET = '__typename model datasets { __typename name split fileIds }';
/**
 * A document of its own: 15 aliases (the default limit) named after `n`, so graphql-jit's code
 * for it is its own too (V8 shares the code of identical sources), a fragment spread in each,
 * and a comment to the default size limit, so that each of its copies is as large as allowed:
 * its APQ text, its parsed document and its compiled operation (~0.5 MB).
 */
function distinctDocument(n: number): string {
  const configs = Array.from({ length: 15 }, (_, k) => `c${k}_${n}: config { ...Dataset }`).join(' ');
  const document = `query Distinct${n} { fineTuneJobs(limit: 1) { id name status createdAt ${configs} } }
fragment Dataset on FineTuneJobConfig { ${DATASET} }
#`;
  return document.padEnd(MAX_BYTES - 100, '-');
}

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.stop());

/** Sends `count` distinct documents from `from` on, each registered with APQ as Apollo Client does. */
async function sendDistinct(from: number, count: number): Promise<void> {
  let next = from;
  const send = async () => {
    while (next < from + count) {
      const query = distinctDocument(next++);
      const sha256Hash = createHash('sha256').update(query).digest('hex');
      const response = await fetch(stack.gateway.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ACME_KEY}` },
        body: JSON.stringify({ query, extensions: { persistedQuery: { version: 1, sha256Hash } } }),
      });
      const body = (await response.json()) as { data?: unknown; errors?: unknown };
      expect({ status: response.status, errors: body.errors }).toEqual({ status: 200, errors: undefined });
    }
  };
  await Promise.all([send(), send(), send(), send()]);
  // What the test process keeps of them (the simulator's request log, the gateway's log lines).
  stack.simulator.resetRequests();
  stack.logLines.length = 0;
}

describe('distinct documents', () => {
  it(
    'hold no more than the bounds of the caches they reach, however many arrive',
    async () => {
      await sendDistinct(0, 10);
      const before = liveHeap();
      // More than every bound: 300 APQ texts of 64 KB are 19 MB, 300 parsed documents 37 MB by
      // their weight, 300 compiled operations 260 MB.
      await sendDistinct(1_000, 300);
      const grown = liveHeap() - before;
      // Measured: 40 MB. Before the bounds by size (1,000 compiled operations, 30 MiB of the
      // documents' JSON), these 300 were all kept: 143 MB.
      expect(grown).toBeLessThan(
        COMPILED_OPERATION_BYTES + PARSED_DOCUMENT_BYTES + REGISTERED_DOCUMENT_BYTES,
      );
    },
    // 310 operations of 64 KB compiled one by one, on a loaded machine.
    120_000,
  );
});
