// The real entry point (`node dist/main.js`, built by the global setup) as a child process, for
// the tests that run the gateway as `npm start` does: a fresh machine's environment, its output
// read as it comes, and every child stopped after its test.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { writeConfigFile } from '../scripts/config-file.js';
import type { GatewayConfigFile } from '../src/config.js';

export { writeConfigFile };

export interface EntryPoint {
  child: ChildProcessWithoutNullStreams;
  /** Its exit, once its output is read to the end ('close', not 'exit'). */
  exited: Promise<[number | null, string | null]>;
  stdout(): string;
  stderr(): string;
}

const running = new Set<EntryPoint>();

export interface EntryPointOptions {
  /** The configuration file's content, written to a file that GATEWAY_CONFIG names. */
  config?: GatewayConfigFile | string;
  nodeArgs?: string[];
}

/**
 * Starts `node [nodeArgs] dist/main.js` with only PATH and `env` set (and GATEWAY_CONFIG, with
 * `config`), and any free port for the metrics (9464 by default), as tests run side by side.
 */
export function startEntryPoint(env: Record<string, string>, options: EntryPointOptions = {}): EntryPoint {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), 'dist/main.js'], {
    env: {
      PATH: process.env.PATH,
      METRICS_PORT: '0',
      ...(options.config !== undefined && { GATEWAY_CONFIG: writeConfigFile(options.config) }),
      ...env,
    },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'close') as Promise<[number | null, string | null]>;
  const main: EntryPoint = { child, exited, stdout: () => stdout, stderr: () => stderr };
  running.add(main);
  void exited.then(() => running.delete(main));
  return main;
}

/** Stops every entry point still running (SIGTERM: a clean stop; SIGKILL: at once). */
export async function stopEntryPoints(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  await Promise.all(
    [...running].map((main) => {
      main.child.kill(signal);
      return main.exited;
    }),
  );
}

/** The gateway's URL once it says it is ready; fails with its output if it exits first. */
export async function untilReady(main: EntryPoint): Promise<string> {
  let exited = false;
  void main.exited.then(() => (exited = true));
  for (;;) {
    const url = /ready at (http:\/\/\S+\/graphql)/.exec(main.stdout())?.[1];
    if (url !== undefined) return url;
    if (exited) throw new Error(`the gateway exited before it was ready:\n${main.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until the output matches (the test's timeout is the only bound, not the clock here). */
export async function waitForOutput(read: () => string, pattern: RegExp): Promise<RegExpMatchArray> {
  for (;;) {
    const match = read().match(pattern);
    if (match) return match;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
