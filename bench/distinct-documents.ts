// What distinct documents leave in memory: the simulator and the gateway in this process at their
// defaults, N distinct small queries (one alias varied, 43 characters each) sent over HTTP, then
// the live heap after a full GC and the RSS. Every cache a document reaches is bounded
// (docs/security.md, "Distinct documents"): the heap grows to their bounds and no further.
//
//   npx tsx bench/distinct-documents.ts [--queries 40000] [--concurrency 8]
import { setFlagsFromString } from 'node:v8';
import { parseArgs } from 'node:util';
import { runInNewContext } from 'node:vm';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/logging.js';
import { startGateway } from '../src/server.js';
import { startSimulator } from '../src/simulator/server.js';

const { values: args } = parseArgs({
  options: {
    queries: { type: 'string', default: '40000' },
    concurrency: { type: 'string', default: '8' },
  },
});
const QUERIES = Number(args.queries);
const CONCURRENCY = Number(args.concurrency);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MB = 1024 * 1024;

/**
 * The live heap: what full GCs leave (twice: finalizers and weak references let go of more on the
 * second). `flushCode`: V8 also drops the bytecode of functions not running, and with it its
 * compilation cache's hold on the source of each `new Function` (graphql-jit's code of
 * operations already evicted), as it does by itself after 5 major GCs (forced ones age nothing).
 */
function liveHeap(flushCode = false): number {
  if (flushCode) setFlagsFromString('--stress-flush-code');
  gc();
  gc();
  if (flushCode) setFlagsFromString('--no-stress-flush-code');
  return process.memoryUsage().heapUsed;
}

const simulator = await startSimulator({ jobsPerOrganization: 12 });
const config = loadConfig({
  PORT: '0',
  METRICS_PORT: '0',
  HOST: '127.0.0.1',
  ATAI_API_URL: simulator.url,
});
const gateway = await startGateway({
  config,
  upstreamBaseUrl: simulator.url,
  serverApiKey: undefined,
  // Lines are written and dropped, as a log shipper would take them.
  logger: createLogger('info', { destination: { write: () => undefined } }),
});

async function send(document: string): Promise<void> {
  const response = await fetch(gateway.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sim-acme-key' },
    body: JSON.stringify({ query: document }),
  });
  const body = (await response.json()) as { errors?: unknown };
  if (response.status !== 200 || body.errors) throw new Error(`${response.status}: ${JSON.stringify(body)}`);
}

async function sendDistinct(from: number, count: number): Promise<void> {
  let next = from;
  const end = from + count;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < end) await send(`{ a${next++}: fineTuneJobs(limit: 1) { id } }`);
    }),
  );
  // The simulator's request log is this process's too, not the gateway's.
  simulator.resetRequests();
}

// Warm: the code paths, the schema's derived data, the first connections.
await sendDistinct(0, 200);
const before = [liveHeap(), liveHeap(true)];
const started = performance.now();
await sendDistinct(1_000_000, QUERIES);
const seconds = (performance.now() - started) / 1000;
const { rss } = process.memoryUsage();
const after = [liveHeap(), liveHeap(true)];

const figures = (label: string, [was, is]: number[]) =>
  `${label}: ${(was! / MB).toFixed(1)} MB before, ${(is! / MB).toFixed(1)} MB after (+${((is! - was!) / MB).toFixed(1)} MB)`;
console.log(
  [
    `${QUERIES} distinct queries in ${seconds.toFixed(1)} s (${Math.round(QUERIES / seconds)}/s), Node ${process.version}`,
    figures('live heap after a full GC', [before[0]!, after[0]!]),
    figures('the same, unused code flushed', [before[1]!, after[1]!]),
    `RSS after the queries: ${(rss / MB).toFixed(0)} MB`,
  ].join('\n'),
);
await gateway.stop();
await simulator.stop();
