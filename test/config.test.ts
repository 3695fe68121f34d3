// Configuration: every setting is in the README's table with the default the code uses, and a bad
// value names its variable.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, environment, loadConfig } from '../src/config.js';

function readmeTable(): Map<string, string> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.split(/^## Configuration$/m)[1]!.split(/^## /m)[0]!;
  const rows = new Map<string, string>();
  for (const match of section.matchAll(/^\|\s*`([A-Z_]+)`\s*\|\s*([^|]+?)\s*\|/gm))
    rows.set(match[1]!, match[2]!.trim());
  return rows;
}

describe('configuration', () => {
  it('the README table lists every setting, with the default the code uses', () => {
    const table = readmeTable();
    expect([...table.keys()].sort()).toEqual(Object.keys(environment.shape).sort());
    const defaults = environment.parse({}) as Record<string, unknown>;
    for (const [name, value] of Object.entries(defaults)) {
      expect(table.get(name), name).toBe(`\`${String(value)}\``);
    }
  });

  it('takes CORS_ORIGINS as a comma-separated list of origins', () => {
    const config = loadConfig({
      ATAI_API_URL: 'http://127.0.0.1:1/v0.5',
      CORS_ORIGINS: 'https://app.example.com, http://localhost:3000,',
    });
    expect(config.corsOrigins).toEqual(['https://app.example.com', 'http://localhost:3000']);
  });

  it.each([
    ['UPSTREAM_MAX_CONCURRENCY', '0'],
    ['UPSTREAM_BREAKER_FAILURE_RATE', '1.5'],
    ['UPSTREAM_BREAKER_HALF_OPEN_MS', '31000'],
    ['QUERY_MAX_DEPTH', 'deep'],
    ['GRAPHQL_FIELD_SUGGESTIONS', 'maybe'],
    ['SHUTDOWN_GRACE_MS', '-1'],
    ['LOG_FORMAT', 'xml'],
    ['CORS_ORIGINS', '*'],
    ['CORS_ORIGINS', 'https://app.example.com/'],
    ['CORS_ORIGINS', 'https://a.example.com,app.example.com'],
  ])('refuses %s=%s with a message naming it', (name, value) => {
    expect(() => loadConfig({ ATAI_API_URL: 'http://127.0.0.1:1/v0.5', [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ ATAI_API_URL: 'http://127.0.0.1:1/v0.5', [name]: value })).toThrow(
      new RegExp(`^Invalid ${name} \\(got "${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"\\)`),
    );
  });

  it("refuses a key's share of subscription documents over half of all keys' bound", () => {
    const env = { ATAI_API_URL: 'http://127.0.0.1:1/v0.5', SUBSCRIPTION_DOCUMENT_BYTES: '1048576' };
    expect(() => loadConfig(env)).toThrow(
      'Invalid SUBSCRIPTION_DOCUMENT_BYTES_PER_KEY (got 2097152): must be at most half of SUBSCRIPTION_DOCUMENT_BYTES (1048576)',
    );
    expect(
      loadConfig({ ...env, SUBSCRIPTION_DOCUMENT_BYTES_PER_KEY: '524288' }).subscriptionDocumentBytes,
    ).toEqual({ all: 1048576, perKey: 524288 });
  });

  it('production turns introspection, Sandbox and suggestions off unless set', () => {
    const production = loadConfig({ NODE_ENV: 'production', ATAI_API_KEY: 'k' });
    expect(production).toMatchObject({
      introspection: false,
      sandbox: false,
      fieldSuggestions: false,
      logPretty: false,
    });
    const overridden = loadConfig({
      NODE_ENV: 'production',
      ATAI_API_KEY: 'k',
      GRAPHQL_INTROSPECTION: 'true',
      GRAPHQL_SANDBOX: '1',
      GRAPHQL_FIELD_SUGGESTIONS: 'true',
      LOG_FORMAT: 'pretty',
    });
    expect(overridden).toMatchObject({
      introspection: true,
      sandbox: true,
      fieldSuggestions: true,
      logPretty: true,
    });
  });
});
