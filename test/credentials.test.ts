// Whose key reaches the upstream: the client's bearer token, else the gateway's own key (for
// reads, and only on the gateway's own host names), else nothing at all. Keys never come back in
// a response or a log line.
import { request as httpRequest } from 'node:http';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACME_KEY, GLOBEX_KEY, expectData, expectErrorCode, startStack, type Stack } from './harness.js';
import { connect } from './live-client.js';

/** A POST with the `Host` a browser on another name would send (fetch may not set one). */
function postWithHost(
  url: string,
  host: string,
  query: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: { data?: unknown; errors?: { extensions?: { code?: string } }[] } }> {
  const body = JSON.stringify({ query });
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: 'POST',
      headers: { host, 'content-type': 'application/json', ...headers },
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

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

  it('answers UNAUTHENTICATED with no upstream call for a key longer than 8 KiB', async () => {
    // Under Node's 16 KiB of headers, so the gateway reads it; JWTs fit in the 8 KiB allowed.
    const key = `sk-${'K'.repeat(12_000)}`;
    const response = await stack.query(ORG_QUERY, {}, { apiKey: key });
    const error = expectErrorCode(response, 'UNAUTHENTICATED');
    expect(error.message).toContain('8192');
    expect(JSON.stringify(response)).not.toContain('KKKKKKKK');
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

  it('only reads with its own key: a write without a client key is UNAUTHENTICATED, no upstream call', async () => {
    const globex = stack.simulator.store.organizations[1]!;
    const job = stack.simulator.store.list(globex, ['RUNNING'])[0]!;
    const writes = [
      `mutation { stopFineTuneJob(id: "${job.id}") { id } }`,
      `mutation { cancelFineTuneJob(id: "${job.id}") { id } }`,
      'mutation { createFineTuneJob(input: { name: "x", model: "m", datasets: [{ name: "d", split: "train", fileIds: ["f"] }] }) { id } }',
    ];
    for (const write of writes) {
      for (const headers of [{}, { authorization: '' }] as Record<string, string>[]) {
        const error = expectErrorCode(
          await stack.query(write, {}, { apiKey: null, headers }),
          'UNAUTHENTICATED',
        );
        expect(error.message).toMatch(/your own key/);
      }
    }
    expect(stack.simulator.requests).toHaveLength(0);
    expect(stack.simulator.store.list(globex, ['RUNNING']).map((j) => j.id)).toContain(job.id);
  });

  it('refuses a write without a client key over WebSocket too', async () => {
    const globex = stack.simulator.store.organizations[1]!;
    const job = stack.simulator.store.list(globex, ['RUNNING'])[0]!;
    const live = connect(stack.gateway.url, null);
    try {
      const write = live.subscribe(`mutation { cancelFineTuneJob(id: "${job.id}") { id } }`);
      await write.finished;
      expect(JSON.stringify(write.failure ?? write.events)).toContain('UNAUTHENTICATED');
    } finally {
      await live.dispose();
    }
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it("writes with the client's own key", async () => {
    const acme = stack.simulator.store.organizations[0]!;
    const job = stack.simulator.store.list(acme, ['RUNNING'])[0]!;
    expectData(
      await stack.query(`mutation { stopFineTuneJob(id: "${job.id}") { id } }`, {}, { apiKey: ACME_KEY }),
    );
  });

  it("acts with its key only for its own host names: another name's page gets UNAUTHENTICATED", async () => {
    // A page on rebind.example that resolves to the gateway: same-origin to the browser.
    const foreign = await postWithHost(stack.gateway.url, 'rebind.example:80', ORG_QUERY);
    expect(foreign.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(stack.simulator.requests).toHaveLength(0);
    // Its own names (loopback by default) are served; a client's own key is served on any name.
    expect((await postWithHost(stack.gateway.url, 'localhost', ORG_QUERY)).body.data).toBeTruthy();
    const own = await postWithHost(stack.gateway.url, 'rebind.example', ORG_QUERY, {
      authorization: `Bearer ${ACME_KEY}`,
    });
    expect(own.body.data).toBeTruthy();
  });
});

describe('the gateway key and its settings', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  it('security.anonymousWrites: true lets a client without a key write with the gateway key', async () => {
    const s = (stack = await startStack({
      serverApiKey: GLOBEX_KEY,
      config: { security: { anonymousWrites: true } },
    }));
    const job = s.simulator.store.list(s.simulator.store.organizations[1]!, ['RUNNING'])[0]!;
    expectData(await s.query(`mutation { stopFineTuneJob(id: "${job.id}") { id } }`, {}, { apiKey: null }));
    expect(s.simulator.requestsTo('stopJob').map((r) => r.organization)).toEqual(['globex']);
  });

  it('security.allowedHosts names the host names the gateway key serves', async () => {
    const s = (stack = await startStack({
      serverApiKey: GLOBEX_KEY,
      config: { security: { allowedHosts: ['jobs.example.com'] } },
    }));
    expect((await postWithHost(s.gateway.url, 'jobs.example.com:4000', ORG_QUERY)).body.data).toBeTruthy();
    const loopback = await postWithHost(s.gateway.url, 'localhost', ORG_QUERY);
    expect(loopback.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('a WebSocket upgrade from another host name gets no gateway key', async () => {
    const s = (stack = await startStack({
      serverApiKey: GLOBEX_KEY,
      config: { security: { allowedHosts: ['jobs.example.com'] } },
    }));
    const live = connect(s.gateway.url, null);
    try {
      const read = live.subscribe('query { fineTuneJobs(limit: 1) { id } }');
      await read.finished;
      expect(JSON.stringify(read.failure ?? read.events)).toContain('UNAUTHENTICATED');
    } finally {
      await live.dispose();
    }
    expect(s.simulator.requests).toHaveLength(0);
  });
});
