// JWT authentication behind a real federation router: a client's token goes through Hive Gateway
// (examples/federation/gateway.config.ts, which forwards the client's Authorization to the
// fine-tune gateway) and is verified by the gateway against an identity provider of the test's
// own (a JWKS endpoint on loopback, keys made by jose). What reached the fine-tune API is read at
// the simulator: the organization's key for a good token, nothing for a bad one or none.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACME_KEY, startStack, type Stack } from './harness.js';
import { compose, INSTALLED, startRouter, type Child } from './router-process.js';
import { postGraphQL, type WireResponse } from './wire.js';

const ISSUER = 'https://id.example.com/realms/ml';
const AUDIENCE = 'fine-tune-gateway';
const LIST = '{ fineTuneJobs(limit: 3) { id name } }';

async function signingKey(): Promise<{ privateKey: CryptoKey; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  return { privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' } };
}

/** A token for acme as the identity provider issues it; `edit` makes the expired one. */
function token(privateKey: CryptoKey, edit = (jwt: SignJWT) => jwt.setExpirationTime('5m')): Promise<string> {
  return edit(
    new SignJWT({ org: 'acme' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject('ada@example.com')
      .setIssuedAt(),
  ).sign(privateKey);
}

describe.skipIf(!INSTALLED)('JWT authentication behind Hive Gateway (examples/federation)', () => {
  let idp: Server;
  let privateKey: CryptoKey;
  let stack: Stack;
  let router: Child;
  let routerUrl: string;
  let workDir: string;

  const viaRouter = (authorization: string | null) => postGraphQL(routerUrl, LIST, undefined, authorization);

  beforeAll(async () => {
    const key = await signingKey();
    privateKey = key.privateKey;
    idp = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [key.publicJwk] }));
    });
    await new Promise<void>((resolve) => idp.listen(0, '127.0.0.1', resolve));
    const { port } = idp.address() as AddressInfo;
    stack = await startStack({
      simulator: { jobsPerOrganization: 4, providerExamples: false },
      // The gateway's own key is set: with JWT authentication on, it serves no anonymous caller.
      serverApiKey: ACME_KEY,
      env: {
        AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json`,
        AUTH_ISSUER: ISSUER,
        AUTH_AUDIENCE: AUDIENCE,
      },
      config: {
        federation: { subgraph: true },
        auth: { organizations: { claim: 'org', keys: { acme: ACME_KEY } } },
      },
    });
    workDir = await mkdtemp(path.join(tmpdir(), 'router-jwt-test-'));
    const supergraphFile = path.join(workDir, 'supergraph.graphql');
    await compose({ 'fine-tune-jobs': stack.gateway.url }, supergraphFile);
    ({ child: router, url: routerUrl } = await startRouter(supergraphFile));
  }, 120_000);
  afterAll(async () => {
    await router?.stop();
    await stack?.stop();
    if (idp) await new Promise<void>((resolve) => idp.close(() => resolve()));
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });
  beforeEach(() => stack.simulator.resetRequests());

  /** Refused by the gateway with `reason`: it saw the forwarded token (or none), and called no one. */
  function expectUnauthenticated(response: WireResponse, reason: RegExp, jwt?: string) {
    expect(response.body.errors?.[0]?.extensions?.code, response.text).toBe('UNAUTHENTICATED');
    expect(response.body.errors?.[0]?.message).toMatch(reason);
    expect(response.body.data?.fineTuneJobs ?? null, response.text).toBeNull();
    if (jwt) expect(response.text).not.toContain(jwt.split('.')[2]);
    expect(stack.simulator.requests).toHaveLength(0);
  }

  it("answers a valid token with its organization's jobs: the gateway verified the token the router forwarded", async () => {
    const response = await viaRouter(`Bearer ${await token(privateKey)}`);
    expect(response.body.errors, response.text).toBeUndefined();
    const acme = stack.simulator.store.organizations[0]!;
    const expected = stack.simulator.store.list(acme, null).slice(0, 3);
    expect(response.body.data?.fineTuneJobs).toEqual(expected.map((j) => ({ id: j.id, name: j.name })));
    expect(stack.simulator.requests.map((r) => r.organization)).toEqual(['acme']);
  });

  it('refuses an expired token with UNAUTHENTICATED, without calling the fine-tune API', async () => {
    const expired = await token(privateKey, (jwt) => jwt.setIssuedAt('-10m').setExpirationTime('-5m'));
    expectUnauthenticated(await viaRouter(`Bearer ${expired}`), /token was refused.*expired/, expired);
  });

  it('refuses a token signed by another key (same kid) with UNAUTHENTICATED, without calling the fine-tune API', async () => {
    const forged = await token((await signingKey()).privateKey);
    expectUnauthenticated(await viaRouter(`Bearer ${forged}`), /token was refused.*signature/, forged);
  });

  it('refuses a caller without a token with UNAUTHENTICATED, though the gateway has a key of its own', async () => {
    expectUnauthenticated(await viaRouter(null), /No credential/);
  });
});
