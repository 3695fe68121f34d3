// The fleet measured (`npx tsx bench/fleet.ts`, after `npm run build`): scripts/fleet.mjs starts
// Redis, the simulator, three instances and HAProxy; then, through the balancer,
//   (a) 300 graphql-ws subscribers to one RUNNING job: upstream polls of it per poll interval,
//       counted at the simulator;
//   (b) the bench's shared query (bench/scenarios.ts, `limit: 50`, 16 connections) with the
//       response cache on: upstream list calls per request, and APQ by hash across instances;
//   (c) one instance SIGKILLed under load, while the job changes: failed requests, subscribers
//       that reconnected, and events they missed (against a subscriber on a surviving instance).
// Prints the figures as Markdown. Settings: FLEET_BENCH_DURATION_S (5), FLEET_BENCH_SUBSCRIBERS
// (300), FLEET_BENCH_CACHE_TTL_MS (60000).
import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { fleetEnvironment, freeFleetPorts } from '../scripts/fleet-ports.js';
import { JOBS_QUERY, graphqlBody } from './scenarios.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const KEY = 'sim-acme-key';
const DURATION_S = Number(process.env.FLEET_BENCH_DURATION_S ?? 5);
const SUBSCRIBERS = Number(process.env.FLEET_BENCH_SUBSCRIBERS ?? 300);
const CACHE_TTL_MS = Number(process.env.FLEET_BENCH_CACHE_TTL_MS ?? 60_000);
const POLL_MS = 1_000;
const CONNECTIONS = 16;

const ports = await freeFleetPorts();
const balancer = `http://127.0.0.1:${ports.balancer}/graphql`;
const control = `http://127.0.0.1:${ports.simulator}/__simulator`;

let output = '';
const fleet = spawn(process.execPath, ['scripts/fleet.mjs'], {
  cwd: ROOT,
  env: {
    PATH: process.env.PATH,
    ...fleetEnvironment(ports, {
      // Jobs move only when this run says (POST /__simulator/advance), so the job stays RUNNING.
      simulator: { paceMs: 0, jobsPerOrganization: 2000 },
      limits: { maxCost: 20_000 },
      http: { responseCacheTtlMs: CACHE_TTL_MS },
      // Behind the balancer every connection comes from HAProxy's address.
      subscriptions: { activePollMs: POLL_MS, connectionsPerAddress: 10_000, perKey: 10_000 },
    }),
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});
fleet.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
fleet.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
const fleetExited = once(fleet, 'exit');
const clients: Client[] = [];
async function stopAll(): Promise<void> {
  await Promise.all(clients.map((c) => c.dispose()));
  if (fleet.exitCode === null) {
    fleet.kill('SIGTERM');
    await fleetExited;
  }
}
process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));

const pids = () =>
  Object.fromEntries(
    [...output.matchAll(/fleet: started (\S+) \(pid (\d+)\)/g)].map((m) => [m[1]!, Number(m[2])]),
  );

async function getJson<T>(url: string): Promise<T> {
  return (await (await fetch(url)).json()) as T;
}
async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...headers },
    body: JSON.stringify(body),
  });
  return (await response.json()) as {
    data?: Record<string, unknown>;
    errors?: { extensions?: { code?: string } }[];
  };
}
async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let total = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+-]+)$`, 'gm')))
    total += Number(m[1]);
  return total;
}
const perInstance = (name: string) => Promise.all(ports.metrics.map((p) => metric(p, name).catch(() => NaN)));
async function routeCount(route: string): Promise<number> {
  const counts = await getJson<{ byRoute: Record<string, number> }>(`${control}/requests/count`);
  return counts.byRoute[route] ?? 0;
}
/** HAProxy's per-instance figures (status, scur: sessions now, WebSockets included; eresp, wretr, wredis, hrsp_5xx). */
async function stats(): Promise<Record<string, Record<string, string>>> {
  const [header, ...rows] = (await (await fetch(`http://127.0.0.1:${ports.stats}/stats;csv`)).text())
    .trim()
    .split('\n');
  const cols = header!.replace(/^# /, '').split(',');
  const at = (cells: string[], c: string) => cells[cols.indexOf(c)]!;
  return Object.fromEntries(
    rows
      .map((r) => r.split(','))
      .filter(
        (cells) =>
          (at(cells, 'pxname') === 'gateways' && at(cells, 'svname').startsWith('gateway')) ||
          (at(cells, 'pxname') === 'graphql' && at(cells, 'svname') === 'FRONTEND'),
      )
      .map((cells) => [at(cells, 'svname'), Object.fromEntries(cols.map((c) => [c, at(cells, c)]))]),
  );
}

interface Subscriber {
  client: Client;
  /** `status updatedAt` of every event received, in order. */
  seen: string[];
  reconnects: number;
  errors: number;
  completed: boolean;
}
const SUBSCRIPTION = `subscription Watch($id: ID!) { fineTuneJobUpdated(id: $id) { id status updatedAt } }`;

function subscribe(url: string, jobId: string): Subscriber {
  let connections = 0;
  const subscriber: Subscriber = {
    client: undefined as never,
    seen: [],
    reconnects: 0,
    errors: 0,
    completed: false,
  };
  subscriber.client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${KEY}` },
    retryAttempts: 50,
    shouldRetry: () => true,
    retryWait: () => sleep(100 + Math.random() * 400),
    on: {
      connected: () => {
        connections += 1;
        if (connections > 1) subscriber.reconnects += 1;
      },
    },
  });
  clients.push(subscriber.client);
  subscriber.client.subscribe<{ fineTuneJobUpdated: { status: string; updatedAt: string } }>(
    { query: SUBSCRIPTION, variables: { id: jobId } },
    {
      next: ({ data, errors }) => {
        if (errors) subscriber.errors += 1;
        if (data)
          subscriber.seen.push(`${data.fineTuneJobUpdated.status} ${data.fineTuneJobUpdated.updatedAt}`);
      },
      error: () => (subscriber.errors += 1),
      complete: () => (subscriber.completed = true),
    },
  );
  return subscriber;
}

const until = async (what: string, condition: () => boolean | Promise<boolean>, seconds = 60) => {
  const deadline = Date.now() + seconds * 1000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
};

const lines: string[] = [];
const say = (line: string) => {
  lines.push(line);
  console.log(line);
};

try {
  await until('the fleet', () => output.includes('fleet: ready at'));
  const commit = spawn('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT });
  let head = '';
  commit.stdout.on('data', (c: Buffer) => (head += c.toString().trim()));
  await once(commit, 'exit');
  say(
    `Fleet run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model.trim()}), HEAD ${head} plus the working tree; three instances behind HAProxy, REDIS_URL set.`,
  );

  // (a) one poller for 300 subscribers?
  const running = await post(balancer, { query: '{ fineTuneJobs(statuses: [RUNNING], limit: 1) { id } }' });
  const jobId = (running.data?.fineTuneJobs as { id: string }[])[0]!.id;
  const wsUrl = balancer.replace('http', 'ws');
  const subscribers = Array.from({ length: SUBSCRIBERS }, () => subscribe(wsUrl, jobId));
  await until('every subscriber first event', () => subscribers.every((s) => s.seen.length > 0));
  const spread = await stats();
  const pollsOf = async () =>
    (await getJson<{ route: string | null; path: string }[]>(`${control}/requests`)).filter(
      (r) => r.route === 'getJob' && r.path.endsWith(`/${jobId}`),
    ).length;
  const polls0 = await pollsOf();
  const t0 = Date.now();
  await sleep(10 * POLL_MS);
  const polls1 = await pollsOf();
  const intervals = (Date.now() - t0) / POLL_MS;
  const pollers = await perInstance('gateway_subscription_pollers');
  say('');
  say(`(a) ${SUBSCRIBERS} subscribers to one RUNNING job through the balancer`);
  say(
    `- WebSocket sessions per instance (HAProxy): ${Object.entries(spread)
      .filter(([name]) => name !== 'FRONTEND')
      .map(([, s]) => s.scur)
      .join(', ')}`,
  );
  say(
    `- upstream polls of the job: ${polls1 - polls0} in ${intervals.toFixed(1)} intervals of ${POLL_MS} ms = ${((polls1 - polls0) / intervals).toFixed(2)} per interval; pollers per instance: ${pollers.join(', ')}`,
  );

  // (b) the shared query through the balancer, with the response cache.
  const page = { statuses: null, limit: 50, offset: 0 };
  const list0 = await routeCount('listJobs');
  const ops0 = await perInstance('gateway_graphql_operations_total');
  const cached0 = await perInstance('gateway_graphql_cached_responses_total');
  const load = await autocannon({
    url: balancer,
    connections: CONNECTIONS,
    duration: DURATION_S,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: graphqlBody(page),
  });
  await sleep(500);
  const listCalls = (await routeCount('listJobs')) - list0;
  const ops = (await perInstance('gateway_graphql_operations_total')).map((v, i) => v - ops0[i]!);
  const cached = (await perInstance('gateway_graphql_cached_responses_total')).map((v, i) => v - cached0[i]!);
  const sent = load.requests.sent;
  say('');
  say(
    `(b) the shared query (\`limit: 50\`, ${CONNECTIONS} connections, ${DURATION_S} s, http.responseCacheTtlMs ${CACHE_TTL_MS}) through the balancer`,
  );
  say(
    `- ${Math.round(load.requests.average)} req/s, p50 ${load.latency.p50} ms, p99 ${load.latency.p99} ms, ${load.non2xx} non-2xx, ${load.errors} errors; operations per instance ${ops.join(', ')}`,
  );
  say(
    `- upstream list calls: ${listCalls} for ${sent} requests (${(listCalls / sent).toFixed(4)} per request); answered from the cache per instance: ${cached.join(', ')} (hit rate ${((cached.reduce((a, b) => a + b, 0) / sent) * 100).toFixed(2)} %)`,
  );
  // The same load on one instance directly: what the balancer and the spread cost.
  const direct = await autocannon({
    url: `http://127.0.0.1:${ports.gateways[0]}/graphql`,
    connections: CONNECTIONS,
    duration: DURATION_S,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: graphqlBody(page),
  });
  say(
    `- the same load on instance 1 directly, for comparison: ${Math.round(direct.requests.average)} req/s, p50 ${direct.latency.p50} ms, p99 ${direct.latency.p99} ms`,
  );
  // A fresh query per instance pair: cached by one instance, asked of the others directly.
  const probe = `{ fineTuneJobs(limit: 3, offset: 7) { id } }`;
  const probeList0 = await routeCount('listJobs');
  for (const port of ports.gateways) await post(`http://127.0.0.1:${port}/graphql`, { query: probe });
  say(
    `- one new query sent once to each instance directly: ${(await routeCount('listJobs')) - probeList0} upstream list calls (1: the cache is shared; 3: each instance caches alone)`,
  );
  const apqQuery = `{ fineTuneJobs(limit: 1, offset: 11) { id status } }`;
  const sha256Hash = createHash('sha256').update(apqQuery).digest('hex');
  const extensions = { persistedQuery: { version: 1, sha256Hash } };
  await post(`http://127.0.0.1:${ports.gateways[0]}/graphql`, { query: apqQuery, extensions });
  const apq = [];
  for (const port of ports.gateways.slice(1)) {
    const answer = await post(`http://127.0.0.1:${port}/graphql`, { extensions });
    apq.push(answer.errors?.[0]?.extensions?.code ?? (answer.data ? 'data' : 'nothing'));
  }
  say(`- APQ registered on instance 1, then the hash alone to instances 2 and 3: ${apq.join(', ')}`);

  // (c) instance 2 killed under load, while the job changes.
  const reference = subscribe(`ws://127.0.0.1:${ports.gateways[0]}/graphql`, jobId);
  await until('the reference subscriber', () => reference.seen.length > 0);
  const before = await stats();
  // 100 ms of upstream latency, as a real API has: requests are then in flight on every instance
  // when one dies, and those on it are what may fail.
  await fetch(`${control}/faults/listJobs`, { method: 'PUT', body: JSON.stringify({ delayMs: 100 }) });
  let invalid = 0;
  let failed = 0;
  const loadRun = autocannon({
    url: balancer,
    connections: CONNECTIONS,
    duration: 8,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    requests: [
      {
        // Distinct pages (1 in 100,000 repeats, so the cache rarely answers): these reach the
        // upstream, so requests are in flight on every instance.
        setupRequest: (request) => ({
          ...request,
          body: JSON.stringify({
            query: JOBS_QUERY,
            variables: {
              limit: 1 + Math.floor(Math.random() * 50),
              offset: Math.floor(Math.random() * 2000),
            },
          }),
        }),
        onResponse: (status, body) => {
          if (status !== 200) failed += 1;
          else if (!body.startsWith('{"data":{"fineTuneJobs":[')) invalid += 1;
        },
      },
    ],
  });
  const steps = (async () => {
    for (let i = 0; i < 6; i++) {
      await sleep(1_200);
      await fetch(`${control}/advance?steps=1`, { method: 'POST' });
    }
  })();
  await sleep(3_000);
  const victim = pids()['gateway-2']!;
  process.kill(victim, 'SIGKILL');
  const killedAt = Date.now();
  await until('gateway2 DOWN', async () => (await stats()).gateway2?.status === 'DOWN');
  const downAfterMs = Date.now() - killedAt;
  const [result] = await Promise.all([loadRun, steps]);
  await fetch(`${control}/faults`, { method: 'DELETE' });
  const last = () => reference.seen.at(-1);
  await until('every subscriber at the last state', () =>
    subscribers.every((s) => s.completed || s.seen.at(-1) === last()),
  );
  let lost = 0;
  let affected = 0;
  for (const s of subscribers) {
    const first = reference.seen.indexOf(s.seen[0]!);
    const missed = reference.seen.slice(Math.max(first, 0)).filter((state) => !s.seen.includes(state)).length;
    lost += missed;
    if (missed > 0) {
      affected += 1;
      if (affected <= 3)
        console.log(
          `  missed: reference ${reference.seen.join(' | ')}; seen ${s.seen.join(' | ')} (reconnects ${s.reconnects})`,
        );
    }
  }
  const reconnected = subscribers.filter((s) => s.reconnects > 0).length;
  say('');
  say(
    `(c) instance 2 SIGKILLed 3 s into 8 s of distinct-page load (${CONNECTIONS} connections, 100 ms upstream latency), the job stepped 6 times`,
  );
  say(
    `- HAProxy marked it DOWN ${downAfterMs} ms after the kill; sessions on it before: ${before.gateway2?.scur} (WebSockets and load)`,
  );
  say(
    `- requests: ${result.requests.sent} sent, ${failed} failed (non-200; autocannon's non2xx ${result.non2xx}), ${invalid} with errors, ${result.errors} socket errors, ${result.timeouts} timeouts`,
  );
  say(
    `- subscribers: ${reconnected} reconnected through the balancer; ${lost} events missed in all (${affected} subscribers), against the ${reference.seen.length} states a subscriber on instance 1 saw; subscription errors ${subscribers.reduce((a, s) => a + s.errors, 0)}`,
  );
  const after = await stats();
  say(
    `- HAProxy: ${after.gateway2?.eresp || 0} response errors on instance 2 (requests and WebSockets in flight on it), ${after.gateway2?.wredis || 0} requests redispatched to another instance, ${after.FRONTEND?.hrsp_5xx || 0} 5xx answered to clients`,
  );
  say(`- upstream polls of the job in the whole run: ${await pollsOf()}`);

  // (d) requests surely in flight on an instance when it dies.
  await fetch(`${control}/faults/listJobs`, { method: 'PUT', body: JSON.stringify({ delayMs: 1_500 }) });
  const slowBefore = await routeCount('listJobs');
  const slow = Array.from({ length: 9 }, (_, i) =>
    fetch(balancer, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ query: `{ fineTuneJobs(limit: 2, offset: ${1_000 + i}) { id } }` }),
    }).then(
      (r) => r.status,
      () => 0,
    ),
  );
  await until('the slow requests upstream', async () => (await routeCount('listJobs')) >= slowBefore + 9, 30);
  process.kill(pids()['gateway-3']!, 'SIGKILL');
  const statuses = await Promise.all(slow);
  await fetch(`${control}/faults`, { method: 'DELETE' });
  say('');
  say(`(d) 9 concurrent slow requests (1.5 s upstream), instance 3 SIGKILLed while they wait`);
  say(
    `- answers: ${statuses.filter((c) => c === 200).length} × 200, ${statuses.filter((c) => c === 502).length} × 502, ${statuses.filter((c) => c !== 200 && c !== 502).length} other`,
  );
} catch (error) {
  console.error(error);
  console.error(output.split('\n').slice(-40).join('\n'));
  process.exitCode = 1;
} finally {
  await stopAll();
}
