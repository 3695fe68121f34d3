// Fair use per person, over the wire, at the default rateLimits (the harness turns them off for
// the other tests): a caller sending 1,000 operations as fast as it can is refused with
// RATE_LIMITED, 429 and Retry-After before the last, with no upstream call for what is refused,
// while another caller is unaffected; a low upstreamCallsPerMinute refuses by the calls spent;
// two instances on one real redis-server share one count.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/errors.js';
import { startSimulator, type RunningSimulator } from '../src/simulator/server.js';
import { ACME_KEY, GLOBEX_KEY, expectData, startGatewayOn, startStack, type Stack } from './harness.js';
import { freePort, startRedis, stopRedis } from './redis-server.js';

const JOBS = 'query { fineTuneJobs(limit: 5) { id } }';
const ON = { rateLimits: { enabled: true } };
const DEFAULT_OPERATIONS_PER_MINUTE = 600;

interface Answer {
  status: number;
  retryAfterHeader: string | null;
  body: { data?: unknown; errors?: { extensions?: Record<string, unknown> }[] };
}

async function post(stack: Stack, apiKey: string, query = JOBS): Promise<Answer> {
  const response = await fetch(stack.gateway.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ query }),
  });
  return {
    status: response.status,
    retryAfterHeader: response.headers.get('retry-after'),
    body: (await response.json()) as Answer['body'],
  };
}

const refused = (answer: Answer) => answer.body.errors?.[0]?.extensions?.code === ErrorCode.RATE_LIMITED;

/**
 * Sends `count` operations one after another, each to the next stack in turn; returns the index
 * of the first refused, the upstream requests made until then, and the answers.
 */
async function flood(stacks: Stack[], simulator: RunningSimulator, count: number) {
  const answers: Answer[] = [];
  let firstRefused: number | undefined;
  let upstreamAtRefusal = 0;
  for (let i = 0; i < count; i++) {
    const answer = await post(stacks[i % stacks.length]!, ACME_KEY);
    answers.push(answer);
    if (firstRefused === undefined && refused(answer)) {
      firstRefused = i;
      upstreamAtRefusal = simulator.requests.length;
    }
  }
  return { answers, firstRefused, upstreamAtRefusal };
}

function expectRefusal(answer: Answer, limit: string) {
  expect(answer.status).toBe(429);
  const extensions = answer.body.errors![0]!.extensions!;
  expect(extensions).toMatchObject({ code: ErrorCode.RATE_LIMITED, limit });
  expect(extensions.retryAfter).toBeGreaterThanOrEqual(1);
  expect(extensions.retryAfter).toBeLessThanOrEqual(60);
  expect(answer.retryAfterHeader).toBe(String(extensions.retryAfter));
  expect(answer.body.data).toBeUndefined();
}

describe('at the default rate limits, on one instance', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ config: ON });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('refuses a caller sending 1,000 operations before the last, with no upstream call; another caller is unaffected', async () => {
    const { answers, firstRefused, upstreamAtRefusal } = await flood([stack], stack.simulator, 1_000);

    // Everything up to the limit ran; the rest was refused, and the upstream heard of none of it.
    expect(firstRefused).toBe(DEFAULT_OPERATIONS_PER_MINUTE);
    expect(answers.slice(0, firstRefused).every((answer) => answer.status === 200 && !refused(answer))).toBe(
      true,
    );
    for (const answer of answers.slice(firstRefused)) expectRefusal(answer, 'operationsPerMinute');
    expect(stack.simulator.requests.length).toBe(upstreamAtRefusal);

    // Another key is another caller.
    const other = await post(stack, GLOBEX_KEY);
    expect(other.status).toBe(200);
    expect(refused(other)).toBe(false);
    expect(stack.simulator.requests.length).toBe(upstreamAtRefusal + 1);
  });

  it('never limits introspection', async () => {
    // ACME is past its limit (the test before); an explorer's schema poll still works.
    const answer = await post(stack, ACME_KEY, '{ __schema { queryType { name } } }');
    expect(answer.status).toBe(200);
    expect(answer.body.errors).toBeUndefined();
  });
});

describe('a low upstreamCallsPerMinute', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ config: { rateLimits: { upstreamCallsPerMinute: 3, enabled: true } } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('refuses once the calls spent reach it, before any further call', async () => {
    // One upstream call each: three run, the fourth is refused unsent.
    for (let i = 0; i < 3; i++) expectData(await stack.query(JOBS));
    expect(stack.simulator.requests.length).toBe(3);
    expectRefusal(await post(stack, ACME_KEY), 'upstreamCallsPerMinute');
    expect(stack.simulator.requests.length).toBe(3);
    expectData(await stack.query(JOBS, {}, { apiKey: GLOBEX_KEY }));
  });
});

describe('two instances on one Redis', () => {
  let redis: ChildProcess;
  let simulator: RunningSimulator;
  let a: Stack;
  let b: Stack;
  beforeAll(async () => {
    const port = await freePort();
    redis = await startRedis(port);
    simulator = await startSimulator({ jobsPerOrganization: 3 });
    const options = {
      env: { REDIS_URL: `redis://127.0.0.1:${port}` },
      config: { ...ON, fleet: { redisPrefix: 'test-rate-limits:' } },
    };
    a = await startGatewayOn(simulator, options);
    b = await startGatewayOn(simulator, options);
  });
  afterAll(async () => {
    try {
      await Promise.allSettled([a?.stop(), b?.stop()]);
      await simulator?.stop();
    } finally {
      if (redis) await stopRedis(redis);
    }
  });

  it('share one limit: operations split across both are refused at the shared count', async () => {
    // Alone, each instance would let 600 through: 1,000 split across two would never be refused.
    const { answers, firstRefused, upstreamAtRefusal } = await flood([a, b], simulator, 1_000);
    expect(firstRefused).toBe(DEFAULT_OPERATIONS_PER_MINUTE);
    for (const answer of answers.slice(firstRefused)) expectRefusal(answer, 'operationsPerMinute');
    expect(simulator.requests.length).toBe(upstreamAtRefusal);
  });

  it('answers while Redis is paused: the count waits for it a second at most, then the instance counts alone', async () => {
    redis.kill('SIGSTOP');
    try {
      // Another key, with its budget left: answered, not held by the paused Redis.
      expectData(await a.query('{ fineTuneJobs(limit: 1) { id } }', undefined, { apiKey: GLOBEX_KEY }));
    } finally {
      redis.kill('SIGCONT');
    }
  });
});
