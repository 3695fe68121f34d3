// A client author's codegen, as docs/clients.md shows it: the client preset reads the schema
// from the running gateway (introspection over HTTP), with the gateway's scalars mapped, and the
// typed operations of a small client project compile against what it wrote.
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { generate } from '@graphql-codegen/cli';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startStack, type Stack } from './harness.js';

const run = promisify(execFile);
let stack: Stack;
let project: string;
beforeAll(async () => {
  stack = await startStack({ simulator: { jobsPerOrganization: 1 } });
  // Inside the repository, so the project resolves graphql and the document types from its node_modules.
  project = await mkdtemp(resolve('test/fixtures/.typed-client-'));
  await cp(resolve('test/fixtures/typed-client'), project, { recursive: true });
});
afterAll(async () => {
  await stack.stop();
  await rm(project, { recursive: true, force: true });
});

it("the client preset types the gateway's scalars as docs/clients.md maps them", async () => {
  // The configuration of docs/clients.md, pointed at this test's gateway and project.
  await generate(
    {
      schema: stack.gateway.url,
      documents: [join(project, 'operations.ts')],
      ignoreNoDocuments: false,
      generates: {
        [join(project, 'generated/')]: {
          preset: 'client',
          config: {
            scalars: { DateTime: 'string', JSONObject: 'Record<string, unknown>' },
            strictScalars: true,
            useTypeImports: true,
          },
          presetConfig: { gqlTagName: 'graphql' },
        },
      },
    },
    true,
  );
  const types = await readFile(join(project, 'generated/graphql.ts'), 'utf8');
  const recentJobs = /export type RecentJobsQuery = (.*);/.exec(types)?.[1];
  expect(recentJobs).toContain('createdAt: string');
  expect(recentJobs).toContain('raw: Record<string, unknown>');

  // usage.ts compiles only if `createdAt` is a string and `raw` a record.
  await writeFile(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: 'esnext',
        moduleResolution: 'bundler',
        target: 'es2022',
        skipLibCheck: true,
        types: [],
      },
      include: ['*.ts', 'generated/*.ts'],
    }),
  );
  await writeFile(join(project, 'package.json'), JSON.stringify({ type: 'module' }));
  const compiled = await run(process.execPath, [
    resolve('node_modules/typescript/bin/tsc'),
    '-p',
    project,
  ]).catch((error: { stdout: string }) => ({ stdout: error.stdout, failed: true }));
  expect(compiled, compiled.stdout).not.toHaveProperty('failed');
}, 60_000);
