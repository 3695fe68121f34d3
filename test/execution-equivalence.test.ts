// The compiled execution (graphql-jit, src/execution/) against graphql-js's reference executor
// over many generated operations: aliases, fragments, variables, directives, __typename, enums,
// custom scalars, nulls and errors. Both run the real resolvers against the simulator, each with
// its own request context, and must produce the same serialized result.
import { execute, parse, validate, type ExecutionResult } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createContext } from '../src/context.js';
import { compiledExecution } from '../src/execution/jit-executor.js';
import { createLogger } from '../src/logging.js';
import { GatewayMetrics } from '../src/metrics.js';
import { buildGatewaySchema } from '../src/schema.js';
import type { Fault } from '../src/simulator/faults.js';
import { startSimulator, type RunningSimulator } from '../src/simulator/server.js';
import { UpstreamHttp } from '../src/upstream/client.js';
import { ACME_KEY } from './harness.js';

const schema = buildGatewaySchema({ federation: false });
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

/** A small deterministic generator, so a failure names a reproducible operation. */
function generator(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  return { next, pick, chance: (p: number) => next() < p };
}

const JOB_SCALARS = [
  'id',
  'name',
  'uuid',
  'orgUuid',
  'status',
  'upstreamStatus',
  'isTerminal',
  'createdAt',
  'updatedAt',
  'inferenceConfigPath',
  '__typename',
];
const FAULTS: (Fault | undefined)[] = [
  undefined,
  undefined,
  undefined,
  undefined,
  { unknownStatus: 'PAUSED' },
  { status: 500 },
  { status: 404 },
  { wrongShape: true },
];

interface Generated {
  query: string;
  variables: Record<string, unknown>;
  fault: Fault | undefined;
}

function generate(seed: number, jobIds: string[]): Generated {
  const g = generator(seed);
  const variables: Record<string, unknown> = {};
  const declarations: string[] = [];
  const fragments: string[] = [];

  const directive = () => {
    if (!g.chance(0.15)) return '';
    const name = `flag${declarations.length}`;
    declarations.push(`$${name}: Boolean!`);
    variables[name] = g.chance(0.5);
    return g.chance(0.5) ? ` @include(if: $${name})` : ` @skip(if: $${name})`;
  };
  const alias = (field: string) =>
    g.chance(0.2) ? `${field}Alias${Math.floor(g.next() * 3)}: ${field}` : field;

  const datasetSelection = () => {
    const fields = ['name', 'split', 'fileIds', '__typename'].filter(() => g.chance(0.6));
    return `{ ${fields.length ? fields.join(' ') : 'name'} }`;
  };
  const configSelection = () => {
    const parts: string[] = [];
    if (g.chance(0.7)) parts.push(alias('model'));
    if (g.chance(0.6)) parts.push(`${alias('datasets')}${directive()} ${datasetSelection()}`);
    if (g.chance(0.2)) parts.push('__typename');
    return `{ ${parts.length ? parts.join(' ') : 'model'} }`;
  };
  const jobSelection = (): string => {
    const parts = JOB_SCALARS.filter(() => g.chance(0.45)).map((f) => `${alias(f)}${directive()}`);
    if (g.chance(0.5)) parts.push(`config ${configSelection()}`);
    if (g.chance(0.2)) parts.push(`... on FineTuneJob { ${g.pick(JOB_SCALARS)} }`);
    if (g.chance(0.2)) {
      const name = `Job${fragments.length}`;
      fragments.push(`fragment ${name} on FineTuneJob { ${g.pick(JOB_SCALARS)} status }`);
      parts.push(`...${name}`);
    }
    return `{ ${parts.length ? parts.join(' ') : 'id'} }`;
  };

  const rootFields: string[] = [];
  const roots = g.chance(0.25) ? 2 : 1;
  for (let i = 0; i < roots; i++) {
    const name = roots > 1 ? `r${i}: ` : '';
    if (g.chance(0.7)) {
      const args: string[] = [];
      const limit = g.pick([-1, 0, 1, 3, 5, -2]);
      const offset = g.pick([0, 0, 2, 100, -1]);
      const statuses = g.pick([null, [], ['RUNNING'], ['COMPLETED', 'FAILED'], ['UNKNOWN']]);
      if (g.chance(0.5)) {
        declarations.push(`$limit${i}: Int`, `$offset${i}: Int`, `$statuses${i}: [FineTuneJobStatus!]`);
        Object.assign(variables, {
          [`limit${i}`]: limit,
          [`offset${i}`]: offset,
          [`statuses${i}`]: statuses,
        });
        args.push(`limit: $limit${i}`, `offset: $offset${i}`, `statuses: $statuses${i}`);
      } else {
        if (g.chance(0.8)) args.push(`limit: ${limit}`);
        if (g.chance(0.5)) args.push(`offset: ${offset}`);
        if (statuses !== null) args.push(`statuses: [${statuses.join(', ')}]`);
      }
      rootFields.push(`${name}fineTuneJobs${args.length ? `(${args.join(', ')})` : ''} ${jobSelection()}`);
    } else {
      const id = g.pick([...jobIds.slice(0, 4), 'no-such-job', 'x'.repeat(65)]);
      if (g.chance(0.5)) {
        declarations.push(`$id${i}: ID!`);
        variables[`id${i}`] = id;
        rootFields.push(`${name}fineTuneJob(id: $id${i}) ${jobSelection()}`);
      } else {
        rootFields.push(`${name}fineTuneJob(id: ${JSON.stringify(id)}) ${jobSelection()}`);
      }
    }
  }
  if (g.chance(0.15)) rootFields.push('__typename');
  const head = declarations.length ? `query Generated(${declarations.join(', ')})` : 'query Generated';
  return {
    query: [`${head} { ${rootFields.join(' ')} }`, ...fragments].join('\n'),
    variables,
    fault: g.pick(FAULTS),
  };
}

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
