// The README's examples, run as written against what `npm start` serves with nothing configured
// (the real entry point and its living demo): every GraphQL block and every curl command
// answers without errors, and every list it asks for has something in it.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEntryPoint, stopEntryPoints, untilReady } from './entry-point-process.js';

const run = promisify(execFile);
const README_URL = 'http://localhost:4000/graphql';

interface Block {
  language: string;
  code: string;
}

const blocks: Block[] = [...readFileSync('README.md', 'utf8').matchAll(/^```(\w+)\n([\s\S]*?)^```/gm)].map(
  ([, language, code]) => ({ language: language!, code: code! }),
);
const documents = blocks.filter((block) => block.language === 'graphql');
/** Each curl command of the shell blocks, its continuation lines joined. */
const curls = blocks
  .filter((block) => block.language === 'sh')
  .flatMap((block) => block.code.replace(/\\\n\s*/g, '').split('\n'))
  .filter((line) => line.trimStart().startsWith('curl '));

let url: string;
beforeAll(async () => {
  url = await untilReady(startEntryPoint({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' }));
});
afterAll(() => stopEntryPoints());

/** Every list the operation asks for at its root has something in it. */
function expectSomethingIn(data: Record<string, unknown>): void {
  for (const [field, value] of Object.entries(data)) {
    if (Array.isArray(value)) expect(value.length, `${field} is empty`).toBeGreaterThan(0);
  }
}

function expectAnswered(text: string) {
  const body = JSON.parse(text) as { data?: Record<string, unknown>; errors?: unknown };
  expect(body.errors, text).toBeUndefined();
  expect(body.data).toBeTruthy();
  expectSomethingIn(body.data!);
}

describe('the README', () => {
  it('has examples to run', () => {
    expect(documents.length).toBeGreaterThan(1);
    expect(curls.length).toBeGreaterThan(0);
  });

  it.each(documents.map((block) => [block.code.split('\n', 1)[0], block.code]))(
    'GraphQL example %s',
    async (_title, code) => {
      const variables = /^# variables: (.*)$/m.exec(code)?.[1];
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: code, variables: variables ? JSON.parse(variables) : undefined }),
      });
      expectAnswered(await response.text());
    },
  );

  it.each(curls)('%s', async (command) => {
    const { stdout } = await run('bash', ['-c', command.replaceAll(README_URL, url)], {
      env: { PATH: process.env.PATH },
    });
    expectAnswered(stdout);
  });
});
