// Child processes of a bench run: each part (simulator, gateway, proxy) in its own Node process,
// as in production, with its output in a log file and its resident memory readable from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Child {
  name: string;
  pid: number;
  /** The first URL the process printed once ready. */
  url: string;
  logFile: string;
  stop(): Promise<void>;
}

export interface ChildOptions {
  name: string;
  script: string;
  env: Record<string, string>;
  nodeArgs?: string[];
  logFile: string;
  /** A line containing this marks the process as ready. */
  readyText: string;
}

export async function startChild(options: ChildOptions): Promise<Child> {
  const log = openSync(options.logFile, 'w');
  const child: ChildProcess = spawn(process.execPath, [...(options.nodeArgs ?? []), options.script], {
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let exitCode: number | null = null;
  child.once('exit', (code) => (exitCode = code ?? -1));

  const deadline = Date.now() + 20_000;
  let url: string | undefined;
  while (url === undefined) {
    if (exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${options.name} did not start:\n${readFileSync(options.logFile, 'utf8')}`);
    }
    await sleep(50);
    const line = readFileSync(options.logFile, 'utf8')
      .split('\n')
      .find((l) => l.includes(options.readyText));
    url = line?.match(/https?:\/\/\S+/)?.[0];
  }

  return {
    name: options.name,
    pid: child.pid!,
    url,
    logFile: options.logFile,
    async stop() {
      if (exitCode !== null) return;
      child.kill('SIGTERM');
      const killed = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killed);
    },
  };
}

/** The URL on the first line of a child's log that contains `text` (printed once it is ready). */
export function urlInLog(child: Child, text: string): string {
  const line = readFileSync(child.logFile, 'utf8')
    .split('\n')
    .find((l) => l.includes(text));
  const url = line?.match(/https?:\/\/\S+/)?.[0];
  if (url === undefined) throw new Error(`${child.name} printed no "${text}" line`);
  return url;
}

/** Resets the kernel's peak-RSS mark of a process, so the next reading covers one run only. */
export function resetPeakRss(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // Not Linux, or not allowed: the peak then covers the process's whole life.
  }
}

/** Peak resident set size in MB since start or the last reset (Linux), else undefined. */
export function peakRssMb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmHWM:\s+(\d+)\s+kB/.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

// Clock ticks per second of /proc's CPU times; 100 on every common Linux build.
const CLOCK_TICKS = 100;

/** CPU time (user + system) a process has used, in ms (Linux), else undefined. */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The first line of a bench's output: when, on what, and how it loads. */
export function benchHeader(connections: number, rounds: number, seconds: number, what: string): string {
  const cpu = cpus();
  return (
    `${new Date().toISOString()} · Node ${process.version} · ${cpu.length} cores (${cpu[0]?.model ?? '?'}) · ` +
    `${connections} connections · ${rounds} rounds × ${seconds} s per ${what}, alternating\n`
  );
}
