// Generated GraphQL operations over the job schema, for the equivalence tests of the compiled
// and direct executions against graphql-js: aliases, fragments, variables, directives,
// __typename, enums, custom scalars, nulls, argument errors and upstream faults. Seeded, so a
// failure names a reproducible operation.
import type { Fault } from '../src/simulator/faults.js';

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

export interface Generated {
  query: string;
  variables: Record<string, unknown>;
  fault: Fault | undefined;
}

export function generateOperation(
  seed: number,
  jobIds: string[],
  { directiveChance = 0.15 }: { directiveChance?: number } = {},
): Generated {
  const g = generator(seed);
  const variables: Record<string, unknown> = {};
  const declarations: string[] = [];
  const fragments: string[] = [];

  const directive = () => {
    if (!g.chance(directiveChance)) return '';
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
