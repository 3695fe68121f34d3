/* global process, console, fetch, setTimeout, clearTimeout */
// `npm run fleet`: a fleet on one machine, as it runs in production. Redis, one simulator of
// the fine-tune API (every instance on the same upstream, as with the real API), three gateway
// instances on it, and HAProxy in front (round robin, health-checked on /readyz). Plain Node, no
// dependency: needs `redis-server` and `haproxy` on the PATH and a build in dist/ (`npm run
// fleet` builds first). Ctrl-C (SIGINT) or SIGTERM stops every child, then this process.
//
// Settings (environment): FLEET_PORT (4000, the balancer), FLEET_BASE_PORT (4001: the instances
// on it and the next two), FLEET_METRICS_BASE_PORT (9465: their /metrics, likewise),
// FLEET_REDIS_PORT (6380), FLEET_SIMULATOR_PORT (4010), FLEET_STATS_PORT (8404: HAProxy's
// /stats). The gateways and the simulator read one configuration file, GATEWAY_CONFIG
// (examples/fleet/gateway.config.yaml by default); every other variable (LOG_LEVEL, OTEL_*, …)
// reaches them as it is.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const HOST = '127.0.0.1';
const INSTANCES = 3;

function port(name, fallback) {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    console.error(`fleet: Invalid ${name} (got ${JSON.stringify(process.env[name])}): a port`);
    process.exit(1);
  }
  return value;
}

// Debian puts haproxy in /usr/sbin, which a user's PATH may not have.
const PATH = [process.env.PATH, '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean).join(':');

const ports = {
  balancer: port('FLEET_PORT', 4000),
  base: port('FLEET_BASE_PORT', 4001),
  metricsBase: port('FLEET_METRICS_BASE_PORT', 9465),
  redis: port('FLEET_REDIS_PORT', 6380),
  simulator: port('FLEET_SIMULATOR_PORT', 4010),
  stats: port('FLEET_STATS_PORT', 8404),
};
// The fleet's own file: per-address limits raised for the balancer, anonymous writes on.
const GATEWAY_CONFIG = process.env.GATEWAY_CONFIG || join(root, 'examples/fleet/gateway.config.yaml');
// The simulator's demo key (src/simulator/seed.ts): a client without a key acts as `acme`.
const DEMO_API_KEY = 'sim-acme-key';

for (const [command, hint] of [
  ['redis-server', 'apt-get install redis-server'],
  ['haproxy', 'apt-get install haproxy'],
]) {
  if (spawnSync(command, ['--version'], { stdio: 'ignore', env: { PATH } }).error) {
    console.error(`fleet: ${command} is not on the PATH (${hint})`);
    process.exit(1);
  }
}
for (const file of ['dist/main.js', 'dist/simulator/main.js']) {
  if (!existsSync(join(root, file))) {
    console.error(`fleet: ${file} is missing: run \`npm run build\` first (\`npm run fleet\` does)`);
    process.exit(1);
  }
}

// The gateways' own variables pass through; the fleet's are its own.
const inherited = Object.fromEntries(
  Object.entries({ ...process.env, PATH, GATEWAY_CONFIG }).filter(([name]) => !name.startsWith('FLEET_')),
);

/** @type {{ name: string, child: import('node:child_process').ChildProcess, exited: Promise<unknown> }[]} */
const children = [];
let stopping = false;

/**
 * Starts a child with its output prefixed by its name; resolves once a line matches `ready`.
 * A child that exits before then stops the fleet.
 */
function start(name, command, args, env, ready) {
  // Its own process group: Ctrl-C reaches this script only, which stops the children in order.
  const child = spawn(command, args, { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  children.push({ name, child, exited });
  console.log(`fleet: started ${name} (pid ${child.pid})`);
  let readyLine;
  const isReady = new Promise((resolve, reject) => {
    readyLine = (line) => ready.test(line) && resolve(child);
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      reject(new Error(`${name} exited (${signal ?? code}) before it was ready`)),
    );
  });
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      console.log(`[${name}] ${line}`);
      readyLine(line);
    });
  }
  child.once('exit', (code, signal) => {
    // One instance down is what the balancer is for: say so and keep the others serving.
    if (!stopping) console.log(`fleet: ${name} (pid ${child.pid}) exited (${signal ?? `code ${code}`})`);
  });
  // Reported by the exit handler above or by `isReady`.
  isReady.catch(() => {});
  return isReady;
}

const workDir = mkdtempSync(join(tmpdir(), 'fleet-'));

async function stop(signal, exitCode = 0) {
  if (stopping) {
    // A second Ctrl-C: whoever sent it will not wait for the instances to drain.
    console.log(`fleet: ${signal} again, killing every child`);
    process.exit(1);
  }
  stopping = true;
  console.log(`fleet: ${signal}, stopping every child`);
  // The balancer first, so no new request reaches an instance that is stopping; then the
  // instances together (each lets its in-flight operations finish); the upstream and Redis last.
  const stages = [
    ['haproxy'],
    children.map((c) => c.name).filter((n) => n.startsWith('gateway')),
    ['simulator'],
    ['redis'],
  ];
  for (const names of stages) {
    await Promise.all(
      children
        .filter((c) => names.includes(c.name) && c.child.exitCode === null && c.child.signalCode === null)
        .map(async ({ child, exited }) => {
          child.kill('SIGTERM');
          // A child that ignores SIGTERM is not left behind.
          const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
          await exited;
          clearTimeout(killer);
        }),
    );
  }
  rmSync(workDir, { recursive: true, force: true });
  console.log('fleet: stopped');
  process.exit(exitCode);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
// Whatever happens to this process, no child outlives it.
process.on('exit', () => {
  for (const { child } of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

try {
  await start(
    'redis',
    'redis-server',
    ['--port', String(ports.redis), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', workDir],
    { PATH },
    /Ready to accept connections/,
  );
  await start(
    'simulator',
    process.execPath,
    ['dist/simulator/main.js'],
    { ...inherited, SIMULATOR_PORT: String(ports.simulator) },
    /simulator at http/,
  );
  const redisUrl = `redis://${HOST}:${ports.redis}`;
  const upstream = `http://${HOST}:${ports.simulator}/v0.5`;
  await Promise.all(
    Array.from({ length: INSTANCES }, (_, i) =>
      start(
        `gateway-${i + 1}`,
        process.execPath,
        ['dist/main.js'],
        {
          // One JSON line per operation from three instances is a lot on a terminal.
          LOG_LEVEL: 'warn',
          ...inherited,
          HOST,
          PORT: String(ports.base + i),
          METRICS_PORT: String(ports.metricsBase + i),
          REDIS_URL: redisUrl,
          ATAI_API_URL: upstream,
          ATAI_API_KEY: DEMO_API_KEY,
        },
        /ready at http/,
      ),
    ),
  );
  const haproxy = start(
    'haproxy',
    'haproxy',
    ['-db', '-f', join(root, 'examples/fleet/haproxy.cfg')],
    {
      PATH,
      FLEET_BIND: `${HOST}:${ports.balancer}`,
      FLEET_STATS_BIND: `${HOST}:${ports.stats}`,
      ...Object.fromEntries(
        Array.from({ length: INSTANCES }, (_, i) => [`FLEET_GATEWAY${i + 1}`, `${HOST}:${ports.base + i}`]),
      ),
    },
    // HAProxy prints nothing once it listens: its stats page saying every instance is UP is
    // the sign (below).
    /(?!)/,
  );
  await Promise.race([haproxy, untilAllUp(`http://${HOST}:${ports.stats}/stats;csv`)]);
  console.log(
    `fleet: ready at http://localhost:${ports.balancer}/graphql (${INSTANCES} instances behind HAProxy)`,
  );
  console.log(
    `fleet: HAProxy's stats at http://localhost:${ports.stats}/stats, Redis at redis://${HOST}:${ports.redis}`,
  );
  console.log(
    `fleet: instances at ${Array.from({ length: INSTANCES }, (_, i) => `:${ports.base + i} (metrics :${ports.metricsBase + i})`).join(', ')}; upstream ${upstream}`,
  );
} catch (error) {
  console.error(`fleet: ${error instanceof Error ? error.message : String(error)}`);
  await stop('a child failed to start', 1);
}

/** The backends' status column of HAProxy's CSV stats, by server name. */
function backendStatus(csv) {
  const [header, ...rows] = csv.trim().split('\n');
  const columns = header.replace(/^# /, '').split(',');
  const name = columns.indexOf('svname');
  const status = columns.indexOf('status');
  const proxy = columns.indexOf('pxname');
  return Object.fromEntries(
    rows
      .map((row) => row.split(','))
      .filter((cells) => cells[proxy] === 'gateways' && !['FRONTEND', 'BACKEND'].includes(cells[name]))
      .map((cells) => [cells[name], cells[status]]),
  );
}

/** Resolves once HAProxy reports every instance UP (each answer awaited before the next ask). */
async function untilAllUp(url) {
  for (;;) {
    try {
      const statuses = Object.values(backendStatus(await (await fetch(url)).text()));
      if (statuses.length === INSTANCES && statuses.every((s) => s === 'UP')) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
