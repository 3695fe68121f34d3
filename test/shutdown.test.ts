// Graceful shutdown of the real entry point (dist/main.js, built by test/global-setup.ts):
// SIGTERM / SIGINT let in-flight operations finish within the grace period; a bad hardening
// setting stops the start with one line.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../src/simulator/server.js';
import { ACME_KEY } from './harness.js';
import { writeConfigFile } from './entry-point-process.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

let simulator: RunningSimulator;
beforeAll(async () => {
  simulator = await startSimulator({ jobsPerOrganization: 3 });
});
afterAll(() => simulator.stop());
beforeEach(() => {
  simulator.faults.clear();
  simulator.resetRequests();
});

interface Started {
  child: ChildProcess;
  url: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output: () => string;
}

async function startGatewayProcess(graceMs: number, env: Record<string, string> = {}): Promise<Started> {
  const child = spawn(process.execPath, [MAIN], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      PORT: '0',
      METRICS_PORT: '0',
      HOST: '127.0.0.1',
      ATAI_API_URL: simulator.url,
      LOG_LEVEL: 'warn',
      GATEWAY_CONFIG: writeConfigFile({ http: { shutdownGraceMs: graceMs } }),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = once(child, 'close').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const match = /ready at (http:\/\/\S+)/.exec(output);
      if (match) {
        clearInterval(timer);
        resolve(match[1]!);
      }
    }, 20);
    void exit.then(() => {
      clearInterval(timer);
      reject(new Error(`gateway exited before it was ready:\n${output}`));
    });
  });
  return { child, url, exit, output: () => output };
}

function postQuery(url: string, query: string) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ACME_KEY}` },
    body: JSON.stringify({ query }),
  });
}

async function untilUpstreamReceived(count: number) {
  while (simulator.requestsTo('listJobs').length < count) await new Promise((r) => setTimeout(r, 10));
}

/** Holds the simulator's next list answer until `release()`: the call is in flight meanwhile. */
function holdList(): { release(): void } {
  let release!: () => void;
  const until = new Promise<void>((resolve) => (release = resolve));
  simulator.faults.set('listJobs', { until, times: 1 });
  return { release };
}

/** Resolves once the gateway's port refuses connections (it has stopped listening). */
async function untilRefused(url: string): Promise<void> {
  const { hostname, port } = new URL(url);
  for (;;) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(Number(port), hostname);
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(true));
    });
    if (refused) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

// A grace period longer than any test here: a gateway that waited it out would fail the test.
const FOREVER_MS = 600_000;

describe('graceful shutdown', () => {
  it('SIGTERM during a slow upstream call: the client still gets its data, then exit 0 (no waiting out the grace)', async () => {
    simulator.resetRequests();
    const hold = holdList();
    const gateway = await startGatewayProcess(FOREVER_MS);
    const pending = postQuery(gateway.url, 'query { fineTuneJobs(limit: 2) { id } }');
    await untilUpstreamReceived(1);
    gateway.child.kill('SIGTERM');
    // Listening stops at once; the call in flight goes on.
    await untilRefused(gateway.url);
    hold.release();

    const response = await pending;
    expect(response.status).toBe(200);
    const body = (await response.json()) as { data?: { fineTuneJobs: unknown[] }; errors?: unknown };
    expect(body.errors).toBeUndefined();
    expect(body.data?.fineTuneJobs).toHaveLength(2);
    expect(await gateway.exit).toEqual({ code: 0, signal: null });
  }, 30_000);

  it('SIGINT with a call slower than SHUTDOWN_GRACE_MS: cut at the grace period, still exit 0', async () => {
    simulator.resetRequests();
    const hold = holdList();
    try {
      const gateway = await startGatewayProcess(300);
      const pending = postQuery(gateway.url, 'query { fineTuneJobs(limit: 1) { id } }').then(
        () => 'answered',
        () => 'cut',
      );
      await untilUpstreamReceived(1);
      gateway.child.kill('SIGINT');
      // The upstream never answers: only cutting it at the grace period lets the gateway exit.
      expect(await gateway.exit).toEqual({ code: 0, signal: null });
      expect(await pending).toBe('cut');
    } finally {
      hold.release();
    }
  }, 30_000);
});

describe('a second signal', () => {
  it('exits at once, without waiting for the grace period', async () => {
    simulator.resetRequests();
    const hold = holdList();
    try {
      const gateway = await startGatewayProcess(FOREVER_MS, { LOG_LEVEL: 'info' });
      void postQuery(gateway.url, 'query { fineTuneJobs(limit: 1) { id } }').catch(() => undefined);
      await untilUpstreamReceived(1);
      gateway.child.kill('SIGINT');
      // The first signal has been handled (two sent together may arrive as one).
      while (!gateway.output().includes('"msg":"stopping"')) await new Promise((r) => setTimeout(r, 10));
      gateway.child.kill('SIGINT');
      expect(await gateway.exit).toEqual({ code: 1, signal: null });
      expect(gateway.output()).toMatch(/SIGINT again, exiting without waiting/);
    } finally {
      hold.release();
    }
  }, 30_000);
});

/** A WebSocket client that completes the upgrade and then never reads: it never answers a close. */
async function unresponsiveSubscriber(httpUrl: string): Promise<Socket> {
  const { hostname, port } = new URL(httpUrl);
  const socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  socket.write(
    'GET /graphql HTTP/1.1\r\nhost: localhost\r\nconnection: Upgrade\r\nupgrade: websocket\r\n' +
      'sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
      'sec-websocket-protocol: graphql-transport-ws\r\n\r\n',
  );
  const [head] = (await once(socket, 'data')) as [Buffer];
  expect(head.toString()).toMatch(/^HTTP\/1.1 101/);
  socket.pause();
  return socket;
}

describe('shutdown with a WebSocket peer that never answers', () => {
  it('cuts it at SHUTDOWN_GRACE_MS instead of waiting for its close handshake', async () => {
    const gateway = await startGatewayProcess(300);
    const socket = await unresponsiveSubscriber(gateway.url);
    try {
      gateway.child.kill('SIGTERM');
      // ws alone would wait 30 s for the peer's close, past this test's time.
      expect(await gateway.exit).toEqual({ code: 0, signal: null });
    } finally {
      socket.destroy();
    }
  }, 20_000);
});

describe('configuration errors', () => {
  it.each([
    [{ PORT: 'not-a-port' }, {}, 'Invalid PORT \\(got "not-a-port"\\)'],
    [
      {},
      { upstream: { breaker: { halfOpenMs: 60000 } } },
      'Invalid upstream\\.breaker\\.halfOpenMs in \\S+ \\(got 60000\\)',
    ],
    [{}, { limits: { maxCost: 0 } }, 'Invalid limits\\.maxCost in \\S+ \\(got 0\\)'],
    [{ QUERY_MAX_COST: '10' }, {}, 'QUERY_MAX_COST is now limits\\.maxCost in \\S+$'],
  ])('%o %o stops the start with one line naming the setting, exit 1', async (env, config, message) => {
    const child = spawn(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH,
        ATAI_API_URL: simulator.url,
        GATEWAY_CONFIG: writeConfigFile(config),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = await once(child, 'close');
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^fine-tune-gateway: ${message}`));
  });
});
