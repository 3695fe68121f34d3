// JWT authentication over the wire: an identity provider of the test's own (a JWKS endpoint on
// loopback, keys made by jose), tokens good and bad, and what reaches the upstream: the
// organization's key for a good token, nothing at all for a bad one. No token ever shows in a
// response or a log line.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { GatewayConfigFile } from '../src/config.js';
import { ACME_KEY, GLOBEX_KEY, expectData, expectErrorCode, startStack, type Stack } from './harness.js';
import { connect } from './live-client.js';

const ISSUER = 'https://id.example.com/realms/ml';
const AUDIENCE = 'fine-tune-gateway';
const ORG_QUERY = 'query { fineTuneJobs(limit: 3) { id orgUuid } }';
const ACME_UUID = '0a1b2c3d-4e5f-6789-abcd-ef0123456789';
const GLOBEX_UUID = 'org_2wh4zfagp480wbt3nhm8tcqw6z';
const ORGANIZATIONS: GatewayConfigFile = {
  auth: { organizations: { claim: 'org', keys: { acme: ACME_KEY, globex: GLOBEX_KEY } } },
};

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  publicKey: CryptoKey;
}

async function signingKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  return {
    kid,
    privateKey,
    publicKey,
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' },
  };
}

/** The identity provider's JWKS endpoint: the keys it serves, how often it was asked, and whether it is down. */
class IdentityProvider {
  keys: SigningKey[] = [];
  fetches = 0;
  down = false;
  private constructor(private readonly server: Server) {}

  static async start(keys: SigningKey[]): Promise<IdentityProvider> {
    const server = createServer((_req, res) => {
      provider.fetches += 1;
      if (provider.down) return res.writeHead(503).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: provider.keys.map((k) => k.publicJwk) }));
    });
    const provider = new IdentityProvider(server);
    provider.keys = keys;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return provider;
  }

  get env(): Record<string, string> {
    const { port } = this.server.address() as AddressInfo;
    return {
      AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json`,
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
    };
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const now = () => Math.floor(Date.now() / 1000);

/** A token as the identity provider issues it; `claims` and `edit` make the bad ones. */
function token(
  key: SigningKey,
  claims: Record<string, unknown> = { org: 'acme' },
  edit = (jwt: SignJWT) => jwt,
) {
  return edit(
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: key.kid })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject('ada@example.com')
      .setIssuedAt()
      .setExpirationTime('5m'),
  ).sign(key.privateKey);
}

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Every token a test sent: none may come back in a response or a log line. */
const sent: string[] = [];
function bearer(jwt: string) {
  sent.push(jwt);
  return jwt;
}

function expectNoTokenIn(stack: Stack, ...responses: unknown[]) {
  const text = [...responses.map((r) => JSON.stringify(r)), ...stack.logLines].join('\n');
  for (const jwt of sent) {
    // The signature (or, for alg none, the claims) is what would give the token away.
    const [, claims, signature] = jwt.split('.');
    expect(text).not.toContain(signature || claims);
  }
  expect(responses.map((r) => JSON.stringify(r)).join('\n')).not.toMatch(/sim-(acme|globex)-key/);
}

describe('JWT authentication with two organizations', () => {
  let idp: IdentityProvider;
  let key: SigningKey;
  let stack: Stack;
  beforeAll(async () => {
    key = await signingKey('k1');
    idp = await IdentityProvider.start([key]);
    // The gateway's own key is set: with JWT authentication on, it serves no anonymous caller.
    stack = await startStack({ env: idp.env, config: ORGANIZATIONS, serverApiKey: ACME_KEY });
  });
  afterAll(async () => {
    await stack.stop();
    await idp.stop();
  });
  beforeEach(() => stack.simulator.resetRequests());

  it("answers a valid token with its organization's key: each organization sees its own jobs", async () => {
    const acme = await stack.query<{ fineTuneJobs: { orgUuid: string }[] }>(
      ORG_QUERY,
      {},
      {
        apiKey: bearer(await token(key, { org: 'acme' })),
      },
    );
    const globex = await stack.query<{ fineTuneJobs: { orgUuid: string }[] }>(
      ORG_QUERY,
      {},
      {
        apiKey: bearer(await token(key, { org: 'globex' })),
      },
    );
    expect(expectData(acme).fineTuneJobs.map((j) => j.orgUuid)).toEqual(Array(3).fill(ACME_UUID));
    expect(expectData(globex).fineTuneJobs.map((j) => j.orgUuid)).toEqual(Array(3).fill(GLOBEX_UUID));
    // The simulator knows a request's organization by the key it carried.
    expect(stack.simulator.requests.map((r) => r.organization)).toEqual(['acme', 'globex']);
    expectNoTokenIn(stack, acme, globex);
  });

  it('writes with a valid token: the person acts for the organization without its key', async () => {
    const acme = stack.simulator.store.organizations[0]!;
    const job = stack.simulator.store.list(acme, ['RUNNING'])[0]!;
    const response = await stack.query(
      `mutation { cancelFineTuneJob(id: "${job.id}") { id } }`,
      {},
      // A write needs the `jobs:write` scope (test/scopes.test.ts).
      { apiKey: bearer(await token(key, { org: 'acme', scope: 'jobs:write' })) },
    );
    expectData(response);
    expect(stack.simulator.requests.map((r) => r.organization)).toContain('acme');
    // The audit trail says who: the token's subject and organization, never the token or the key.
    const audit = stack.logLines
      .map((line) => JSON.parse(line))
      .find((line) => line.audit === true && line.jobId === job.id);
    expect(audit).toMatchObject({
      action: 'cancel',
      jobId: job.id,
      outcome: 'done',
      subject: 'ada@example.com',
      organization: 'acme',
    });
  });

  const attacks: [string, () => Promise<string>, RegExp][] = [
    [
      'an expired token',
      () => token(key, { org: 'acme' }, (t) => t.setExpirationTime(now() - 120)),
      /expired/,
    ],
    [
      'a token not yet valid',
      () => token(key, { org: 'acme' }, (t) => t.setNotBefore(now() + 120)),
      /not yet valid/,
    ],
    [
      'a token from another issuer',
      () => token(key, { org: 'acme' }, (t) => t.setIssuer('https://evil.example')),
      /issuer/,
    ],
    [
      'a token for another audience',
      () => token(key, { org: 'acme' }, (t) => t.setAudience('another-api')),
      /audience/,
    ],
    [
      'an unsigned token (alg: none)',
      async () =>
        `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ iss: ISSUER, aud: AUDIENCE, sub: 'mallory', org: 'acme', exp: now() + 300 })}.`,
      /algorithm/,
    ],
    [
      'HS256 signed with the public key as the secret (algorithm confusion)',
      async () =>
        new SignJWT({ org: 'acme' })
          .setProtectedHeader({ alg: 'HS256', kid: key.kid })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setExpirationTime('5m')
          .sign(new TextEncoder().encode(await exportSPKI(key.publicKey))),
      /algorithm/,
    ],
    [
      'a token signed by a key the JWKS does not hold',
      async () => token(await signingKey('k1')),
      /signature/,
    ],
    ['a JWT-shaped value that does not decode', async () => 'eyJub3Q.anVzdA.YSB0b2tlbg', /not a valid JWT/],
    ['a token whose organization has no key', () => token(key, { org: 'initech' }), /no organization/],
  ];

  it.each(attacks)('refuses %s: UNAUTHENTICATED, no upstream call', async (_name, make, reason) => {
    const jwt = bearer(await make());
    const read = await stack.query(ORG_QUERY, {}, { apiKey: jwt });
    const write = await stack.query(
      'mutation { cancelFineTuneJob(id: "ftjob-1") { id } }',
      {},
      { apiKey: jwt },
    );
    expect(read.status).toBe(200);
    expect(expectErrorCode(read, 'UNAUTHENTICATED').message).toMatch(reason);
    expectErrorCode(write, 'UNAUTHENTICATED');
    expect(stack.simulator.requests).toHaveLength(0);
    expectNoTokenIn(stack, read, write);
  });

  it('refuses a request with no credential, though the gateway has a key of its own', async () => {
    const response = await stack.query(ORG_QUERY, {}, { apiKey: null });
    expect(expectErrorCode(response, 'UNAUTHENTICATED').message).toMatch(/identity provider/);
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('still forwards an API key of the caller (key pass-through, the default)', async () => {
    const response = await stack.query<{ fineTuneJobs: { orgUuid: string }[] }>(
      ORG_QUERY,
      {},
      { apiKey: GLOBEX_KEY },
    );
    expect(expectData(response).fineTuneJobs[0]!.orgUuid).toBe(GLOBEX_UUID);
    expect(stack.simulator.requests.map((r) => r.organization)).toEqual(['globex']);
  });

  it('verifies a token sent in the WebSocket connection parameters', async () => {
    const good = connect(stack.gateway.url, bearer(await token(key, { org: 'globex' })));
    const bad = connect(
      stack.gateway.url,
      bearer(await token(key, { org: 'acme' }, (t) => t.setExpirationTime(now() - 120))),
    );
    try {
      const answered = good.subscribe(ORG_QUERY);
      const refused = bad.subscribe(ORG_QUERY);
      await Promise.all([answered.finished, refused.finished]);
      expect(JSON.stringify(answered.events)).toContain(GLOBEX_UUID);
      const refusal = JSON.stringify(refused.failure ?? refused.events);
      expect(refusal).toContain('UNAUTHENTICATED');
      expect(stack.simulator.requests.map((r) => r.organization)).toEqual(['globex']);
      expectNoTokenIn(stack, answered.events, refusal);
    } finally {
      await Promise.all([good.dispose(), bad.dispose()]);
    }
  });
});

describe('JWT authentication without key pass-through, one organization', () => {
  let idp: IdentityProvider;
  let key: SigningKey;
  let stack: Stack;
  beforeAll(async () => {
    key = await signingKey('k1');
    idp = await IdentityProvider.start([key]);
    // No mapping: every valid token acts with the gateway's ATAI_API_KEY.
    stack = await startStack({
      env: idp.env,
      config: { auth: { keyPassThrough: false } },
      serverApiKey: GLOBEX_KEY,
    });
  });
  afterAll(async () => {
    await stack.stop();
    await idp.stop();
  });
  beforeEach(() => stack.simulator.resetRequests());

  it("acts with the gateway's own key for a valid token", async () => {
    const response = await stack.query(ORG_QUERY, {}, { apiKey: bearer(await token(key, {})) });
    expectData(response);
    expect(stack.simulator.requests.map((r) => r.organization)).toEqual(['globex']);
  });

  it('refuses an API key', async () => {
    const response = await stack.query(ORG_QUERY, {}, { apiKey: ACME_KEY });
    expect(expectErrorCode(response, 'UNAUTHENTICATED').message).toMatch(/API keys are not accepted/);
    expect(stack.simulator.requests).toHaveLength(0);
    expectNoTokenIn(stack, response);
  });
});

describe("the identity provider's keys", () => {
  let idp: IdentityProvider;
  let stack: Stack;
  const first = signingKey('k1');
  beforeEach(async () => {
    idp = await IdentityProvider.start([await first]);
    stack = await startStack({ env: idp.env, config: ORGANIZATIONS });
  });
  afterEach(async () => {
    vi.useRealTimers();
    await stack.stop();
    await idp.stop();
  });

  it('honours a rotated key: an unknown kid fetches the keys again once the cooldown has passed', async () => {
    expectData(await stack.query(ORG_QUERY, {}, { apiKey: bearer(await token(await first)) }));
    expect(idp.fetches).toBe(1);
    const rotated = await signingKey('k2');
    idp.keys = [rotated];
    // Only the clock is faked (the sockets keep real timers): 31 s on, past jose's 30 s cooldown.
    vi.useFakeTimers({ toFake: ['Date'] });
    const early = await stack.query(ORG_QUERY, {}, { apiKey: bearer(await token(rotated)) });
    expectErrorCode(early, 'UNAUTHENTICATED');
    expect(idp.fetches).toBe(1);
    vi.setSystemTime(Date.now() + 31_000);
    expectData(await stack.query(ORG_QUERY, {}, { apiKey: bearer(await token(rotated)) }));
    expect(idp.fetches).toBe(2);
    expectNoTokenIn(stack, early);
  });

  it('keeps verifying with the keys last fetched when they are due for a refetch and the endpoint is down', async () => {
    expectData(await stack.query(ORG_QUERY, {}, { apiKey: bearer(await token(await first)) }));
    idp.down = true;
    // Past jose's 10 minutes of cache: the next token asks for the keys again, and is answered 503.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 11 * 60_000);
    expectData(await stack.query(ORG_QUERY, {}, { apiKey: bearer(await token(await first)) }));
    expect(idp.fetches).toBe(2);
    expect(stack.logLines.some((line) => line.includes('could not be fetched'))).toBe(true);
    // A key it never had is still refused.
    const other = await stack.query(ORG_QUERY, {}, { apiKey: bearer(await token(await signingKey('k9'))) });
    expectErrorCode(other, 'UNAUTHENTICATED');
    expect(stack.simulator.requests).toHaveLength(2);
    expectNoTokenIn(stack, other);
  });

  it('verifies with the cached keys while the JWKS endpoint is down; with none cached, UNAUTHENTICATED', async () => {
    idp.down = true;
    const none = await stack.query(ORG_QUERY, {}, { apiKey: bearer(await token(await first)) });
    expect(none.status).toBe(200);
    expect(expectErrorCode(none, 'UNAUTHENTICATED').message).toMatch(/keys could not be fetched/);
    expect(stack.simulator.requests).toHaveLength(0);
    expect(stack.logLines.some((line) => line.includes('could not be fetched'))).toBe(true);
    idp.down = false;
    expectData(await stack.query(ORG_QUERY, {}, { apiKey: bearer(await token(await first)) }));
    idp.down = true;
    const fetches = idp.fetches;
    expectData(await stack.query(ORG_QUERY, {}, { apiKey: bearer(await token(await first)) }));
    expect(idp.fetches).toBe(fetches);
    expectNoTokenIn(stack, none);
  });
});
