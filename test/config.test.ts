// Configuration: the file (gateway.config.yaml, or GATEWAY_CONFIG) in sections, `${env.NAME}`
// in its values, and the one line that stops the start for a bad file, key, value or variable.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, gatewayConfigSchema, loadConfig, MOVED_VARIABLES } from '../src/config.js';
import { configFrom, withKey } from './harness.js';

const API = { ATAI_API_URL: 'http://127.0.0.1:1/v0.5' };
const folder = mkdtempSync(join(tmpdir(), 'config-test-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

/** A file with this text in a folder of its own; its path. */
function file(text: string): string {
  const dir = mkdtempSync(join(folder, 'case-'));
  const path = join(dir, 'gateway.config.yaml');
  writeFileSync(path, text);
  return path;
}

/** The message `loadConfig` stops with, or undefined. */
function refusal(env: Record<string, string>, directory = folder): string | undefined {
  try {
    loadConfig(env, directory);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
}

describe('the configuration file', () => {
  it('is optional: with none in the working directory, every default applies', () => {
    const empty = mkdtempSync(join(folder, 'empty-'));
    const config = loadConfig({}, empty);
    const defaults = gatewayConfigSchema.parse({});
    expect(config).toMatchObject({
      upstreamTarget: { kind: 'simulator' },
      upstream: defaults.upstream,
      http: defaults.http,
      limits: { ...defaults.limits, maxCost: 5000, maxDepth: 8 },
      subscriptions: defaults.subscriptions,
      simulator: { paceMs: 5000, jobsPerOrganization: 24, living: true },
      security: {
        introspection: true,
        anonymousWrites: true,
        allowedHosts: ['localhost', '127.0.0.1', '::1'],
      },
      explorer: { enabled: true, page: 'sandbox' },
      telemetry: { upstreamTrace: true, tracing: false },
    });
  });

  it('is read from the working directory, or from GATEWAY_CONFIG, in sections', () => {
    const text = [
      'limits:',
      '  maxCost: 10',
      'upstream:',
      '  breaker:',
      '    minCalls: 3',
      'security:',
      '  corsOrigins: [https://app.example.com, http://localhost:3000]',
      '  allowedHosts: [Jobs.Example.com]',
      '',
    ].join('\n');
    const path = file(text);
    const named = loadConfig({ ...API, GATEWAY_CONFIG: path });
    expect(named.limits.maxCost).toBe(10);
    expect(named.limits.maxDepth).toBe(8);
    expect(named.upstream.breaker).toEqual({
      failureRate: 0.5,
      windowMs: 10_000,
      minCalls: 3,
      failuresInARow: 5,
      halfOpenMs: 10_000,
    });
    expect(named.security.corsOrigins).toEqual(['https://app.example.com', 'http://localhost:3000']);
    expect(named.security.allowedHosts).toEqual(['jobs.example.com']);
    expect(loadConfig(API, join(path, '..')).limits.maxCost).toBe(10);
  });

  it('expands ${env.NAME} in values: typed when plain, text when quoted, a fallback after :-', () => {
    const path = file(
      [
        'limits:',
        '  maxCost: ${env.MAX_COST}',
        'fleet:',
        '  redisPrefix: "${env.FLEET}:"',
        'security:',
        '  trustedDocuments:',
        '    manifest: https://cdn.example.com/m.json?token=${env.MANIFEST_TOKEN}',
        '    only: ${env.ONLY:-true}',
        '',
      ].join('\n'),
    );
    const config = loadConfig({
      ...API,
      GATEWAY_CONFIG: path,
      MAX_COST: '42',
      FLEET: '7',
      MANIFEST_TOKEN: 't0k',
    });
    expect(config.limits.maxCost).toBe(42);
    expect(config.fleet.redisPrefix).toBe('7:');
    expect(config.security.trustedDocuments).toEqual({
      source: { kind: 'url', url: 'https://cdn.example.com/m.json?token=t0k' },
      only: true,
    });
  });

  it('names an unset variable, and never shows a value that came from one', () => {
    const unset = file('security:\n  trustedDocuments:\n    manifest: ${env.MANIFEST_URL}\n');
    expect(refusal({ GATEWAY_CONFIG: unset })).toBe(
      `MANIFEST_URL is not set: security.trustedDocuments.manifest in ${unset} reads \${env.MANIFEST_URL}`,
    );
    const bad = file('fleet:\n  redisPrefix: ${env.PREFIX}\n');
    const message = refusal({ GATEWAY_CONFIG: bad, PREFIX: 'x'.repeat(101) });
    expect(message).toMatch(new RegExp(`^Invalid fleet\\.redisPrefix in ${bad}: `));
    expect(message).not.toContain('xxxx');
  });

  it('refuses an unknown key in one line naming it and the file', () => {
    const path = file('limits:\n  maxCosts: 10\n');
    expect(refusal({ GATEWAY_CONFIG: path })).toBe(`Unknown key limits.maxCosts in ${path}`);
    expect(refusal({ GATEWAY_CONFIG: file('limit:\n  maxCost: 10\n') })).toMatch(/^Unknown key limit in /);
  });

  it('refuses a bad value in one line naming the key, the file and the value', () => {
    const path = file('http:\n  headersTimeoutMs: 60000\n');
    expect(refusal({ GATEWAY_CONFIG: path })).toBe(
      `Invalid http.headersTimeoutMs in ${path} (got 60000): must not exceed http.requestTimeoutMs`,
    );
    expect(refusal({ GATEWAY_CONFIG: file('limits:\n  maxDepth: deep\n') })).toMatch(
      /^Invalid limits\.maxDepth in \S+ \(got "deep"\): /,
    );
  });

  it("refuses a key's share of subscription documents over half of all keys' bound", () => {
    const path = file('subscriptions:\n  documentBytes: 1048576\n');
    expect(refusal({ ...API, GATEWAY_CONFIG: path })).toBe(
      `Invalid subscriptions.documentBytesPerKey in ${path}: must be at most half of subscriptions.documentBytes`,
    );
    const halved = file('subscriptions:\n  documentBytes: 1048576\n  documentBytesPerKey: 524288\n');
    expect(loadConfig({ ...API, GATEWAY_CONFIG: halved }).subscriptions).toMatchObject({
      documentBytes: 1048576,
      documentBytesPerKey: 524288,
    });
  });

  it('never shows the manifest, which may carry a token', () => {
    const path = file(
      'security:\n  trustedDocuments:\n    manifest: ftp://cdn.example.com/m.json?token=abc\n',
    );
    const message = refusal({ GATEWAY_CONFIG: path });
    expect(message).toBe(
      `Invalid security.trustedDocuments.manifest in ${path}: must be a file path or an http(s) URL of the manifest`,
    );
  });

  it('refuses a file it cannot read or parse, and a GATEWAY_CONFIG that names nothing', () => {
    const missing = join(folder, 'nowhere', 'gateway.config.yaml');
    expect(refusal({ GATEWAY_CONFIG: missing })).toBe(`Cannot read GATEWAY_CONFIG=${missing} (ENOENT)`);
    expect(refusal({ GATEWAY_CONFIG: folder })).toBe(`Cannot read GATEWAY_CONFIG=${folder} (EISDIR)`);
    const broken = file('limits:\n  maxCost: [10\n');
    expect(refusal({ GATEWAY_CONFIG: broken })).toMatch(
      new RegExp(`^Cannot read ${broken}: not YAML: .* at line 3, column 1$`),
    );
    const list = file('- limits\n');
    expect(refusal({ GATEWAY_CONFIG: list })).toBe(
      `Cannot read ${list}: not a mapping of sections (upstream, http, …)`,
    );
  });

  it.each([
    ['upstream.maxConcurrency', 0],
    ['upstream.breaker.failureRate', 1.5],
    ['upstream.breaker.halfOpenMs', 31_000],
    ['limits.maxDepth', 'deep'],
    ['security.fieldSuggestions', 'maybe'],
    ['http.shutdownGraceMs', -1],
    ['security.corsOrigins', ['*']],
    ['security.corsOrigins', ['https://app.example.com/']],
    ['security.corsOrigins', 'https://app.example.com'],
    ['security.allowedHosts', ['jobs.example.com:4000']],
  ])('refuses %s: %j with a message naming it', (key, value) => {
    expect(() => configFrom(withKey(key, value), API)).toThrow(ConfigError);
    expect(() => configFrom(withKey(key, value), API)).toThrow(
      new RegExp(`^Invalid ${key.replaceAll('.', '\\.')}(\\.0)? in gateway\\.config\\.yaml \\(got `),
    );
  });
});

describe('the environment', () => {
  it('stops at a variable that became a file key, saying where it went', () => {
    expect(refusal({ QUERY_MAX_COST: '10' })).toBe(
      'QUERY_MAX_COST is now limits.maxCost in gateway.config.yaml',
    );
    expect(refusal({ QUERY_MAX_COST: '10', GATEWAY_CONFIG: '/etc/gateway.yaml' })).toBe(
      'QUERY_MAX_COST is now limits.maxCost in /etc/gateway.yaml',
    );
    expect(refusal({ LOG_FORMAT: 'json' })).toMatch(/^LOG_FORMAT is no longer a setting: /);
    // An empty variable counts as unset, as shells and .env files mean it.
    expect(refusal({ QUERY_MAX_COST: '' })).toBeUndefined();
  });

  it('has every moved variable pointing at a key of the file', () => {
    const keys = new Set<string>();
    const walk = (shape: Record<string, unknown>, prefix: string) => {
      for (const [name, schema] of Object.entries(shape)) {
        keys.add(`${prefix}${name}`);
        const inner = (schema as { def?: { innerType?: { shape?: Record<string, unknown> } } }).def
          ?.innerType;
        if (inner?.shape) walk(inner.shape, `${prefix}${name}.`);
      }
    };
    walk(gatewayConfigSchema.shape, '');
    for (const moved of Object.values(MOVED_VARIABLES))
      if (typeof moved === 'string') expect(keys).toContain(moved);
  });

  it('refuses a bad variable in one line naming it', () => {
    expect(refusal({ PORT: 'eighty' })).toMatch(/^Invalid PORT \(got "eighty"\): /);
    expect(refusal({ LOG_LEVEL: 'loud' })).toMatch(/^Invalid LOG_LEVEL \(got "loud"\): /);
    // Only the OTLP exporter is installed: another would export OTLP all the same, without a word.
    expect(refusal({ OTEL_TRACES_EXPORTER: 'zipkin' })).toMatch(
      /^Invalid OTEL_TRACES_EXPORTER \(got "zipkin"\): /,
    );
  });

  it('turns JWT authentication on with AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE together', () => {
    const idp = { AUTH_ISSUER: 'https://id.example.com', AUTH_AUDIENCE: 'gateway' };
    expect(configFrom({}, API).auth.identityProvider).toBeUndefined();
    const on = configFrom({}, { ...API, ...idp, AUTH_JWKS_URL: 'https://id.example.com/jwks' });
    expect(on.auth.identityProvider?.jwksUrl.href).toBe('https://id.example.com/jwks');
    expect(on.auth.algorithms).toEqual(['RS256', 'ES256', 'EdDSA']);
    expect(() => configFrom({}, { ...API, AUTH_JWKS_URL: 'https://id.example.com/jwks' })).toThrow(
      /needs AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE together/,
    );
    // Keys fetched in the clear could be swapped on the way; loopback is this machine.
    expect(refusal({ ...API, ...idp, AUTH_JWKS_URL: 'http://id.example.com/jwks' })).toMatch(
      /^Invalid AUTH_JWKS_URL \(got "http:\/\/id.example.com\/jwks"\): must be https/,
    );
    for (const loopback of ['http://127.0.0.1:8080/jwks', 'http://localhost/jwks', 'http://[::1]:9/jwks'])
      expect(configFrom({}, { ...API, ...idp, AUTH_JWKS_URL: loopback }).auth.identityProvider).toBeDefined();
  });

  it('refuses symmetric and unsigned algorithms, and never shows an organization key', () => {
    for (const algorithm of ['HS256', 'none'])
      expect(() => configFrom({ auth: { algorithms: [algorithm] } }, API)).toThrow(
        /^Invalid auth\.algorithms\.0/,
      );
    const path = file('auth:\n  organizations:\n    keys:\n      acme: [sk-live-secret]\n');
    const message = refusal({ ...API, GATEWAY_CONFIG: path });
    expect(message).toMatch(/^Invalid auth\.organizations\.keys\.acme in /);
    expect(message).not.toContain('sk-live-secret');
  });

  it('production turns introspection, the explorer and suggestions off unless the file turns them on', () => {
    const production = { NODE_ENV: 'production', ATAI_API_KEY: 'k' };
    expect(configFrom({}, production)).toMatchObject({
      security: { introspection: false, fieldSuggestions: false, anonymousWrites: false },
      explorer: { enabled: false },
      telemetry: { upstreamTrace: false },
      logPretty: false,
    });
    const overridden = configFrom(
      { security: { introspection: true, fieldSuggestions: true }, explorer: { enabled: true } },
      production,
    );
    expect(overridden).toMatchObject({
      security: { introspection: true, fieldSuggestions: true },
      explorer: { enabled: true },
    });
  });
});
