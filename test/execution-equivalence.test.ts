// The compiled execution (graphql-jit, src/execution/) against graphql-js's reference executor
// over many generated operations: aliases, fragments, variables, directives, __typename, enums,
// custom scalars, nulls and errors. Both run the real resolvers against the simulator, each with
// its own request context, and must produce the same serialized result.
import { execute, parse, validate, type ExecutionResult } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createContext } from '../src/context.js';
import { compiledExecution } from '../src/graphql/jit-executor.js';
import { createLogger } from '../src/observability/logging.js';
import { GatewayMetrics } from '../src/observability/metrics.js';
import { buildGatewaySchema } from '../src/graphql/schema.js';
import { startSimulator, type RunningSimulator } from '../src/simulator/server.js';
import { UpstreamHttp } from '../src/upstream/http.js';
import { generateOperation as generate, type Generated } from './generated-operations.js';
import { ACME_KEY } from './harness.js';

const schema = await buildGatewaySchema({ federation: false });
const runCompiled = compiledExecution(schema);
const OPERATIONS = 240;

let simulator: RunningSimulator;
let newContext: () => unknown;
beforeAll(async () => {
  simulator = await startSimulator({ jobsPerOrganization: 12 });
  const config = loadConfig({
    ATAI_API_URL: simulator.url,
    UPSTREAM_RETRIES: '0',
    // The injected 5xx faults must not open the circuit between the two runs compared.
    UPSTREAM_BREAKER_MIN_CALLS: '100000',
  });
  const metrics = new GatewayMetrics();
  const deps = {
    http: new UpstreamHttp({ baseUrl: simulator.url, ...config.upstreamSettings }, metrics),
    metrics,
    serverApiKey: undefined,
    logger: createLogger('silent'),
    loaderSettings: { metricsConcurrency: config.metricsConcurrency },
    jobWriteSettings: { attempts: 1, backoffLimitMs: 0 },
    traceUpstream: false,
  };
  let n = 0;
  newContext = () => createContext(deps, { authorization: `Bearer ${ACME_KEY}`, requestId: `eq-${n++}` });
});
afterAll(() => simulator.stop());

async function both(
  operation: Generated,
): Promise<{ compiled: ExecutionResult; reference: ExecutionResult }> {
  const document = parse(operation.query);
  if (operation.fault) simulator.faults.set('listJobs', operation.fault);
  if (operation.fault) simulator.faults.set('getJob', operation.fault);
  try {
    const compiled = await runCompiled({
      document,
      operationName: 'Generated',
      variables: operation.variables,
      contextValue: newContext(),
      documentKey: operation.query,
    });
    const reference = await execute({
      schema,
      document,
      operationName: 'Generated',
      variableValues: operation.variables,
      contextValue: newContext(),
    });
    return { compiled, reference };
  } finally {
    simulator.faults.clear();
  }
}

describe('compiled execution', () => {
  it(`matches graphql-js on ${OPERATIONS} generated operations`, async () => {
    const jobIds = simulator.store.list(simulator.store.organizations[0]!, null).map((j) => j.id);
    let withData = 0;
    let withErrors = 0;
    let skipped = 0;
    for (let seed = 1; seed <= OPERATIONS; seed++) {
      const operation = generate(seed, jobIds);
      // Apollo validates before executing; a generated clash (two fields, one alias) is skipped.
      if (validate(schema, parse(operation.query)).length > 0) {
        skipped += 1;
        continue;
      }
      const { compiled, reference } = await both(operation);
      expect(
        JSON.stringify(compiled),
        `seed ${seed}:\n${operation.query}\n${JSON.stringify(operation)}`,
      ).toBe(JSON.stringify(reference));
      if (reference.errors?.length) withErrors += 1;
      else withData += 1;
    }
    // Both paths are exercised: the compiled result itself, and graphql-js's exact errors.
    expect(withData).toBeGreaterThan(OPERATIONS / 3);
    expect(withErrors).toBeGreaterThan(OPERATIONS / 10);
    expect(skipped).toBeLessThan(OPERATIONS / 4);
  });

  it('is compiled once per operation and still answers each request with its own variables', async () => {
    const query = 'query Generated($limit: Int) { fineTuneJobs(limit: $limit) { id } }';
    const document = parse(query);
    for (const limit of [1, 3, 2]) {
      const result = await runCompiled({
        document,
        operationName: 'Generated',
        variables: { limit },
        contextValue: newContext(),
        documentKey: query,
      });
      expect((result.data as { fineTuneJobs: unknown[] }).fineTuneJobs).toHaveLength(limit);
    }
  });
});
