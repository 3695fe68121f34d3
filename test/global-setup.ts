// Builds dist/ once before the tests that run the real entry point (`node dist/main.js`).
import { execFileSync } from 'node:child_process';

export function setup(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    stdio: 'inherit',
  });
}
