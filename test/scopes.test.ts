// Scope policies over the wire (JWT authentication on): the mutations need `jobs:write`, an
// operator-marked field needs its scope, and a refused operation makes no upstream call, over
// HTTP, in a batch and over WebSocket. Keys from an identity provider of the test's own (test/identity-provider.ts).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACME_KEY, expectData, expectErrorCode, startStack, type Stack } from './harness.js';
import { startIdentityProvider } from './identity-provider.js';
import { jobRecord } from './jobs.js';
import { connect } from './live-client.js';

const CANCEL = 'mutation ($id: ID!) { cancelFineTuneJob(id: $id) { id status } }';
// The mutation reached through a fragment: policies see every selected field.
const CANCEL_IN_FRAGMENT = `mutation ($id: ID!) { ...Cancel }
fragment Cancel on Mutation { cancelFineTuneJob(id: $id) { id status } }`;
const LIST = 'query { fineTuneJobs(limit: 1) { id } }';
const ONE = 'query ($id: ID!) { fineTuneJob(id: $id) { id } }';

let idp: Awaited<ReturnType<typeof startIdentityProvider>>;
let stack: Stack;

function token(claims: Record<string, unknown>): Promise<string> {
  return idp.token('ada@example.com', claims);
}

beforeAll(async () => {
  idp = await startIdentityProvider();
  stack = await startStack({
    simulator: { jobsPerOrganization: 0, providerExamples: false },
    serverApiKey: ACME_KEY,
    env: idp.env,
    config: { auth: { requiredScopes: { 'Query.fineTuneJobs': [['jobs:read']] } } },
  });
});
afterAll(async () => {
  await stack.stop();
  await idp.stop();
});
beforeEach(() => stack.simulator.resetRequests());

function runningJob(): string {
  const acme = stack.simulator.store.organizations[0]!;
  const record = jobRecord(acme, { status: 'RUNNING' });
  stack.simulator.store.put(acme, record);
  return record.id;
}

function expectForbidden(error: { message: string; extensions?: Record<string, unknown> }, scope: string) {
  expect(error.extensions?.code).toBe('FORBIDDEN');
  expect(error.message).toContain(`\`${scope}\``);
  expect(error.extensions?.requiredScopes).toEqual([[scope]]);
}

describe('the mutations need jobs:write', () => {
  it('refuses a cancel without the scope over HTTP, through a fragment too, with no upstream call', async () => {
    const apiKey = await token({ scope: 'jobs:read profile' });
    const id = runningJob();
    for (const document of [CANCEL, CANCEL_IN_FRAGMENT]) {
      const response = await stack.query(document, { id }, { apiKey });
      expectForbidden(expectErrorCode(response, 'FORBIDDEN'), 'jobs:write');
    }
    expect(stack.simulator.requests).toHaveLength(0);
    expect(stack.simulator.store.get(stack.simulator.store.organizations[0]!, id)?.status).toBe('RUNNING');
  });

  it('refuses a cancel without the scope over WebSocket, with no upstream call', async () => {
    const client = connect(stack.gateway.url, await token({ scope: 'jobs:read' }));
    try {
      const refused = client.subscribe(CANCEL, { id: runningJob() });
      await refused.finished;
      const error = refused.events[0]?.errors?.[0] ?? (refused.failure as { message: string }[])[0]!;
      expectForbidden(error, 'jobs:write');
      expect(stack.simulator.requests).toHaveLength(0);
    } finally {
      await client.dispose();
    }
  });

  it('cancels with `scope: "jobs:write"` and with `scp: ["jobs:write"]`', async () => {
    for (const claims of [{ scope: 'openid jobs:write' }, { scp: ['jobs:write'] }]) {
      const response = await stack.query<{ cancelFineTuneJob: { status: string } }>(
        CANCEL,
        { id: runningJob() },
        { apiKey: await token(claims) },
      );
      expect(expectData(response).cancelFineTuneJob.status).toBe('CANCELLED');
    }
  });

  it('passes an API key (the organization’s own, key pass-through) without scopes', async () => {
    const response = await stack.query<{ cancelFineTuneJob: { status: string } }>(
      CANCEL,
      { id: runningJob() },
      { apiKey: ACME_KEY },
    );
    expect(expectData(response).cancelFineTuneJob.status).toBe('CANCELLED');
  });
});

describe('reads', () => {
  it('need no scope by default', async () => {
    const response = await stack.query(ONE, { id: runningJob() }, { apiKey: await token({}) });
    expectData(response);
  });

  it('an operator-marked field needs its scope (auth.requiredScopes), with no upstream call', async () => {
    const refused = await stack.query(LIST, {}, { apiKey: await token({ scp: ['jobs:write'] }) });
    expectForbidden(expectErrorCode(refused, 'FORBIDDEN'), 'jobs:read');
    expect(stack.simulator.requests).toHaveLength(0);
    expectData(await stack.query(LIST, {}, { apiKey: await token({ scope: 'jobs:read' }) }));
  });
});
