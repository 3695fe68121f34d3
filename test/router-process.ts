// The federation example's processes (examples/federation/, its own install): Hive Gateway's CLI
// and the package's scripts, each run with this Node from the package's folder, for the tests
// behind a real router (test/router.test.ts, test/router-jwt.test.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const EXAMPLE = fileURLToPath(new URL('../examples/federation/', import.meta.url));
export const HIVE_GATEWAY = path.join(EXAMPLE, 'node_modules/@graphql-hive/gateway/dist/bin.js');
export const INSTALLED = existsSync(HIVE_GATEWAY);
if (!INSTALLED) {
  console.warn(
    'examples/federation/node_modules is missing, so the tests behind Hive Gateway (test/router*.test.ts) are SKIPPED: run `npm ci --prefix examples/federation`',
  );
}
export interface Child {
  process: ChildProcess;
  /** Everything it printed so far, stdout and stderr together. */
  output(): string;
  /** Resolves with the exit code once it has exited. */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Runs a script of the example package with this Node, from the package's folder. */
export function run(args: string[]): Child {
  const child = spawn(process.execPath, args, {
    cwd: EXAMPLE,
    env: { ...process.env, NO_COLOR: '1', NODE_ENV: 'development' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    process: child,
    output: () => output,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Resolves with the first match of `pattern` in what the child prints; fails if it exits first. */
export function printed(child: Child, pattern: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const match = child.output().match(pattern);
      if (match) {
        child.process.stdout!.off('data', check);
        child.process.stderr!.off('data', check);
        resolve(match);
      }
    };
    child.process.stdout!.on('data', check);
    child.process.stderr!.on('data', check);
    void child.exited.then((code) =>
      reject(new Error(`exited with ${code} before printing ${pattern}:\n${child.output()}`)),
    );
    check();
  });
}

/** Composes the supergraph of these subgraphs (name: URL) into `file` with the package's compose.mjs. */
export async function compose(subgraphs: Record<string, string>, file: string): Promise<string> {
  const child = run([
    'compose.mjs',
    ...Object.entries(subgraphs).flatMap(([name, url]) => ['--subgraph', `${name}=${url}`]),
    '--out',
    file,
  ]);
  const code = await child.exited;
  if (code !== 0) throw new Error(`compose.mjs exited with ${code}:\n${child.output()}`);
  return readFile(file, 'utf8');
}

/** A port free on loopback now (Hive Gateway's CLI does not report the port it got for 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Hive Gateway's CLI on a free port, with examples/federation/gateway.config.ts. */
export async function startRouter(supergraphFile: string): Promise<{ child: Child; url: string }> {
  for (;;) {
    const port = await freePort();
    const child = run([
      HIVE_GATEWAY,
      'supergraph',
      supergraphFile,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
    ]);
    try {
      await printed(child, new RegExp(`Listening on http://127\\.0\\.0\\.1:${port}`));
      return { child, url: `http://127.0.0.1:${port}/graphql` };
    } catch (error) {
      // Another process took the port between freePort() and the bind: try another.
      if (!child.output().includes('EADDRINUSE')) throw error;
    }
  }
}
