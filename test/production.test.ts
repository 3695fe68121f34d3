// Production defaults: no introspection, no Sandbox, no field suggestions unless configured;
// CSRF prevention on; request bodies capped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACME_KEY, expectData, startStack, type Stack } from './harness.js';
import { connect } from './live-client.js';

const INTROSPECTION = 'query { __schema { queryType { name } } }';
const TYPO = 'query { fineTuneJobs(limit: 1) { nam } }';
const STATUS_VARIABLE = 'query ($s: [FineTuneJobStatus!]) { fineTuneJobs(statuses: $s, limit: 1) { id } }';

let production: Stack;
let productionWithOverrides: Stack;
let development: Stack;
beforeAll(async () => {
  [production, productionWithOverrides, development] = await Promise.all([
    startStack({ env: { NODE_ENV: 'production' }, config: { http: { maxRequestBytes: 2048 } } }),
    startStack({
      env: { NODE_ENV: 'production' },
      config: { security: { introspection: true, fieldSuggestions: true }, explorer: { enabled: true } },
    }),
    startStack({ env: { NODE_ENV: 'development' } }),
  ]);
});
afterAll(() => Promise.all([production.stop(), productionWithOverrides.stop(), development.stop()]));

function landingPage(stack: Stack) {
  return fetch(stack.gateway.url, { headers: { accept: 'text/html' } });
}

describe('in production', () => {
  it('refuses introspection', async () => {
    const response = await production.query(INTROSPECTION);
    expect(response.errors?.[0]?.message).toMatch(/introspection is not allowed/i);
    expect(response.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
  });

  it('serves no Sandbox landing page', async () => {
    const page = await landingPage(production);
    expect(await page.text()).not.toMatch(/sandbox|<html/i);
  });

  it('hides field suggestions', async () => {
    const response = await production.query(TYPO);
    const message = response.errors?.[0]?.message ?? '';
    expect(message).toMatch(/Cannot query field "nam"/);
    expect(message).not.toMatch(/Did you mean/);
    expect(message).not.toMatch(/"name"/);
  });

  it('hides the suggestion in a bad variable value too', async () => {
    const response = await production.query(STATUS_VARIABLE, { s: ['RUNNIN'] });
    const message = response.errors?.[0]?.message ?? '';
    expect(message).toMatch(/"RUNNIN"/);
    expect(message).not.toMatch(/Did you mean|"RUNNING"/);
    expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('applies the same settings over WebSocket', async () => {
    const live = connect(production.gateway.url, null);
    try {
      const introspection = live.subscribe(INTROSPECTION);
      const typo = live.subscribe(TYPO);
      const variable = live.subscribe(STATUS_VARIABLE, { s: ['RUNNIN'] });
      await Promise.all([introspection.finished, typo.finished, variable.finished]);
      expect(introspection.events).toEqual([]);
      expect(JSON.stringify(introspection.failure)).toMatch(/introspection is not allowed/);
      expect(JSON.stringify(introspection.failure)).toContain('GRAPHQL_VALIDATION_FAILED');
      for (const refused of [typo, variable]) {
        const shown = JSON.stringify(refused.failure ?? refused.events);
        expect(shown).not.toMatch(/Did you mean|"name"|"RUNNING"/);
        expect(shown).toMatch(/"code":"(GRAPHQL_VALIDATION_FAILED|BAD_USER_INPUT)"/);
      }
    } finally {
      await live.client.dispose();
    }
  });

  it('turns each back on when configured', async () => {
    expectData(await productionWithOverrides.query(INTROSPECTION));
    expect(await (await landingPage(productionWithOverrides)).text()).toMatch(/sandbox/i);
    const response = await productionWithOverrides.query(TYPO);
    expect(response.errors?.[0]?.message).toMatch(/Did you mean "name"/);
    const live = connect(productionWithOverrides.gateway.url, null);
    try {
      const introspection = live.subscribe(INTROSPECTION);
      await introspection.waitForEvents(1);
      expect(introspection.events[0]?.data).toEqual({ __schema: { queryType: { name: 'Query' } } });
    } finally {
      await live.client.dispose();
    }
  });
});

describe('in development', () => {
  it('allows introspection, Sandbox and suggestions', async () => {
    expectData(await development.query(INTROSPECTION));
    // Introspection needs no key: only fields that call the upstream do.
    expectData(await development.query(INTROSPECTION, undefined, { apiKey: null }));
    expect(await (await landingPage(development)).text()).toMatch(/sandbox/i);
    expect((await development.query(TYPO)).errors?.[0]?.message).toMatch(/Did you mean "name"/);
  });
});

describe('CSRF prevention', () => {
  const getUrl = (query: string) => `${production.gateway.url}?query=${encodeURIComponent(query)}`;

  it('answers a GET query with no preflight header: GET only reads', async () => {
    const response = await fetch(getUrl('{ fineTuneJobs(limit: 1) { id } }'), {
      headers: { authorization: `Bearer ${ACME_KEY}` },
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { data: { fineTuneJobs: unknown[] } }).data.fineTuneJobs).toHaveLength(
      1,
    );
  });

  it('refuses a mutation over GET before any upstream call', async () => {
    const before = production.simulator.requests.length;
    const response = await fetch(getUrl('mutation { stopFineTuneJob(id: "ftj-x") { id } }'), {
      headers: { authorization: `Bearer ${ACME_KEY}` },
    });
    expect(response.status).toBe(405);
    expect(await response.text()).toMatch(/GET/);
    expect(production.simulator.requests).toHaveLength(before);
  });

  it('refuses a simple text/plain POST', async () => {
    const before = production.simulator.requests.length;
    const response = await fetch(production.gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', authorization: `Bearer ${ACME_KEY}` },
      body: JSON.stringify({ query: 'mutation { stopFineTuneJob(id: "ftj-x") { id } }' }),
    });
    expect(response.status).toBe(400);
    expect(await response.text()).toMatch(/CSRF/);
    expect(production.simulator.requests).toHaveLength(before);
  });
});

describe('request body cap (http.maxRequestBytes)', () => {
  const big = (bytes: number) =>
    JSON.stringify({ query: `{ fineTuneJobs(limit: 1) { id } }${' '.repeat(bytes)}` });

  it('answers 413 with a GraphQL error for a body over the cap', async () => {
    const response = await fetch(production.gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ACME_KEY}` },
      body: big(4096),
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual({
      errors: [{ message: 'Request body is larger than 2048 bytes.', extensions: { code: 'BAD_REQUEST' } }],
    });
  });

  it('also when the body is streamed without a content-length', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big(4096)));
        controller.close();
      },
    });
    const response = await fetch(production.gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ACME_KEY}` },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(response.status).toBe(413);
  });

  it('serves a body under the cap', async () => {
    const response = await fetch(production.gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ACME_KEY}` },
      body: big(1000),
    });
    expect(response.status).toBe(200);
  });
});
