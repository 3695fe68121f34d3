// Prints the top self-time entries of a V8 CPU profile (`node --cpu-prof`), grouped by function
// and file, as shares of the profiled process's busy time (idle excluded).
// Usage: node dist-bench/bench/profile-top.js <file.cpuprofile> [count]
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, countText] = process.argv.slice(2);
if (!file) throw new Error('usage: profile-top <file.cpuprofile> [count]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));

const selfTime = new Map<string, number>();
const byPackage = new Map<string, number>();
/** The package (or our own dist/ folder, or node internals) a frame belongs to. */
function packageOf(url: string): string {
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (inModules) return inModules;
  if (url.startsWith('node:')) return 'node internals';
  const own = /\/(dist|src)\/(.*)\/?[^/]*$/.exec(url)?.[2];
  return own !== undefined ? `gateway ${own.split('/')[0]}` : url ? 'other' : '(native: GC, JSON, I/O)';
}
let busy = 0;
profile.samples.forEach((id, i) => {
  const frame = nodes.get(id)!.callFrame;
  const delta = profile.timeDeltas[i] ?? 0;
  if (frame.functionName === '(idle)') return;
  const where = frame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(dist|src)\//, '$1/');
  const key = `${frame.functionName || '(anonymous)'} ${where ? `${where}:${frame.lineNumber + 1}` : ''}`;
  selfTime.set(key, (selfTime.get(key) ?? 0) + delta);
  const pkg = packageOf(frame.url);
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + delta);
  busy += delta;
});

const top = [...selfTime].sort((a, b) => b[1] - a[1]).slice(0, Number(countText ?? 25));
console.log(`busy ${(busy / 1e6).toFixed(1)} s`);
for (const [key, time] of top) console.log(`${((100 * time) / busy).toFixed(1).padStart(5)} %  ${key}`);
console.log('\nby package:');
for (const [pkg, time] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
  console.log(`${((100 * time) / busy).toFixed(1).padStart(5)} %  ${pkg}`);
}
