// `npm run config:docs`: writes what is generated from the configuration schema (src/config.ts):
// the JSON Schema editors check gateway.config.yaml with, the example file (every key at its
// default), and docs/configuration.md (every key, its default and its description). A test in
// `npm test` (test/config-docs.test.ts) fails when any of them is stale.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { format, resolveConfig } from 'prettier';
import { stringify } from 'yaml';
import { z } from 'zod';
import { DEFAULT_CONFIG_FILE, gatewayConfigSchema, MOVED_VARIABLES } from '../src/config.js';

const ROOT = new URL('..', import.meta.url);
export const SCHEMA_FILE = 'gateway.config.schema.json';
export const EXAMPLE_FILE = 'gateway.config.example.yaml';
export const DOCS_FILE = 'docs/configuration.md';

/** The part of JSON Schema the schema's keys use. */
export interface JsonSchema {
  description?: string;
  default?: unknown;
  type?: string;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
}

/** The schema as editors read it: what may be written (defaults are not required). */
export function jsonSchema(): JsonSchema {
  return z.toJSONSchema(gatewayConfigSchema, { io: 'input', target: 'draft-2020-12' }) as JsonSchema;
}

const isSection = (schema: JsonSchema) => schema.type === 'object' && schema.properties !== undefined;

/** Every key with its dotted name, sections first-to-last as in the schema. */
export function keysOf(schema: JsonSchema, prefix = ''): { key: string; schema: JsonSchema }[] {
  return Object.entries(schema.properties ?? {}).flatMap(([name, child]) => [
    { key: `${prefix}${name}`, schema: child },
    ...(isSection(child) ? keysOf(child, `${prefix}${name}.`) : []),
  ]);
}

function shownValue(value: unknown): string {
  if (Array.isArray(value)) return `[${value.join(', ')}]`;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function shownType(schema: JsonSchema): string {
  if (schema.enum) return schema.enum.map((v) => `\`${String(v)}\``).join(' or ');
  if (schema.type === 'array') return `list of ${schema.items?.type ?? 'values'}s`;
  const low = schema.minimum ?? schema.exclusiveMinimum;
  const high = schema.maximum ?? schema.exclusiveMaximum;
  if (low !== undefined && high !== undefined) {
    const open = schema.exclusiveMinimum !== undefined ? ' (exclusive)' : '';
    return `${schema.type}, ${low}–${high}${open}`;
  }
  return schema.type ?? 'value';
}

/** One paragraph a line: table cells and comments stay on one line. */
const oneLine = (text: string | undefined) => (text ?? '').replace(/\s+/g, ' ').trim();

function markdown(schema: JsonSchema): string {
  const lines = [
    '# Configuration',
    '',
    '<!-- Generated from src/config.ts by `npm run config:docs`; edit the schema, not this file. -->',
    '',
    `The gateway reads \`${DEFAULT_CONFIG_FILE}\` in its working directory, or the file \`GATEWAY_CONFIG\``,
    'names (which must exist). No file is needed: every key has a default, and `npm start` runs',
    'without one. Start from [`gateway.config.example.yaml`](../gateway.config.example.yaml), every key at',
    `its default; its first line points editors (VS Code's YAML extension) at [\`${SCHEMA_FILE}\`](../${SCHEMA_FILE}),`,
    'which completes keys and checks values as you type.',
    '',
    '`${env.NAME}` in a value is replaced by the environment variable `NAME`, for secrets kept out of',
    'the file (`${env.NAME:-fallback}` when it may be unset). Unquoted, a value that is only a',
    'reference takes the type YAML gives the variable (`maxCost: ${env.MAX_COST}` is a number); quoted, it',
    'stays text. An unset variable stops the start, naming it; no value read from one is ever shown.',
    '',
    'A bad file, an unknown key or a bad value stops the start with one line naming the key and the',
    'file, and exit code 1:',
    '',
    '```text',
    'fine-tune-gateway: Invalid limits.maxCost in gateway.config.yaml (got 0): Too small: expected number to be >=1',
    'fine-tune-gateway: Unknown key limits.maxCosts in gateway.config.yaml',
    '```',
    '',
    '## Environment variables',
    '',
    'What changes from one deployment to the next stays in the environment (an empty variable',
    'counts as unset):',
    '',
    '| variable | default | what it sets |',
    '| --- | --- | --- |',
    '| `PORT` | `4000` | Port of the API (`0`: any free port). |',
    '| `METRICS_PORT` | `9464` | Port of `GET /metrics` (Prometheus), never the API port. |',
    '| `HOST` | `0.0.0.0` | Interface both ports listen on. |',
    '| `NODE_ENV` | `development` | `production` turns introspection, the explorer, field suggestions and the upstream trace off unless the file turns them on, and requires `ATAI_API_URL` or `ATAI_API_KEY`. |',
    '| `ATAI_API_URL` | unset | The fine-tune API base URL (`https://api.u1.archetypeai.app/v0.5` when only a key is set). Neither set: the built-in simulator. |',
    "| `ATAI_API_KEY` | unset | The gateway's own key, for clients that send none; never logged or shown. |",
    '| `REDIS_URL` | unset | `redis://` or `rediss://`: instances share one Redis ([fleet](fleet.md)); never shown. |',
    '| `LOG_LEVEL` | `info` | `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`. Logs are JSON, pretty on a terminal outside production. |',
    `| \`GATEWAY_CONFIG\` | \`${DEFAULT_CONFIG_FILE}\` | The configuration file. |`,
    '| `OTEL_*` | unset | OpenTelemetry traces, off without `OTEL_EXPORTER_OTLP_ENDPOINT`: [tracing](operations.md#tracing). |',
    '',
    '`npm run simulator` also reads `SIMULATOR_PORT` (`4010`) and `SIMULATOR_HOST` (`127.0.0.1`).',
    '',
  ];
  for (const [section, sectionSchema] of Object.entries(schema.properties ?? {})) {
    lines.push(`## ${section}`, '', oneLine(sectionSchema.description), '');
    lines.push('| key | default | type | what it sets |', '| --- | --- | --- | --- |');
    for (const { key, schema: keySchema } of keysOf(sectionSchema, `${section}.`)) {
      if (isSection(keySchema)) {
        lines.push(`| \`${key}\` | | section | ${oneLine(keySchema.description)} |`);
        continue;
      }
      const shown = keySchema.default === undefined ? 'unset' : `\`${shownValue(keySchema.default)}\``;
      lines.push(`| \`${key}\` | ${shown} | ${shownType(keySchema)} | ${oneLine(keySchema.description)} |`);
    }
    lines.push('');
  }
  lines.push(
    '## Variables of earlier versions',
    '',
    'Each setting used to be an environment variable. One still set stops the start with where it',
    'went (`QUERY_MAX_COST is now limits.maxCost in gateway.config.yaml`), rather than being ignored.',
    '',
    '| variable | now |',
    '| --- | --- |',
    ...Object.entries(MOVED_VARIABLES).map(
      ([variable, moved]) =>
        `| \`${variable}\` | ${typeof moved === 'string' ? `\`${moved}\`` : `removed: ${moved.removed}`} |`,
    ),
    '',
  );
  return lines.join('\n');
}

/** Comment lines of a description, wrapped for the example file. */
function comment(text: string | undefined, indent: string): string[] {
  const words = oneLine(text).split(' ');
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line !== '' && indent.length + 2 + line.length + 1 + word.length > 100) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines.map((l) => `${indent}# ${l}`);
}

/** Every section and key at its default; keys without one (decided at start) commented out. */
function example(schema: JsonSchema): string {
  const lines = [
    `# yaml-language-server: $schema=./${SCHEMA_FILE}`,
    '# The configuration of fine-tune-gateway, every key at its default (docs/configuration.md).',
    `# Copy it to ${DEFAULT_CONFIG_FILE} (or point GATEWAY_CONFIG at it) and keep what you change.`,
  ];
  const write = (properties: Record<string, JsonSchema>, indent: string) => {
    for (const [name, child] of Object.entries(properties)) {
      lines.push('', ...comment(child.description, indent));
      if (isSection(child)) {
        // An optional section (trusted documents) is shown commented out, as when unset.
        if (child.default === undefined && indent !== '') {
          lines.push(`${indent}# ${name}:`);
          for (const [key, value] of Object.entries(child.properties ?? {})) {
            const shown = value.default === undefined ? `<${value.type}>` : JSON.stringify(value.default);
            lines.push(`${indent}#   ${key}: ${shown}`);
          }
          continue;
        }
        // A section whose every key is decided at start would be empty (null) without `{}`.
        const empty = Object.values(child.properties ?? {}).every((key) => key.default === undefined);
        lines.push(`${indent}${name}:${empty ? ' {}' : ''}`);
        write(child.properties ?? {}, `${indent}  `);
      } else if (child.default === undefined) {
        lines.push(`${indent}# ${name}: ${child.type === 'boolean' ? 'true' : `<${child.type}>`}`);
      } else {
        const value = stringify(child.default, { collectionStyle: 'flow', flowCollectionPadding: false });
        lines.push(`${indent}${name}: ${value.trim()}`);
      }
    }
  };
  write(schema.properties ?? {}, '');
  return `${lines.join('\n')}\n`;
}

/** Each generated file's path (from the repository root) and content, formatted as committed. */
export async function generatedFiles(): Promise<Record<string, string>> {
  const schema = jsonSchema();
  const files: Record<string, string> = {
    [SCHEMA_FILE]: JSON.stringify(schema, null, 2),
    [EXAMPLE_FILE]: example(schema),
    [DOCS_FILE]: markdown(schema),
  };
  for (const [path, text] of Object.entries(files)) {
    const filepath = fileURLToPath(new URL(path, ROOT));
    files[path] = await format(text, { ...(await resolveConfig(filepath)), filepath });
  }
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [path, text] of Object.entries(await generatedFiles())) {
    writeFileSync(new URL(path, ROOT), text);
    console.log(`wrote ${path}`);
  }
}
