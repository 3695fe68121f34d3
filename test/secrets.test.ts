// No key ever leaves the gateway: this file drives many ways a key could leak (good and bad keys,
// malformed Authorization headers, an upstream that echoes the key in errors and payloads, the
// gateway's own key), keeps every response it receives and every line the gateway logs, and at
// the end searches all of them for every key it used.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/logging.js';
import type { ErrorEnvelope } from '../src/simulator/faults.js';
import { ACME_KEY, GLOBEX_KEY, startStack, type Stack } from './harness.js';
import { postGraphQL, type WireResponse } from './wire.js';

const UNKNOWN_KEY = 'sk-live-a1b2c3d4e5f6g7h8';
const SERVER_KEY = GLOBEX_KEY;
const KEYS = [ACME_KEY, GLOBEX_KEY, UNKNOWN_KEY];

let stack: Stack;
const seen: string[] = [];

beforeAll(async () => {
  // The gateway's own key (used when a client sends none) is one of the keys searched for.
  stack = await startStack({ serverApiKey: SERVER_KEY, config: { upstream: { timeoutMs: 300 } } });
});

afterAll(async () => {
  await stack.stop();
});

async function send(document: string, authorization: string | null): Promise<WireResponse> {
  const response = await postGraphQL(stack.gateway.url, document, undefined, authorization);
  seen.push(`${response.status} ${response.text}`);
  return response;
}

const LIST = 'query Jobs { fineTuneJobs(limit: 2) { id name orgUuid } }';
const ONE = 'query Job { fineTuneJob(id: "ftj-whatever") { id } }';

describe('every way a key could leak', () => {
  it('ordinary calls with each key, and with none', async () => {
    for (const key of [ACME_KEY, GLOBEX_KEY]) {
      await send(LIST, `Bearer ${key}`);
      await send(ONE, `Bearer ${key}`);
    }
    await send(LIST, null);
  });

  it('malformed Authorization headers that contain a key', async () => {
    for (const header of [
      ACME_KEY,
      `Basic ${ACME_KEY}`,
      `Bearer ${ACME_KEY} extra`,
      `Token ${UNKNOWN_KEY}`,
    ]) {
      const response = await send(LIST, header);
      expect(response.status).toBe(200);
      expect(response.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
  });

  it('an unknown key the upstream echoes back', async () => {
    stack.simulator.faults.set('listJobs', { echoKey: true });
    const response = await send(LIST, `Bearer ${UNKNOWN_KEY}`);
    expect(response.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    stack.simulator.faults.clear();
  });

  it('error statuses whose messages echo the key, in every envelope', async () => {
    for (const envelope of ['current', 'legacy', 'older', 'text'] as ErrorEnvelope[]) {
      for (const status of [400, 401, 403, 409, 422, 429, 500, 503]) {
        stack.simulator.faults.set('listJobs', { status, envelope, echoKey: true });
        await send(LIST, `Bearer ${ACME_KEY}`);
        stack.simulator.faults.set('getJob', { status, envelope, echoKey: true });
        await send(ONE, null); // the server's key
      }
    }
    stack.simulator.faults.clear();
  });

  it('a success payload that carries the key (bad shape, and inside a valid record)', async () => {
    stack.simulator.faults.set('listJobs', {
      body: JSON.stringify({ error: `token ${ACME_KEY} expired`, authorization: `Bearer ${ACME_KEY}` }),
    });
    await send(LIST, `Bearer ${ACME_KEY}`);
    stack.simulator.faults.set('getJob', { body: `not json: Bearer ${SERVER_KEY}` });
    await send(ONE, null);
    stack.simulator.faults.clear();
  });

  it('an error body cut for the log just inside a key: not even its start is kept', async () => {
    const kept = 2_000;
    const body = `${'x'.repeat(kept - 6)}${ACME_KEY} and more`;
    stack.simulator.faults.set('listJobs', { status: 500, body });
    const linesBefore = stack.logLines.length;
    await send(LIST, `Bearer ${ACME_KEY}`);
    stack.simulator.faults.clear();
    const logged = stack.logLines.slice(linesBefore).filter((line) => line.includes('xxxxxxxx'));
    expect(logged.length).toBeGreaterThan(0);
    for (const line of logged) expect(line).not.toContain(ACME_KEY.slice(0, 6));
  });

  it('timeouts and dropped connections', async () => {
    stack.simulator.faults.set('listJobs', { delayMs: 1_000, times: 1 });
    await send(LIST, `Bearer ${ACME_KEY}`);
    stack.simulator.faults.set('listJobs', { drop: 'before' });
    await send(LIST, `Bearer ${GLOBEX_KEY}`);
    stack.simulator.faults.clear();
  });

  it('query errors: bad documents, over-limit queries, bad arguments', async () => {
    await send(`query { fineTuneJobs(limit: -5) { id } }`, `Bearer ${ACME_KEY}`);
    await send(`query { fineTuneJob(id: "${ACME_KEY}${'x'.repeat(80)}") { id } }`, `Bearer ${ACME_KEY}`);
    await send(`query { nope }`, `Bearer ${ACME_KEY}`);
    await send(`query {`, `Bearer ${ACME_KEY}`);
    await send(`query { fineTuneJobs(limit: 100000) { id } }`, `Bearer ${ACME_KEY}`);
  });

  it('redacts authorization and key fields whatever logs them', () => {
    const lines: string[] = [];
    const logger = createLogger('info', { destination: { write: (line: string) => void lines.push(line) } });
    logger.info({ authorization: `Bearer ${ACME_KEY}`, apiKey: ACME_KEY }, 'top level');
    logger.info({ req: { headers: { authorization: `Bearer ${ACME_KEY}` } } }, 'nested');
    logger.info({ headers: { authorization: `Bearer ${ACME_KEY}` } }, 'headers');
    logger.info({ upstream: { apiKey: ACME_KEY } }, 'child field');
    expect(lines).toHaveLength(4);
    for (const line of lines) {
      expect(line).not.toContain(ACME_KEY);
      expect(line).toContain('[REDACTED]');
    }
  });
});

describe('the search', () => {
  it('finds no key in any response or log line of this file', () => {
    expect(seen.length).toBeGreaterThan(50);
    expect(stack.logLines.length).toBeGreaterThan(50);
    // The upstream did receive the keys: the search would find them if they had been passed on.
    expect(stack.simulator.requests.some((r) => r.organization === 'acme')).toBe(true);
    const leaks: string[] = [];
    for (const text of [...seen, ...stack.logLines]) {
      for (const key of KEYS) if (text.includes(key)) leaks.push(`${key} in: ${text}`);
    }
    expect(leaks).toEqual([]);
  });
});
