// The direct JSON execution (src/execution/json-executor.ts) against Apollo Server's own
// pipeline, over the wire: two gateways on one simulator, one with DIRECT_EXECUTION and one
// without, receive the same generated operations (with faults injected upstream) and must answer
// with the same status, content type and bytes, after the same upstream calls.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, validate } from 'graphql';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/logging.js';
import { buildGatewaySchema } from '../src/graphql/schema.js';
import { startGateway, type RunningGateway } from '../src/server.js';
import { startSimulator, type RunningSimulator } from '../src/simulator/server.js';
import { generateOperation, type Generated } from './generated-operations.js';
import { ACME_KEY } from './harness.js';

const OPERATIONS = 300;
const schema = await buildGatewaySchema({ federation: false });

let simulator: RunningSimulator;
let direct: RunningGateway;
let apollo: RunningGateway;

async function gateway(env: Record<string, string>): Promise<RunningGateway> {
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    ATAI_API_URL: simulator.url,
    UPSTREAM_RETRIES: '0',
    // The injected 5xx faults must not open the circuit between the two answers compared.
    UPSTREAM_BREAKER_MIN_CALLS: '100000',
    ...env,
  });
  return startGateway({
    config,
    upstreamBaseUrl: simulator.url,
    serverApiKey: undefined,
    logger: createLogger('silent'),
  });
}

beforeAll(async () => {
  simulator = await startSimulator({ jobsPerOrganization: 12 });
  // Development settings: `extensions.upstream` is on, so the traces are compared too.
  direct = await gateway({});
  apollo = await gateway({ DIRECT_EXECUTION: 'false' });
});
afterAll(async () => {
  await direct.stop();
  await apollo.stop();
  await simulator.stop();
});

interface Answer {
  status: number;
  contentType: string | null;
  body: string;
  upstreamCalls: number;
}

async function post(
  target: RunningGateway,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const before = simulator.requests.length;
  const response = await fetch(target.url, {
    method: 'POST',
    headers: { authorization: `Bearer ${ACME_KEY}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    // Durations and the simulator's error ids differ between two runs of the same calls;
    // everything else must not.
    body: (await response.text())
      .replace(/"durationMs":\d+/g, '"durationMs":0')
      .replace(/"errorUid":"[^"]*"/g, '"errorUid":"…"'),
    upstreamCalls: simulator.requests.length - before,
  };
}

async function bothAnswers(operation: Generated, headers: Record<string, string> = {}) {
  const body = { query: operation.query, variables: operation.variables, operationName: 'Generated' };
  const answers: Answer[] = [];
  for (const target of [direct, apollo]) {
    if (operation.fault) {
      simulator.faults.set('listJobs', operation.fault);
      simulator.faults.set('getJob', operation.fault);
    }
    try {
      answers.push(await post(target, body, headers));
    } finally {
      simulator.faults.clear();
    }
  }
  return { direct: answers[0]!, apollo: answers[1]! };
}

async function directOutcomes(): Promise<{ answered: number; fellBack: number }> {
  const text = await (await fetch(direct.url.replace('/graphql', '/metrics'))).text();
  const count = (outcome: string) =>
    Number(
      text.match(
        new RegExp(`gateway_graphql_direct_operations_total\\{outcome="${outcome}"\\} (\\d+)`),
      )?.[1] ?? 0,
    );
  return { answered: count('answered'), fellBack: count('fell_back') };
}

describe('direct execution', () => {
  it(`answers ${OPERATIONS} generated operations exactly as Apollo Server does`, async () => {
    const jobIds = simulator.store.list(simulator.store.organizations[0]!, null).map((j) => j.id);
    const before = await directOutcomes();
    let compared = 0;
    for (let seed = 1; seed <= OPERATIONS; seed++) {
      // Two in three without directives: those are the shapes the direct path takes.
      const operation = generateOperation(seed, jobIds, { directiveChance: seed % 3 === 0 ? 0.15 : 0 });
      if (validate(schema, parse(operation.query)).length > 0) continue;
      const { direct: fast, apollo: reference } = await bothAnswers(operation);
      const shown = `seed ${seed}:\n${operation.query}\n${JSON.stringify(operation.variables)} ${JSON.stringify(operation.fault)}`;
      expect(fast, shown).toEqual(reference);
      compared += 1;
    }
    const after = await directOutcomes();
    expect(compared).toBeGreaterThan(OPERATIONS * 0.75);
    // Both ways were taken: answered directly, and handed to Apollo Server (errors, faults).
    expect(after.answered - before.answered).toBeGreaterThan(OPERATIONS / 3);
    expect(after.fellBack - before.fellBack).toBeGreaterThan(OPERATIONS / 10);
  });

  it('negotiates the content type as Apollo Server does', async () => {
    const operation: Generated = {
      query: 'query Generated { fineTuneJobs(limit: 2) { id __typename } __typename }',
      variables: {},
      fault: undefined,
    };
    const accepts: Record<string, string>[] = [
      {},
      { accept: '*/*' },
      { accept: 'application/json' },
      { accept: 'application/graphql-response+json, application/json;q=0.9' },
      { accept: 'application/json;q=0.5, application/graphql-response+json' },
      { accept: 'text/html' },
    ];
    const before = await directOutcomes();
    for (const headers of accepts) {
      const { direct: fast, apollo: reference } = await bothAnswers(operation, headers);
      expect(fast, JSON.stringify(headers)).toEqual(reference);
    }
    const after = await directOutcomes();
    // `text/html` accepts neither JSON type: that one is Apollo Server's 406.
    expect(after.answered - before.answered).toBe(accepts.length - 1);
  });

  it('answers a page of jobs with one upstream call and no work for Apollo Server', async () => {
    const before = await directOutcomes();
    const answer = await post(direct, {
      query: 'query Page($limit: Int) { fineTuneJobs(limit: $limit) { id status config { model } } }',
      variables: { limit: 5 },
    });
    expect(answer.status).toBe(200);
    expect(answer.upstreamCalls).toBe(1);
    expect(JSON.parse(answer.body).data.fineTuneJobs).toHaveLength(5);
    expect((await directOutcomes()).answered - before.answered).toBe(1);
  });

  it('leaves persisted queries, GET requests and mutations to Apollo Server', async () => {
    const before = await directOutcomes();
    await post(direct, {
      query: '{ fineTuneJobs(limit: 1) { id } }',
      extensions: { persistedQuery: { version: 1, sha256Hash: 'x'.repeat(64) } },
    });
    const get = await fetch(
      `${direct.url}?query=${encodeURIComponent('{ fineTuneJobs(limit: 1) { id } }')}`,
      {
        headers: { authorization: `Bearer ${ACME_KEY}`, 'apollo-require-preflight': 'true' },
      },
    );
    expect(get.status).toBe(200);
    await post(direct, { query: 'mutation { stopFineTuneJob(id: "no-such-job") { id } }' });
    expect(await directOutcomes()).toEqual(before);
  });
});
