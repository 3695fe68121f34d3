// `npm run bench`: the simulator (2,000 jobs), the gateway in production mode and a pass-through
// proxy (the floor of any Node layer), each its own process on loopback; autocannon loads the
// direct REST call and each of them in turn for every scenario, and prints a table of throughput
// ratios to direct, the gateway's Apollo Server pipeline runs and CPU per request, and whether
// each scenario's target (bench/scenarios.ts) is met. Method and the latest table: bench/README.md.
//
// Settings (environment): BENCH_DURATION_S (5), BENCH_ROUNDS (3), BENCH_SCENARIOS (e.g. "1,4":
// 1-based, default all), BENCH_CPU_PROF (a folder: write the gateway's CPU profile there),
// BENCH_BASELINE_GATEWAY (another build's dist/main.js, loaded as one more target),
// BENCH_CACHE_TTL_MS (one more gateway with that http.responseCacheTtlMs, loaded on the shared scenarios
// only: on distinct pages a cache would answer what must reach the upstream), BENCH_TRACING=1
// (one more gateway with OpenTelemetry on, every span exported to an OTLP receiver in this
// process that counts and discards them; its cost against the gateway is printed at the end).
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import autocannon from 'autocannon';
import {
  benchHeader,
  cpuMs,
  median,
  peakRssMb,
  resetPeakRss,
  startChild,
  urlInLog,
  type Child,
} from './processes.js';
import { writeConfigFile } from '../scripts/config-file.js';
import { SCENARIOS, expectedGraphQLJobs, graphqlBody, restPath, type Scenario } from './scenarios.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const API_KEY = 'sim-acme-key';
const CONNECTIONS = 16;
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARMUP_S = 1;
const CPU_PROFILE_DIR = process.env.BENCH_CPU_PROF;
// Another build of the gateway (its dist/main.js) to load side by side, e.g. main's.
const BASELINE_GATEWAY = process.env.BENCH_BASELINE_GATEWAY;

/**
 * The whole load comes from one caller, far past a person's fair share: the rate limits are
 * raised, not turned off, so what they cost is measured.
 */
const ONE_CALLER = { operationsPerMinute: 1_000_000, upstreamCallsPerMinute: 10_000_000 };

/** Whether a build's entry point reads gateway.config.yaml (GATEWAY_CONFIG): its config.js says. */
function readsConfigFile(main: string): boolean {
  return readFileSync(join(dirname(resolve(main)), 'config.js'), 'utf8').includes('GATEWAY_CONFIG');
}
const CACHE_TTL_MS = process.env.BENCH_CACHE_TTL_MS;
const TRACING = process.env.BENCH_TRACING === '1';
const TRACED = 'gateway, tracing on';

/** An OTLP/HTTP receiver that counts the spans of each export and discards them. */
async function startSpanSink(): Promise<{ url: string; spans(): number; close(): void }> {
  let spans = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: { scopeSpans: { spans: unknown[] }[] }[];
      };
      for (const { scopeSpans } of body.resourceSpans)
        for (const scope of scopeSpans) spans += scope.spans.length;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans: () => spans,
    close: () => server.close(),
  };
}

/** A way to get a scenario's data: the REST call direct or through the proxy, or a gateway. */
interface Endpoint {
  name: string;
  url: string;
  graphql: boolean;
  /** The process serving it, whose CPU time and memory are read. */
  pid: number;
  /** Loaded only where every request asks the same page. */
  sharedOnly?: boolean;
  /** A gateway's /metrics, where its Apollo Server pipeline runs are counted. */
  metricsUrl?: string;
}
const GRAPHQL_PREFIX = '{"data":{"fineTuneJobs":[';

interface Target {
  name: string;
  url: string;
  graphql: boolean;
  pid: number;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  /** One request per page: a path (REST) or a body (GraphQL). */
  requests: string[];
  /** Expected body length by the first job id of the page: the cheap check of every response. */
  lengths: Map<string, number>;
  metricsUrl?: string;
}

interface Run {
  rps: number;
  p50: number;
  p99: number;
  upstreamPerRequest: number;
  peakRssMb: number | undefined;
  /** CPU time of the serving process per completed request. */
  cpuMsPerRequest: number | undefined;
  /** Runs of Apollo Server's request pipeline per request sent (a gateway's; 1 is the rule). */
  pipelineRunsPerRequest: number | undefined;
  failures: number;
}

/** Operations a gateway has run through its pipeline so far (its operation counter, all labels). */
async function pipelineRuns(metricsUrl: string | undefined): Promise<number | undefined> {
  if (metricsUrl === undefined) return undefined;
  const text = await (await fetch(metricsUrl)).text();
  let total = 0;
  for (const match of text.matchAll(/^gateway_graphql_operations_total\{[^}]*\} (\d+)$/gm)) {
    total += Number(match[1]);
  }
  return total;
}

function firstJobId(body: string): string | undefined {
  const at = body.indexOf('"id":"');
  if (at < 0 || at > 200) return undefined;
  return body.slice(at + 6, body.indexOf('"', at + 6));
}

/** Is this one response the expected data? Status, envelope, page identity and exact length. */
function isValid(target: Target, status: number, body: string): boolean {
  if (status !== 200) return false;
  if (target.graphql ? !body.startsWith(GRAPHQL_PREFIX) : body[0] !== '[') return false;
  const id = firstJobId(body);
  return id !== undefined && target.lengths.get(id) === body.length;
}

async function getJson(url: string, init: RequestInit = {}): Promise<{ text: string; json: unknown }> {
  const response = await fetch(url, init);
  const text = await response.text();
  if (!response.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${response.status} ${text}`);
  return { text, json: JSON.parse(text) };
}

/** Before loading: each gateway and the proxy must return exactly the upstream's data, page by page. */
async function buildTargets(scenario: Scenario, endpoints: Endpoint[]): Promise<Target[]> {
  const auth = { authorization: `Bearer ${API_KEY}` };
  const gqlHeaders = { ...auth, 'content-type': 'application/json' };
  const targets: Target[] = endpoints.map((endpoint) => ({
    ...endpoint,
    method: endpoint.graphql ? 'POST' : 'GET',
    headers: endpoint.graphql ? gqlHeaders : auth,
    requests: [],
    lengths: new Map(),
  }));
  const direct = targets[0]!;
  for (const page of scenario.pages) {
    const path = restPath(page);
    const upstream = await getJson(`${direct.url}${path}`, { headers: auth });
    const jobs = upstream.json as Parameters<typeof expectedGraphQLJobs>[0];
    const id = jobs[0]?.id;
    if (id === undefined) throw new Error(`${scenario.name}: the upstream page ${path} is empty`);
    for (const target of targets) {
      if (!target.graphql) {
        const answer = await getJson(`${target.url}${path}`, { headers: auth });
        if (answer.text !== upstream.text)
          throw new Error(`${scenario.name}: ${target.name} changed ${path}`);
        target.requests.push(path);
        target.lengths.set(id, answer.text.length);
        continue;
      }
      const body = graphqlBody(page);
      const answer = await getJson(target.url, { method: 'POST', headers: gqlHeaders, body });
      const result = answer.json as { data?: { fineTuneJobs: unknown[] }; errors?: unknown };
      if (
        result.errors !== undefined ||
        !isDeepStrictEqual(result.data?.fineTuneJobs, expectedGraphQLJobs(jobs))
      ) {
        throw new Error(`${scenario.name}: ${target.name}'s answer for ${path} is not the upstream's data`);
      }
      target.requests.push(body);
      target.lengths.set(id, answer.text.length);
    }
  }
  return targets;
}

async function load(target: Target, seconds: number, simulatorControl: string): Promise<Run> {
  await fetch(`${simulatorControl}/requests`, { method: 'DELETE' });
  if (target.graphql) resetPeakRss(target.pid);
  const runsBefore = await pipelineRuns(target.metricsUrl);
  const cpuBefore = cpuMs(target.pid);
  let next = 0;
  let invalid = 0;
  const isPath = target.method === 'GET';
  const base = new URL(target.url);
  const result = await autocannon({
    url: base.origin,
    connections: CONNECTIONS,
    duration: seconds,
    method: target.method,
    headers: target.headers,
    requests: [
      {
        // A global counter, so concurrent requests of a distinct-page scenario ask different pages.
        setupRequest: (request) => {
          const item = target.requests[next++ % target.requests.length]!;
          return isPath
            ? { ...request, path: `${base.pathname}${item}` }
            : { ...request, path: base.pathname, body: item };
        },
        onResponse: (status, body) => {
          if (!isValid(target, status, body)) invalid += 1;
        },
      },
    ],
  });
  const cpuAfter = cpuMs(target.pid);
  // Requests still in flight when the run stopped have reached the upstream too: let them land,
  // and count upstream calls per request sent.
  await sleep(500);
  const counts = (await getJson(`${simulatorControl}/requests/count`)).json as {
    byRoute: Record<string, number>;
  };
  const { sent, total: completed } = result.requests;
  const runsAfter = await pipelineRuns(target.metricsUrl);
  return {
    rps: completed / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    upstreamPerRequest: sent === 0 ? 0 : (counts.byRoute.listJobs ?? 0) / sent,
    peakRssMb: target.graphql ? peakRssMb(target.pid) : undefined,
    cpuMsPerRequest:
      cpuBefore === undefined || cpuAfter === undefined || completed === 0
        ? undefined
        : (cpuAfter - cpuBefore) / completed,
    pipelineRunsPerRequest:
      runsBefore === undefined || runsAfter === undefined || sent === 0
        ? undefined
        : (runsAfter - runsBefore) / sent,
    failures: invalid + result.errors + result.timeouts,
  };
}

const fixed = (value: number, digits: number) => value.toFixed(digits);
/** A gateway's /metrics, on the port it printed (METRICS_PORT=0: any free one). */
const metricsOf = (gateway: Child) => urlInLog(gateway, 'Prometheus metrics at');

/** The scenario's target, and whether the gateway's medians meet it. */
function verdict(scenario: Scenario, ratio: number, p50Ratio: number, peakRss: number | undefined): string {
  const { target } = scenario;
  const parts = [`≥ ${fixed(target.ratio, 2)}x`];
  let met = ratio >= target.ratio;
  if (target.p50Ratio !== undefined) {
    parts.push(`p50 ≤ ${target.p50Ratio}x`);
    met &&= p50Ratio <= target.p50Ratio;
  }
  if (target.peakRssMb !== undefined) {
    parts.push(`peak RSS ≤ ${target.peakRssMb} MB`);
    met &&= peakRss !== undefined && peakRss <= target.peakRssMb;
  }
  return `${parts.join(', ')}: ${met ? 'met' : '**not met**'}`;
}

async function main(): Promise<void> {
  const logs = mkdtempSync(join(tmpdir(), 'gateway-bench-'));
  const selected = process.env.BENCH_SCENARIOS
    ? process.env.BENCH_SCENARIOS.split(',').map((n) => SCENARIOS[Number(n) - 1]!)
    : SCENARIOS;
  const children: Child[] = [];
  const sink = TRACING ? await startSpanSink() : undefined;
  try {
    const simulator = await startChild({
      name: 'simulator',
      script: join(ROOT, 'dist/simulator/main.js'),
      env: {
        SIMULATOR_PORT: '0',
        GATEWAY_CONFIG: writeConfigFile({
          simulator: { paceMs: 0, jobsPerOrganization: 2000, living: false },
        }),
      },
      logFile: join(logs, 'simulator.log'),
      readyText: 'simulator at',
    });
    children.push(simulator);
    const proxy = await startChild({
      name: 'proxy',
      script: join(ROOT, 'dist-bench/bench/proxy.js'),
      env: { PORT: '0', PROXY_TARGET: new URL(simulator.url).origin },
      logFile: join(logs, 'proxy.log'),
      readyText: 'proxy at',
    });
    children.push(proxy);
    const gatewayEnv = {
      NODE_ENV: 'production',
      PORT: '0',
      METRICS_PORT: '0',
      HOST: '127.0.0.1',
      ATAI_API_URL: simulator.url,
      ATAI_API_KEY: API_KEY,
      // A page of 500 jobs with every field costs 8,001 against the default limit of 5,000:
      // an operator serving such clients raises it (the all-jobs query is costed differently).
      GATEWAY_CONFIG: writeConfigFile({ limits: { maxCost: 20_000 }, rateLimits: ONE_CALLER }),
    };
    const gateway = await startChild({
      name: 'gateway',
      script: join(ROOT, 'dist/main.js'),
      env: gatewayEnv,
      nodeArgs: CPU_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${resolve(CPU_PROFILE_DIR)}`] : [],
      logFile: join(logs, 'gateway.log'),
      readyText: 'gateway ready at',
    });
    children.push(gateway);
    const endpoints: Endpoint[] = [
      { name: 'direct', url: simulator.url, graphql: false, pid: simulator.pid },
      {
        name: 'proxy',
        url: `${proxy.url}${new URL(simulator.url).pathname}`,
        graphql: false,
        pid: proxy.pid,
      },
      {
        name: 'gateway',
        url: gateway.url,
        graphql: true,
        pid: gateway.pid,
        metricsUrl: metricsOf(gateway),
      },
    ];
    if (BASELINE_GATEWAY) {
      const baseline = await startChild({
        name: 'gateway (before)',
        script: resolve(BASELINE_GATEWAY),
        // A build from before the configuration file reads its settings from the environment
        // (and one since refuses the old variable).
        env: readsConfigFile(BASELINE_GATEWAY) ? gatewayEnv : { ...gatewayEnv, QUERY_MAX_COST: '20000' },
        logFile: join(logs, 'gateway-before.log'),
        readyText: 'gateway ready at',
      });
      children.push(baseline);
      endpoints.push({
        name: 'gateway (before)',
        url: baseline.url,
        graphql: true,
        pid: baseline.pid,
        metricsUrl: metricsOf(baseline),
      });
    }
    if (CACHE_TTL_MS) {
      const cached = await startChild({
        name: 'gateway (cache)',
        script: join(ROOT, 'dist/main.js'),
        env: {
          ...gatewayEnv,
          GATEWAY_CONFIG: writeConfigFile({
            limits: { maxCost: 20_000 },
            rateLimits: ONE_CALLER,
            http: { responseCacheTtlMs: Number(CACHE_TTL_MS) },
          }),
        },
        logFile: join(logs, 'gateway-cache.log'),
        readyText: 'gateway ready at',
      });
      children.push(cached);
      endpoints.push({
        name: `gateway, responseCacheTtlMs ${CACHE_TTL_MS}`,
        url: cached.url,
        graphql: true,
        pid: cached.pid,
        sharedOnly: true,
        metricsUrl: metricsOf(cached),
      });
    }
    let traced: Child | undefined;
    if (sink) {
      traced = await startChild({
        name: TRACED,
        script: join(ROOT, 'dist/main.js'),
        // Every span sampled and exported: the default sampler, and a client that sends no traceparent.
        env: { ...gatewayEnv, OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_SERVICE_NAME: 'gateway-bench' },
        logFile: join(logs, 'gateway-tracing.log'),
        readyText: 'gateway ready at',
      });
      children.push(traced);
      endpoints.push({
        name: TRACED,
        url: traced.url,
        graphql: true,
        pid: traced.pid,
        metricsUrl: metricsOf(traced),
      });
    }
    const control = `${new URL(simulator.url).origin}/__simulator`;
    const tracingCosts: string[] = [];

    console.log(benchHeader(CONNECTIONS, ROUNDS, DURATION_S, 'target'));
    console.log(
      '| scenario | target | req/s | ratio to direct (spread) | p50 ms (× direct) | p99 ms | upstream calls/req | pipeline runs/req | CPU ms/req | peak RSS MB | failed responses |',
    );
    console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    let totalFailures = 0;
    const verdicts: string[] = [];
    for (const scenario of selected) {
      const shared = scenario.pages.length === 1;
      const targets = await buildTargets(
        scenario,
        endpoints.filter((endpoint) => shared || !endpoint.sharedOnly),
      );
      for (const target of targets) await load(target, WARMUP_S, control);
      const runs = new Map<string, Run[]>(targets.map((t) => [t.name, []]));
      for (let round = 0; round < ROUNDS; round++) {
        // Alternate which target goes first, so no one always runs on a warmer or cooler machine.
        const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
        for (const target of order) runs.get(target.name)!.push(await load(target, DURATION_S, control));
      }
      const direct = runs.get('direct')!;
      for (const { name } of targets) {
        const own = runs.get(name)!;
        const ratios = own.map((run, i) => run.rps / direct[i]!.rps);
        const p50Ratios = own.map((run, i) => run.p50 / Math.max(direct[i]!.p50, 0.001));
        const peaks = own.map((run) => run.peakRssMb).filter((v) => v !== undefined);
        const failures = own.reduce((sum, run) => sum + run.failures, 0);
        totalFailures += failures;
        const runsPerRequest = own.map((r) => r.pipelineRunsPerRequest).filter((v) => v !== undefined);
        const peak = peaks.length ? Math.max(...peaks) : undefined;
        console.log(
          `| ${scenario.name} | ${name} | ${fixed(median(own.map((r) => r.rps)), 0)} | ` +
            `**${fixed(median(ratios), 2)}x** (${fixed(Math.min(...ratios), 2)}–${fixed(Math.max(...ratios), 2)}) | ` +
            `${fixed(median(own.map((r) => r.p50)), 0)} (${fixed(median(p50Ratios), 1)}x) | ` +
            `${fixed(median(own.map((r) => r.p99)), 0)} | ` +
            `${fixed(median(own.map((r) => r.upstreamPerRequest)), 3)} | ` +
            `${runsPerRequest.length ? fixed(median(runsPerRequest), 2) : ''} | ` +
            `${fixed(median(own.map((r) => r.cpuMsPerRequest ?? Number.NaN)), 2)} | ` +
            `${peak === undefined ? '' : fixed(peak, 0)} | ${failures} |`,
        );
        if (name === 'gateway') {
          const text = verdict(scenario, median(ratios), median(p50Ratios), peak);
          verdicts.push(`- ${scenario.name}: ${text}`);
        }
      }
      const on = runs.get(TRACED);
      const off = runs.get('gateway')!;
      if (on) {
        // Round by round against the gateway without tracing, loaded in the same round.
        const throughput = on.map((run, i) => run.rps / off[i]!.rps);
        const cpu = on.map(
          (run, i) => (run.cpuMsPerRequest ?? Number.NaN) - (off[i]!.cpuMsPerRequest ?? Number.NaN),
        );
        const p50 = on.map((run, i) => run.p50 - off[i]!.p50);
        const range = (values: number[], digits: number) =>
          `${fixed(median(values), digits)} (${fixed(Math.min(...values), digits)} to ${fixed(Math.max(...values), digits)})`;
        tracingCosts.push(
          `- ${scenario.name}: throughput ${range(throughput, 2)}x of the gateway's; ` +
            `CPU ${range(cpu, 2)} ms/req more; p50 ${range(p50, 1)} ms more`,
        );
      }
    }
    console.log(`\nTargets (the gateway's medians against direct):\n${verdicts.join('\n')}`);
    if (traced && sink) {
      // Stopped first: its stop sends the spans still queued, so that every span is counted.
      const operations = await pipelineRuns(metricsOf(traced));
      await traced.stop();
      console.log(
        `\nTracing on, against the gateway in the same rounds (median, lowest to highest round):\n` +
          `${tracingCosts.join('\n')}\n- spans exported per operation: ${fixed(sink.spans() / (operations ?? Number.NaN), 2)}`,
      );
    }

    if (totalFailures > 0) {
      console.error(`${totalFailures} responses were not the expected data (logs in ${logs})`);
      process.exitCode = 1;
    }
  } finally {
    for (const child of children.reverse()) await child.stop();
    sink?.close();
  }
}

await main();
