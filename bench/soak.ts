// Load-and-fault run (`npm run soak`): the built gateway and simulator as child processes on
// loopback, autocannon with many concurrent clients for a bounded time while the simulator
// injects faults into a share of upstream requests. Every response is checked; the run prints
// its figures and exits non-zero when a bound is broken.
//
//   npm run soak -- [--connections 200] [--duration 30] [--fault-rate 0.1] [--max-rss-mb 400]
//                   [--max-operation-s 10 (a bucket of the gateway's duration histogram)] [--max-error-share 0.15]
//                   [--max-timeout-share 0.01]
//   SOAK_CONFIG=<file> merges a configuration file's keys over the run's (upstream.maxConcurrency: 128).
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { mergeConfig, readConfigFile, writeConfigFile } from '../scripts/config-file.js';
import type { Fault, SimulatorRoute } from '../src/simulator/faults.js';

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '200' },
    duration: { type: 'string', default: '30' },
    'fault-rate': { type: 'string', default: '0.1' },
    'max-rss-mb': { type: 'string', default: '400' },
    'max-operation-s': { type: 'string', default: '10' },
    'max-error-share': { type: 'string', default: '0.15' },
    'max-timeout-share': { type: 'string', default: '0.01' },
  },
});
const CONNECTIONS = Number(args.connections);
const DURATION_S = Number(args.duration);
const FAULT_RATE = Number(args['fault-rate']);
const UPSTREAM_TIMEOUT_MS = 1_000;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const KEYS = { acme: 'sim-acme-key', globex: 'sim-globex-key' } as const;

/** The faults the run cycles through, each applied to FAULT_RATE of the requests to a route. */
const FAULTS: Fault[] = [
  { status: 503 },
  { status: 500, envelope: 'text' },
  { status: 502, envelope: 'legacy', echoKey: true },
  { status: 429, retryAfter: 1 },
  { status: 429, retryAfter: 120 },
  { delayMs: UPSTREAM_TIMEOUT_MS + 500 },
  { drop: 'before' },
  { drop: 'after' },
  { malformedJson: true },
  { wrongShape: true },
  { unknownStatus: 'QUEUED_FOR_GPU' },
  { status: 404 },
  { status: 403, envelope: 'older', echoKey: true },
];
const FAULT_ROUTES: SimulatorRoute[] = ['listJobs', 'getJob'];

/** Every process this run started, stopped at the end whatever happens. */
const children: ChildProcess[] = [];

async function startChild(
  name: string,
  script: string,
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  // Keep only the tail: a long run must not grow the runner's memory.
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-200_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const match = ready.exec(output);
      if (match) {
        clearInterval(timer);
        resolve(match[1]!);
      }
    }, 20);
    child.once('exit', (code) => {
      clearInterval(timer);
      reject(new Error(`${name} exited (${code}) before it was ready:\n${output}`));
    });
  });
  return { child, url, output: () => output };
}

interface Job {
  id: string;
  orgUuid: string;
}

const tally = {
  responses: 0,
  ok: 0,
  withErrors: 0,
  codes: new Map<string, number>(),
  statuses: new Map<number, number>(),
  malformed: 0,
  leakedKeys: 0,
  crossTenant: 0,
  examples: [] as string[],
};

function count<K>(map: Map<K, number>, key: K): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function problem(kind: string, detail: string): void {
  if (tally.examples.length < 10) tally.examples.push(`${kind}: ${detail.slice(0, 300)}`);
}

/** Checks one response: well-formed GraphQL, known codes, no key, only the caller's jobs. */
function check(status: number, text: string, organization: keyof typeof KEYS, orgUuids: Map<string, string>) {
  tally.responses += 1;
  count(tally.statuses, status);
  if (text.includes(KEYS.acme) || text.includes(KEYS.globex)) {
    tally.leakedKeys += 1;
    problem('leaked key', text);
  }
  let body: { data?: Record<string, unknown> | null; errors?: { extensions?: { code?: unknown } }[] };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    tally.malformed += 1;
    problem('not JSON', `${status} ${text}`);
    return;
  }
  if (status !== 200 || typeof body !== 'object' || body === null || !('data' in body || 'errors' in body)) {
    tally.malformed += 1;
    problem('not a GraphQL response', `${status} ${text}`);
    return;
  }
  if (body.errors?.length) {
    tally.withErrors += 1;
    for (const error of body.errors) {
      const code = error.extensions?.code;
      if (typeof code !== 'string') {
        tally.malformed += 1;
        problem('error without a code', text);
      }
      count(tally.codes, String(code));
    }
  } else {
    tally.ok += 1;
  }
  const jobs = Object.values(body.data ?? {}).flatMap((v) =>
    v === null ? [] : Array.isArray(v) ? (v as Job[]) : [v as Job],
  );
  for (const job of jobs) {
    if (job.orgUuid !== orgUuids.get(organization)) {
      tally.crossTenant += 1;
      problem('another organization’s job', text);
    }
  }
}

async function rssBytes(pid: number, metricsUrl: string): Promise<number> {
  try {
    // VmHWM: the peak resident set since the process started (Linux).
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // Not Linux: ask the gateway.
  }
  try {
    const text = await (await fetch(metricsUrl)).text();
    return Number(/^process_resident_memory_bytes (\d+)/m.exec(text)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

async function main(): Promise<number> {
  const simulator = await startChild(
    'simulator',
    'dist/simulator/main.js',
    {
      SIMULATOR_PORT: '0',
      GATEWAY_CONFIG: writeConfigFile({
        simulator: { paceMs: 1000, jobsPerOrganization: 24, living: false },
      }),
    },
    /simulator at (http:\/\/\S+)/,
  );
  const control = simulator.url.replace(/\/v0\.5$/, '/__simulator');
  const gateway = await startChild(
    'gateway',
    'dist/main.js',
    {
      NODE_ENV: 'production',
      PORT: '0',
      METRICS_PORT: '0',
      HOST: '127.0.0.1',
      ATAI_API_URL: simulator.url,
      // Any other gateway setting can be tried from a file of one's own (SOAK_CONFIG), merged over these.
      GATEWAY_CONFIG: writeConfigFile(
        mergeConfig(
          {
            upstream: { timeoutMs: UPSTREAM_TIMEOUT_MS, maxRetryAfterMs: 1000, backoffLimitMs: 200 },
            // Every client comes from 127.0.0.1: the address needs room for all of them.
            http: { maxConnectionsPerAddress: Math.max(128, CONNECTIONS) },
            // And from a few keys, each far past a person's fair share a minute.
            rateLimits: { operationsPerMinute: 1_000_000, upstreamCallsPerMinute: 10_000_000 },
          },
          process.env.SOAK_CONFIG ? readConfigFile(pathToFileURL(resolve(process.env.SOAK_CONFIG))) : {},
        ),
      ),
      // Error lines only: each is a gateway bug, counted below.
      LOG_LEVEL: 'error',
    },
    // Printed after the GraphQL URL: once it is there, both are.
    /Prometheus metrics at (http:\/\/\S+)/,
  );
  const metricsUrl = gateway.url;
  const graphqlUrl = /ready at (http:\/\/\S+)/.exec(gateway.output())![1]!;
  const base = new URL(graphqlUrl);
  let crashed = 0;
  gateway.child.once('exit', (code, signal) => {
    if (!stopping) {
      crashed += 1;
      console.error(
        `soak: the gateway exited (${code} ${signal}); its last output:\n${gateway.output().slice(-4000)}`,
      );
    }
  });
  let stopping = false;

  // The jobs of each organization, straight from the simulator with each key.
  const orgUuids = new Map<string, string>();
  const jobIds = new Map<string, string[]>();
  for (const [organization, key] of Object.entries(KEYS)) {
    const jobs = (await (
      await fetch(`${simulator.url}/fine-tune/jobs`, { headers: { authorization: `Bearer ${key}` } })
    ).json()) as { id: string; org_uuid: string }[];
    orgUuids.set(organization, jobs[0]!.org_uuid);
    jobIds.set(
      organization,
      jobs.map((j) => j.id),
    );
  }

  const documents = (organization: string) => {
    const ids = jobIds.get(organization)!;
    return [
      'query Page { fineTuneJobs(limit: 10) { id orgUuid name status createdAt } }',
      'query Active { fineTuneJobs(statuses: [RUNNING, STARTING, REGISTERED], limit: 20) { id orgUuid status isTerminal } }',
      `query One { fineTuneJob(id: "${ids[3]}") { id orgUuid status config { model datasets { name split fileIds } } } }`,
      `query Mixed { page: fineTuneJobs(limit: 5, offset: 5) { id orgUuid } a: fineTuneJob(id: "${ids[1]}") { id orgUuid } b: fineTuneJob(id: "${ids[12]}") { id orgUuid } }`,
    ];
  };
  const requests: autocannon.Request[] = (Object.keys(KEYS) as (keyof typeof KEYS)[]).flatMap(
    (organization) =>
      documents(organization).map((query) => ({
        method: 'POST' as const,
        path: base.pathname,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${KEYS[organization]}` },
        body: JSON.stringify({ query }),
        onResponse: (status: number, body: string) => check(status, body, organization, orgUuids),
      })),
  );

  // Rotate the fault kinds every second, each on FAULT_RATE of the requests to each route.
  let faultIndex = 0;
  const setFaults = async () => {
    for (const route of FAULT_ROUTES) {
      const fault = FAULTS[(faultIndex + FAULT_ROUTES.indexOf(route)) % FAULTS.length]!;
      await fetch(`${control}/faults/${route}`, {
        method: 'PUT',
        body: JSON.stringify({ ...fault, probability: FAULT_RATE }),
      });
    }
    faultIndex += 1;
  };
  await setFaults();
  const rotation = setInterval(() => void setFaults(), 1_000);
  let peakRss = 0;
  let oldestInFlight = 0;
  const sampling = setInterval(() => {
    void rssBytes(gateway.child.pid!, metricsUrl).then((rss) => (peakRss = Math.max(peakRss, rss)));
    void fetch(metricsUrl)
      .then((r) => r.text())
      .then((text) => {
        const age = Number(/^gateway_http_oldest_in_flight_seconds ([\d.e+-]+)/m.exec(text)?.[1] ?? 0);
        oldestInFlight = Math.max(oldestInFlight, age);
      })
      .catch(() => undefined);
  }, 1_000);

  console.log(
    `soak: ${CONNECTIONS} concurrent clients for ${DURATION_S} s, ${FAULT_RATE * 100} % of upstream requests faulted …`,
  );
  const result = await autocannon({
    url: base.origin,
    connections: CONNECTIONS,
    duration: DURATION_S,
    timeout: 30,
    requests,
  });
  clearInterval(rotation);
  clearInterval(sampling);
  peakRss = Math.max(peakRss, await rssBytes(gateway.child.pid!, metricsUrl));

  // After the storm: faults off; the gateway must be healthy again within 30 s (an open
  // circuit half-opens and probes the upstream on the next call).
  await fetch(`${control}/faults`, { method: 'DELETE' });
  const recoveryStarted = performance.now();
  let healthz = 0;
  let readyz = 0;
  let afterOk = false;
  while (performance.now() - recoveryStarted < 30_000 && crashed === 0) {
    try {
      healthz = (await fetch(new URL('/healthz', base))).status;
      const after = await fetch(graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${KEYS.acme}` },
        body: JSON.stringify({ query: '{ fineTuneJobs(limit: 1) { id } }' }),
      });
      afterOk = after.status === 200 && !((await after.json()) as { errors?: unknown }).errors;
      readyz = (await fetch(new URL('/readyz', base))).status;
      if (healthz === 200 && readyz === 200 && afterOk) break;
    } catch (error) {
      problem('probe after the run failed', String((error as Error).cause ?? error));
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  const recoveryMs = Math.round(performance.now() - recoveryStarted);
  const metrics = crashed ? '' : await (await fetch(metricsUrl)).text();
  const upstreamRequests = [...metrics.matchAll(/^gateway_upstream_requests_total\{[^}]*\} (\d+)/gm)].reduce(
    (sum, m) => sum + Number(m[1]),
    0,
  );
  const sumOf = (pattern: RegExp) => [...metrics.matchAll(pattern)].reduce((sum, m) => sum + Number(m[1]), 0);
  const upstreamSeconds = sumOf(/^gateway_upstream_request_duration_seconds_sum\{[^}]*\} ([\d.e+-]+)/gm);
  const upstreamCount = sumOf(/^gateway_upstream_request_duration_seconds_count\{[^}]*\} (\d+)/gm);
  const operationSeconds = sumOf(/^gateway_graphql_operation_duration_seconds_sum\{[^}]*\} ([\d.e+-]+)/gm);
  const operationCount = sumOf(/^gateway_graphql_operation_duration_seconds_count\{[^}]*\} (\d+)/gm);
  // Operations that took longer than 5 and 10 s inside the gateway (from its histogram).
  const httpCount = sumOf(/^gateway_http_request_duration_seconds_count\{path="\/graphql"\} (\d+)/gm);
  const httpSlowerThan = (le: string) =>
    httpCount -
    sumOf(
      new RegExp(
        `^gateway_http_request_duration_seconds_bucket\\{le="${le}",path="/graphql"\\} (\\d+)`,
        'gm',
      ),
    );
  const aborted = sumOf(/^gateway_http_requests_aborted_total\{path="\/graphql"\} (\d+)/gm);
  const slowerThan = (le: string) =>
    operationCount -
    sumOf(
      new RegExp(`^gateway_graphql_operation_duration_seconds_bucket\\{[^}]*le="${le}"[^}]*\\} (\\d+)`, 'gm'),
    );
  const loopLagMax = Number(/^nodejs_eventloop_lag_max_seconds ([\d.e+-]+)/m.exec(metrics)?.[1] ?? 0);
  const cpuSeconds = Number(/^process_cpu_seconds_total ([\d.e+-]+)/m.exec(metrics)?.[1] ?? 0);
  const circuitOpened = Number(
    /^gateway_upstream_rejections_total\{reason="circuit_open"\} (\d+)/m.exec(metrics)?.[1] ?? 0,
  );
  const errorLines = gateway
    .output()
    .split('\n')
    .filter((line) => line.includes('"level":50') || line.includes('"level":60')).length;

  stopping = true;
  let exitCode: number | null = null;
  if (crashed === 0) {
    gateway.child.kill('SIGTERM');
    [exitCode] = (await once(gateway.child, 'exit')) as [number | null];
  }
  simulator.child.kill('SIGTERM');

  const byCount = (map: Map<string | number, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ') || 'none';
  const errorShare = tally.responses === 0 ? 1 : tally.withErrors / tally.responses;
  const bounds: [string, boolean][] = [
    [`responses checked > 0 (${tally.responses})`, tally.responses > 0],
    ['malformed responses = 0', tally.malformed === 0],
    ['gateway crashes = 0', crashed === 0],
    ['gateway error log lines = 0', errorLines === 0],
    ['INTERNAL_SERVER_ERROR = 0', !tally.codes.has('INTERNAL_SERVER_ERROR')],
    ['keys in responses = 0', tally.leakedKeys === 0],
    ['jobs of another organization = 0', tally.crossTenant === 0],
    ['connection errors (refused, reset) = 0', result.errors - result.timeouts === 0],
    // A client timeout with no request over 10 s inside the gateway is the load generator waiting
    // for CPU on a shared machine; a stuck gateway would fail the bound below as well.
    [
      `client timeouts (30 s) ≤ ${Number(args['max-timeout-share']) * 100} % of requests`,
      result.timeouts <= Number(args['max-timeout-share']) * (tally.responses + result.timeouts),
    ],
    [
      `responses with errors ≤ ${Number(args['max-error-share']) * 100} %`,
      errorShare <= Number(args['max-error-share']),
    ],
    // Measured by the gateway: on a busy machine the client's own figures include the load
    // generator's wait for CPU (it parses and checks every response).
    [
      `requests over ${args['max-operation-s']} s from arrival to response, measured by the gateway = 0`,
      httpCount > 0 &&
        httpSlowerThan(args['max-operation-s']!) === 0 &&
        slowerThan(args['max-operation-s']!) === 0,
    ],
    [
      `oldest request in flight, sampled each second, ≤ ${args['max-operation-s']} s`,
      oldestInFlight <= Number(args['max-operation-s']),
    ],
    [`peak RSS ≤ ${args['max-rss-mb']} MB`, peakRss <= Number(args['max-rss-mb']) * 1024 * 1024],
    [
      `healthy within 30 s after the faults stop (/healthz ${healthz}, /readyz ${readyz}, a query ${afterOk ? 'ok' : 'failed'})`,
      healthz === 200 && readyz === 200 && afterOk,
    ],
    ['graceful exit 0 on SIGTERM', exitCode === 0],
  ];

  console.log(`
requests served        ${tally.responses} in ${DURATION_S} s (${Math.round(result.requests.average)} req/s average)
HTTP statuses          ${byCount(tally.statuses)}
responses ok           ${tally.ok}
responses with errors  ${tally.withErrors} (${(errorShare * 100).toFixed(2)} %)
error codes            ${byCount(tally.codes)}
malformed responses    ${tally.malformed}
gateway crashes        ${crashed}
gateway error lines    ${errorLines}
keys leaked            ${tally.leakedKeys}
cross-tenant jobs      ${tally.crossTenant}
connection errors      ${result.errors} (timeouts ${result.timeouts})
latency ms             p50 ${result.latency.p50}, p90 ${result.latency.p90}, p99 ${result.latency.p99}, max ${result.latency.max}
upstream requests      ${upstreamRequests} (circuit opened ${circuitOpened} times)
slow in the gateway    ${slowerThan('5')} operations over 5 s, ${slowerThan('10')} over 10 s (HTTP request to response: ${httpSlowerThan('5')} over 5 s, ${httpSlowerThan('10')} over 10 s of ${httpCount}; ${aborted} closed by the client unanswered; oldest in flight, sampled each second: ${oldestInFlight.toFixed(1)} s)
upstream call (mean)   ${((upstreamSeconds / Math.max(upstreamCount, 1)) * 1000).toFixed(1)} ms; operation inside the gateway (mean) ${((operationSeconds / Math.max(operationCount, 1)) * 1000).toFixed(1)} ms
gateway CPU            ${cpuSeconds.toFixed(1)} s (${((cpuSeconds * 1000) / Math.max(operationCount, 1)).toFixed(2)} ms per operation); event loop lag max ${(loopLagMax * 1000).toFixed(0)} ms
healthy again after    ${recoveryMs} ms
peak RSS (gateway)     ${(peakRss / 1024 / 1024).toFixed(1)} MB
`);
  for (const example of tally.examples) console.log(`  example ${example}`);
  let broken = 0;
  for (const [name, ok] of bounds) {
    console.log(`${ok ? 'ok  ' : 'FAIL'}  ${name}`);
    if (!ok) broken += 1;
  }
  console.log(broken === 0 ? '\nsoak: all bounds held' : `\nsoak: ${broken} bound(s) broken`);
  return broken === 0 ? 0 : 1;
}

try {
  process.exitCode = await main();
} catch (error) {
  console.error('soak: the run itself failed:', error);
  process.exitCode = 2;
} finally {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
