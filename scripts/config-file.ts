// Configuration files for the runs that start gateways as processes (tests, benches, the fleet's
// test): written as an operator would write them, YAML in a folder of their own, removed when
// the process that wrote them exits.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { GatewayConfigFile } from '../src/config.js';

const folders: string[] = [];
process.on('exit', () => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

/** Writes the file's content (an object in its shape, or YAML text); its path, for GATEWAY_CONFIG. */
export function writeConfigFile(content: GatewayConfigFile | string): string {
  const folder = mkdtempSync(join(tmpdir(), 'gateway-config-'));
  folders.push(folder);
  const path = join(folder, 'gateway.config.yaml');
  writeFileSync(path, typeof content === 'string' ? content : stringify(content));
  return path;
}

/** A committed configuration file's content (examples/fleet/gateway.config.yaml). */
export function readConfigFile(url: URL): GatewayConfigFile {
  return parse(readFileSync(url, 'utf8')) as GatewayConfigFile;
}

/** `override` over `base`, key by key within sections (and their sub-sections). */
export function mergeConfig(base: GatewayConfigFile, override: GatewayConfigFile): GatewayConfigFile {
  return merged(base, override) as GatewayConfigFile;
}

function merged(base: object, override: object): object {
  const result: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const under = result[key];
    result[key] = isObject(value) && isObject(under) ? merged(under, value) : (value as unknown);
  }
  return result;
}

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
