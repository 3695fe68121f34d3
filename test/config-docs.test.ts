// What is generated from the configuration schema (`npm run config:docs`) is committed: the JSON
// Schema editors check gateway.config.yaml with, the example file and docs/configuration.md. Like
// the codegen drift check, a schema changed without them fails here.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { gatewayConfigSchema, parseConfigText, parseSettings } from '../src/config.js';
import { EXAMPLE_FILE, generatedFiles, jsonSchema, keysOf } from '../scripts/config-docs.js';

describe('the files generated from the configuration schema', () => {
  it('are up to date (run `npm run config:docs`)', async () => {
    for (const [path, text] of Object.entries(await generatedFiles())) {
      const committed = readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
      expect(committed, `${path} is stale: run npm run config:docs`).toBe(text);
    }
  });

  it('describe every section and key', () => {
    const keys = keysOf(jsonSchema());
    expect(keys.length).toBeGreaterThan(40);
    for (const { key, schema } of keys) expect(schema.description, key).toMatch(/\w/);
  });

  it('include an example that is a valid file with every default', () => {
    const text = readFileSync(new URL(`../${EXAMPLE_FILE}`, import.meta.url), 'utf8');
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=./gateway.config.schema.json');
    const settings = parseSettings(parseConfigText(text, EXAMPLE_FILE, {}));
    expect(settings).toEqual(gatewayConfigSchema.parse({}));
  });
});
