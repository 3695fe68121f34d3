// Fair use per person when signed in: with JWT authentication, the rate limits count each
// token's subject, not the organization's upstream key its people share. One person past
// rateLimits.operationsPerMinute is refused (429, Retry-After, no upstream call), over HTTP and
// over WebSocket, while a colleague of the same organization, on the same key, is still served.
// A small limit keeps the test short; test/rate-limits.test.ts covers the defaults.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/errors.js';
import { ACME_KEY, expectData, startStack, type GraphQLResponse, type Stack } from './harness.js';
import { startIdentityProvider } from './identity-provider.js';
import { connect } from './live-client.js';

const JOBS = 'query { fineTuneJobs(limit: 5) { id } }';
const OPERATIONS_PER_MINUTE = 5;
const ACME = { org: 'acme' };

let idp: Awaited<ReturnType<typeof startIdentityProvider>>;
let stack: Stack;

beforeAll(async () => {
  idp = await startIdentityProvider();
  stack = await startStack({
    serverApiKey: ACME_KEY,
    env: idp.env,
    config: {
      auth: { organizations: { claim: 'org', keys: { acme: ACME_KEY } } },
      rateLimits: { enabled: true, operationsPerMinute: OPERATIONS_PER_MINUTE },
    },
  });
});
afterAll(async () => {
  await stack?.stop();
  await idp?.stop();
});
beforeEach(() => stack.simulator.resetRequests());

/** The upstream requests so far, by the organization whose key they carried. */
const upstreamOrganizations = () => stack.simulator.requests.map((request) => request.organization);

function expectRateLimited(response: GraphQLResponse) {
  expect(response.status).toBe(429);
  const extensions = response.errors![0]!.extensions!;
  expect(extensions).toMatchObject({ code: ErrorCode.RATE_LIMITED, limit: 'operationsPerMinute' });
  expect(extensions.retryAfter).toBeGreaterThanOrEqual(1);
  expect(response.headers.get('retry-after')).toBe(String(extensions.retryAfter));
  expect(response.data ?? undefined).toBeUndefined();
}

describe('signed in, the rate limits count the person, not the organization’s key', () => {
  it('refuses one person past the limit over HTTP, with no upstream call; a colleague on the same key is served', async () => {
    // Each operation with a fresh token: the count follows the subject, not the token.
    for (let i = 0; i < OPERATIONS_PER_MINUTE; i++) {
      expectData(await stack.query(JOBS, {}, { apiKey: await idp.token('ada@acme.example', ACME) }));
    }
    const spent = stack.simulator.requests.length;
    expect(spent).toBeGreaterThan(0);
    for (let i = 0; i < 3; i++) {
      expectRateLimited(await stack.query(JOBS, {}, { apiKey: await idp.token('ada@acme.example', ACME) }));
    }
    expect(stack.simulator.requests.length).toBe(spent);

    // Same organization, so the same upstream key: served, and the call goes out with it.
    expectData(await stack.query(JOBS, {}, { apiKey: await idp.token('grace@acme.example', ACME) }));
    expect(stack.simulator.requests.length).toBeGreaterThan(spent);
    expect(new Set(upstreamOrganizations())).toEqual(new Set(['acme']));
  });

  it('refuses a query past the limit over WebSocket too, with no upstream call', async () => {
    const client = connect(stack.gateway.url, await idp.token('lin@acme.example', ACME));
    try {
      for (let i = 0; i < OPERATIONS_PER_MINUTE; i++) {
        const served = client.subscribe(JOBS);
        await served.finished;
        expect(served.failure).toBeUndefined();
        expect(served.events[0]?.errors).toBeUndefined();
      }
      const spent = stack.simulator.requests.length;
      const refused = client.subscribe(JOBS);
      await refused.finished;
      const error =
        refused.events[0]?.errors?.[0] ?? (refused.failure as { extensions?: Record<string, unknown> }[])[0]!;
      expect(error.extensions).toMatchObject({ code: ErrorCode.RATE_LIMITED, limit: 'operationsPerMinute' });
      expect(stack.simulator.requests.length).toBe(spent);
    } finally {
      await client.dispose();
    }

    // A colleague of the same organization is still served over WebSocket.
    const colleague = connect(stack.gateway.url, await idp.token('joan@acme.example', ACME));
    try {
      const served = colleague.subscribe(JOBS);
      await served.finished;
      expect(served.failure).toBeUndefined();
      expect(served.events[0]?.data).toBeTruthy();
    } finally {
      await colleague.dispose();
    }
    expect(new Set(upstreamOrganizations())).toEqual(new Set(['acme']));
  });
});
