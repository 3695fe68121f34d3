// `npm run bench:http-servers`: one Apollo Server 5 (the gateway's schema, resolvers and context,
// Apollo's own pipeline) served three ways, each in its own process (bench/http-server-child.ts):
// startStandaloneServer, Express 5 with expressMiddleware, and a bare node:http handler like
// src/server.ts's. autocannon loads each in turn with the same page query; a table of medians,
// with ratios to the node:http row, is printed.
//
// Settings (environment): BENCH_DURATION_S (5), BENCH_ROUNDS (2).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { benchHeader, cpuMs, median, startChild, type Child } from './processes.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const CONNECTIONS = 16;
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const WARMUP_S = 1;
const SERVERS = [
  { kind: 'standalone', name: 'startStandaloneServer' },
  { kind: 'express', name: 'Express 5 + expressMiddleware' },
  { kind: 'node', name: 'node:http + executeHTTPGraphQLRequest' },
];
const HEADERS = {
  authorization: 'Bearer sim-acme-key',
  'content-type': 'application/json',
  // Apollo's CSRF prevention is on in all three; the header is what a non-browser client sends.
  'apollo-require-preflight': 'true',
};
const BODY = JSON.stringify({
  query:
    'query Jobs($limit: Int, $offset: Int) { fineTuneJobs(limit: $limit, offset: $offset) ' +
    '{ id name status createdAt config { model } } }',
  variables: { limit: 20, offset: 0 },
});

interface Run {
  rps: number;
  p50: number;
  p99: number;
  cpuMsPerRequest: number;
  failures: number;
}

// The built simulator (dist/), like the servers' modules: see http-server-child.ts.
const { startSimulator } = (await import(
  pathToFileURL(join(ROOT, 'dist/simulator/server.js')).href
)) as typeof import('../src/simulator/server.js');
// In this process, beside autocannon: every server pays the same for it, and the serving
// processes' CPU time stays their own.
const simulator = await startSimulator({ jobsPerOrganization: 2000 });

async function load(server: Child, seconds: number): Promise<Run> {
  // The simulator logs every request it serves: forget them, or the log grows run after run.
  simulator.resetRequests();
  let failures = 0;
  const cpuBefore = cpuMs(server.pid) ?? Number.NaN;
  const result = await autocannon({
    url: server.url,
    connections: CONNECTIONS,
    duration: seconds,
    method: 'POST',
    headers: HEADERS,
    body: BODY,
    requests: [
      {
        onResponse: (status, body) => {
          if (status !== 200 || !body.startsWith('{"data":')) failures += 1;
        },
      },
    ],
  });
  const completed = result.requests.total;
  return {
    rps: completed / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuMsPerRequest: ((cpuMs(server.pid) ?? Number.NaN) - cpuBefore) / completed,
    failures: failures + result.errors + result.timeouts,
  };
}

const logs = mkdtempSync(join(tmpdir(), 'http-servers-bench-'));
const children: Child[] = [];
try {
  for (const { kind } of SERVERS) {
    children.push(
      await startChild({
        name: kind,
        script: join(ROOT, 'dist-bench/bench/http-server-child.js'),
        env: { NODE_ENV: 'production', BENCH_SERVER: kind, UPSTREAM_URL: simulator.url },
        logFile: join(logs, `${kind}.log`),
        readyText: 'server at',
      }),
    );
  }
  // Before any load: the three must give the same answer, so the runs compare like with like.
  const answers = await Promise.all(
    children.map(async (child) => {
      const response = await fetch(child.url, { method: 'POST', headers: HEADERS, body: BODY });
      return `${response.status} ${await response.text()}`;
    }),
  );
  if (!answers[0]!.startsWith('200 {"data":') || answers.some((a) => a !== answers[0])) {
    throw new Error(`the servers' answers differ or fail:\n${answers.join('\n')}`);
  }

  for (const child of children) await load(child, WARMUP_S);
  const runs: Run[][] = children.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which server goes first, so none always runs on a warmer or cooler machine.
    for (let i = 0; i < children.length; i++) {
      const at = (i + round) % children.length;
      runs[at]!.push(await load(children[at]!, DURATION_S));
    }
  }

  console.log(benchHeader(CONNECTIONS, ROUNDS, DURATION_S, 'server'));
  console.log(
    '| server | req/s (median) | × node:http | p50 ms | p99 ms | CPU ms/req (× node:http) | failures |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  const bare = runs[SERVERS.findIndex((s) => s.kind === 'node')]!;
  let totalFailures = 0;
  SERVERS.forEach(({ name }, s) => {
    const own = runs[s]!;
    // Ratios within a round first: both runs of a pair saw the same moment of a shared machine.
    const rpsRatio = median(own.map((run, r) => run.rps / bare[r]!.rps));
    const cpuRatio = median(own.map((run, r) => run.cpuMsPerRequest / bare[r]!.cpuMsPerRequest));
    const failures = own.reduce((sum, run) => sum + run.failures, 0);
    totalFailures += failures;
    console.log(
      `| ${name} | ${median(own.map((r) => r.rps)).toFixed(0)} | **${rpsRatio.toFixed(2)}x** | ` +
        `${median(own.map((r) => r.p50)).toFixed(1)} | ${median(own.map((r) => r.p99)).toFixed(1)} | ` +
        `${median(own.map((r) => r.cpuMsPerRequest)).toFixed(3)} (${cpuRatio.toFixed(2)}x) | ${failures} |`,
    );
  });
  if (totalFailures > 0) {
    console.error(`${totalFailures} responses were not 200 with {"data": (logs in ${logs})`);
    process.exitCode = 1;
  }
} finally {
  for (const child of children) await child.stop();
  await simulator.stop();
}
