// `npm run fleet` for real: scripts/fleet.mjs starts Redis, the simulator, three gateway
// instances on both and HAProxy; queries through the balancer reach every instance; one instance
// killed is taken out of rotation with no request failing; the script stops every child.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { fleetEnvironment, freeFleetPorts, isFree } from '../scripts/fleet-ports.js';

// Debian puts haproxy in /usr/sbin, which a user's PATH may not have (the script looks there too).
const PATH = [process.env.PATH, '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean).join(':');
const missing = ['redis-server', 'haproxy'].filter(
  (command) => spawnSync(command, ['-v'], { stdio: 'ignore', env: { PATH } }).error !== undefined,
);
if (missing.length > 0) {
  console.warn(
    `test/fleet.test.ts skipped: ${missing.join(' and ')} not installed (apt-get install ${missing.join(' ')})`,
  );
}

/** HAProxy's CSV stats: each instance's status (UP, DOWN, …), by server name. */
async function backendStatus(statsUrl: string): Promise<Record<string, string>> {
  const [header, ...rows] = (await (await fetch(statsUrl)).text()).trim().split('\n');
  const columns = header!.replace(/^# /, '').split(',');
  const [proxy, name, status] = ['pxname', 'svname', 'status'].map((c) => columns.indexOf(c));
  return Object.fromEntries(
    rows
      .map((row) => row.split(','))
      .filter((cells) => cells[proxy!] === 'gateways' && !['FRONTEND', 'BACKEND'].includes(cells[name!]!))
      .map((cells) => [cells[name!]!, cells[status!]!]),
  );
}

/**
 * Resolves once HAProxy's stats meet `condition`: each answer awaited before the next ask (its
 * health checks decide when); the test's timeout is the only bound.
 */
async function untilStats(
  statsUrl: string,
  condition: (status: Record<string, string>) => boolean,
): Promise<Record<string, string>> {
  for (;;) {
    const status = await backendStatus(statsUrl).catch(() => ({}));
    if (condition(status)) return status;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** GraphQL operations an instance has run (its own /metrics). */
async function operations(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(/^gateway_graphql_operations_total\{[^}]*\} ([\d.e+-]+)$/gm))
    total += Number(match[1]);
  return total;
}

/** Redis's answer to PING, over its own protocol. */
async function redisPing(port: number): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.write('PING\r\n');
  const [reply] = (await once(socket, 'data')) as [Buffer];
  socket.destroy();
  return reply.toString().trim();
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(missing.length > 0)('npm run fleet (Redis, three instances, HAProxy)', () => {
  let fleet: ChildProcessWithoutNullStreams | undefined;
  let output = '';
  const pids = () =>
    Object.fromEntries(
      [...output.matchAll(/fleet: started (\S+) \(pid (\d+)\)/g)].map((m) => [m[1]!, Number(m[2])]),
    );

  afterAll(async () => {
    // A failed test still leaves nothing running: the script, then any child it left.
    if (fleet && fleet.exitCode === null && fleet.signalCode === null) {
      fleet.kill('SIGKILL');
      await once(fleet, 'exit');
    }
    for (const pid of Object.values(pids())) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
  });

  it('spreads queries over the instances, routes around a killed one, and stops every child', async () => {
    const ports = await freeFleetPorts();
    fleet = spawn(process.execPath, ['scripts/fleet.mjs'], {
      env: {
        PATH: process.env.PATH,
        ...fleetEnvironment(ports),
      },
    });
    fleet.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    fleet.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(fleet, 'exit') as Promise<[number | null, string | null]>;
    const statsUrl = `http://127.0.0.1:${ports.stats}/stats;csv`;
    const graphqlUrl = `http://127.0.0.1:${ports.balancer}/graphql`;

    // A fleet that cannot start (a port taken meanwhile) fails the test with its output.
    const early = exited.then(([code, signal]) => {
      throw new Error(`the fleet exited (${signal ?? code}):\n${output}`);
    });
    early.catch(() => {}); // Its normal exit at the end is no failure.
    const allUp = await Promise.race([
      untilStats(statsUrl, (s) => Object.values(s).filter((v) => v === 'UP').length === 3),
      early,
    ]);
    expect(allUp).toEqual({ gateway1: 'UP', gateway2: 'UP', gateway3: 'UP' });
    // Redis is up on its port, and every instance is on it (REDIS_URL): its /readyz says so.
    expect(await redisPing(ports.redis)).toBe('+PONG');
    for (const port of ports.gateways) {
      for (;;) {
        const ready = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as { redis?: string };
        if (ready.redis === 'reachable') break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }

    const ask = async () => {
      const response = await fetch(graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ fineTuneJobs(limit: 2) { id status } }' }),
      });
      const body = (await response.json()) as { data?: { fineTuneJobs: unknown[] }; errors?: unknown };
      return { status: response.status, body };
    };
    const askMany = async (count: number) => {
      const answers = [];
      for (let i = 0; i < count; i++) answers.push(await ask());
      return answers;
    };

    // Round robin: every instance serves some of them, and together exactly those sent.
    for (const answer of await askMany(30)) {
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(answer.body.data?.fineTuneJobs).toHaveLength(2);
    }
    const served = await Promise.all(ports.metrics.map(operations));
    expect(
      served.every((count) => count > 0),
      `operations per instance: ${served.join(', ')}`,
    ).toBe(true);
    expect(served.reduce((a, b) => a + b)).toBe(30);

    // One instance dies at once (no drain): HAProxy's checks take it out of rotation.
    const victim = pids()['gateway-2']!;
    expect(victim).toBeGreaterThan(0);
    process.kill(victim, 'SIGKILL');
    const afterKill = await untilStats(statsUrl, (s) => s.gateway2 === 'DOWN');
    expect(afterKill).toEqual({ gateway1: 'UP', gateway2: 'DOWN', gateway3: 'UP' });

    // Every request after it succeeds, served by the two left.
    const before = await Promise.all([ports.metrics[0]!, ports.metrics[2]!].map(operations));
    for (const answer of await askMany(20)) {
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(answer.body.errors).toBeUndefined();
    }
    const after = await Promise.all([ports.metrics[0]!, ports.metrics[2]!].map(operations));
    expect(after[0]! - before[0]! + (after[1]! - before[1]!)).toBe(20);
    expect(output).toContain(`fleet: gateway-2 (pid ${victim}) exited (SIGKILL)`);

    // SIGTERM (Ctrl-C sends SIGINT; the same path): every child stops, then the script, cleanly.
    const started = pids();
    expect(Object.keys(started).sort()).toEqual([
      'gateway-1',
      'gateway-2',
      'gateway-3',
      'haproxy',
      'redis',
      'simulator',
    ]);
    fleet.kill('SIGTERM');
    const [code] = await exited;
    expect(code, output).toBe(0);
    expect(output).toContain('fleet: stopped');
    for (const [name, pid] of Object.entries(started))
      expect(isRunning(pid), `${name} (pid ${pid})`).toBe(false);
    const portsFree = await Promise.all(
      [ports.balancer, ...ports.gateways, ...ports.metrics, ports.redis, ports.simulator, ports.stats].map(
        isFree,
      ),
    );
    expect(portsFree.every(Boolean), `ports still taken: ${portsFree.join(', ')}`).toBe(true);
  }, 90_000);
});
