// Whose key reaches the upstream: the client's bearer token, else the gateway's own key, else
// nothing at all. Keys never come back in a response or a log line.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACME_KEY, GLOBEX_KEY, expectData, expectErrorCode, startStack, type Stack } from './harness.js';

const ORG_QUERY = 'query { fineTuneJobs(limit: 3) { id orgUuid } }';
const ACME_UUID = '0a1b2c3d-4e5f-6789-abcd-ef0123456789';
const GLOBEX_UUID = 'org_2wh4zfagp480wbt3nhm8tcqw6z';

function orgsIn(data: { fineTuneJobs: { orgUuid: string }[] }): string[] {
  return [...new Set(data.fineTuneJobs.map((j) => j.orgUuid))];
}

describe('a gateway without a key of its own', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.stop());
  beforeEach(() => stack.simulator.resetRequests());

  it("forwards the client's bearer key: each organization sees its own jobs", async () => {
    const acme = expectData(await stack.query<{ fineTuneJobs: { orgUuid: string }[] }>(ORG_QUERY));
    const globex = expectData(
      await stack.query<{ fineTuneJobs: { orgUuid: string }[] }>(ORG_QUERY, {}, { apiKey: GLOBEX_KEY }),
    );
    expect(orgsIn(acme)).toEqual([ACME_UUID]);
    expect(orgsIn(globex)).toEqual([GLOBEX_UUID]);
    expect(stack.simulator.requests.map((r) => r.organization)).toEqual(['acme', 'globex']);
  });

  it('answers UNAUTHENTICATED with no upstream call when there is no key at all', async () => {
    const error = expectErrorCode(await stack.query(ORG_QUERY, {}, { apiKey: null }), 'UNAUTHENTICATED');
    expect(error.message).toMatch(/Authorization: Bearer/);
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('answers UNAUTHENTICATED with no upstream call for a header that is not a bearer token', async () => {
    const response = await stack.query(
      ORG_QUERY,
      {},
      { apiKey: null, headers: { authorization: 'Basic Zm9vOmJhcg==' } },
    );
    expectErrorCode(response, 'UNAUTHENTICATED');
    expect(JSON.stringify(response)).not.toContain('Zm9vOmJhcg==');
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('maps a key the upstream rejects to UNAUTHENTICATED without echoing the key', async () => {
    const key = 'not-a-real-key-1234567890';
    const response = await stack.query(ORG_QUERY, {}, { apiKey: key });
    const error = expectErrorCode(response, 'UNAUTHENTICATED');
    expect(error.extensions?.upstream).toMatchObject({ status: 401 });
    expect(JSON.stringify(response)).not.toContain(key);
  });

  it('scrubs a key the upstream echoes back in its error body, from the response and the logs', async () => {
    const key = 'leaky-key-abcdef0123456789';
    stack.simulator.faults.set('listJobs', { status: 400, echoKey: true, times: 1 });
    const response = await stack.query(ORG_QUERY, {}, { apiKey: key });
    const error = expectErrorCode(response, 'BAD_USER_INPUT');
    expect(error.message).toContain('[REDACTED]');
    expect(JSON.stringify(response)).not.toContain(key);
    expect(stack.logLines.join('\n')).not.toContain(key);
  });

  it('still serves introspection without a key, so Sandbox can load the schema', async () => {
    const data = expectData(
      await stack.query<{ __schema: { queryType: { name: string } } }>(
        '{ __schema { queryType { name } } }',
        {},
        { apiKey: null },
      ),
    );
    expect(data.__schema.queryType.name).toBe('Query');
    expect(stack.simulator.requests).toHaveLength(0);
  });
});

describe('a gateway with its own key (ATAI_API_KEY)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ serverApiKey: GLOBEX_KEY });
  });
  afterAll(() => stack.stop());
  afterEach(() => stack.simulator.resetRequests());

  it('uses its own key for clients that send none', async () => {
    const data = expectData(
      await stack.query<{ fineTuneJobs: { orgUuid: string }[] }>(ORG_QUERY, {}, { apiKey: null }),
    );
    expect(orgsIn(data)).toEqual([GLOBEX_UUID]);
    expect(stack.simulator.requests.map((r) => r.organization)).toEqual(['globex']);
  });

  it("prefers the client's key over its own", async () => {
    const data = expectData(
      await stack.query<{ fineTuneJobs: { orgUuid: string }[] }>(ORG_QUERY, {}, { apiKey: ACME_KEY }),
    );
    expect(orgsIn(data)).toEqual([ACME_UUID]);
  });

  it('never writes either key into a log line', () => {
    const logs = stack.logLines.join('\n');
    expect(logs).not.toContain(GLOBEX_KEY);
    expect(logs).not.toContain(ACME_KEY);
  });
});
