// Environment → typed, validated configuration. Every setting the gateway reads is here, with
// its default; the README's configuration table mirrors this file.
import { z } from 'zod';
import type { UpstreamSettings } from './upstream/client.js';

export const DEFAULT_API_URL = 'https://api.u1.archetypeai.app/v0.5';

const flag = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const environment = z.object({
  NODE_ENV: z.string().default('development'),
  PORT: int(0, 65535).default(4000),
  HOST: z.string().min(1).default('0.0.0.0'),
  ATAI_API_URL: z.url({ protocol: /^https?$/ }).optional(),
  ATAI_API_KEY: z.string().trim().min(1).optional(),
  UPSTREAM_TIMEOUT_MS: int(1, 300_000).default(10_000),
  UPSTREAM_RETRIES: int(0, 10).default(2),
  UPSTREAM_MAX_RETRY_AFTER_MS: int(0, 120_000).default(5_000),
  UPSTREAM_BACKOFF_LIMIT_MS: int(0, 60_000).default(2_000),
  METRICS_CONCURRENCY: int(1, 64).default(4),
  GRAPHQL_INTROSPECTION: flag.optional(),
  GRAPHQL_SANDBOX: flag.optional(),
  MAX_REQUEST_BYTES: int(1024, 100 * 1024 * 1024).default(1024 * 1024),
  CORS_ORIGINS: z.string().default('https://studio.apollographql.com'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SIMULATOR_PACE_MS: int(0, 3_600_000).default(5_000),
});

export type UpstreamTarget =
  | { kind: 'simulator'; paceMs: number }
  | { kind: 'remote'; baseUrl: string; serverApiKey: string | undefined };

export interface Config {
  production: boolean;
  port: number;
  host: string;
  upstream: UpstreamTarget;
  upstreamSettings: Omit<UpstreamSettings, 'baseUrl'>;
  /** The most metrics calls one GraphQL request has in flight at once. */
  metricsConcurrency: number;
  introspection: boolean;
  sandbox: boolean;
  corsOrigins: string[];
  maxRequestBytes: number;
  logLevel: string;
}

/** A configuration the gateway refuses to start with; the message is one line for the operator. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "not set", as shells and .env files usually intend.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ''));
  const parsed = environment.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0]);
    const shown = name === 'ATAI_API_KEY' ? '' : ` (got ${JSON.stringify(env[name])})`;
    throw new ConfigError(`Invalid ${name}${shown}: ${issue.message}`);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === 'production';

  let upstream: UpstreamTarget;
  if (e.ATAI_API_URL !== undefined || e.ATAI_API_KEY !== undefined) {
    upstream = {
      kind: 'remote',
      baseUrl: (e.ATAI_API_URL ?? DEFAULT_API_URL).replace(/\/+$/, ''),
      serverApiKey: e.ATAI_API_KEY,
    };
  } else if (production) {
    throw new ConfigError(
      'NODE_ENV=production needs ATAI_API_URL and/or ATAI_API_KEY: the built-in simulator serves demo data only',
    );
  } else {
    upstream = { kind: 'simulator', paceMs: e.SIMULATOR_PACE_MS };
  }

  return {
    production,
    port: e.PORT,
    host: e.HOST,
    upstream,
    upstreamSettings: {
      timeoutMs: e.UPSTREAM_TIMEOUT_MS,
      retryLimit: e.UPSTREAM_RETRIES,
      maxRetryAfterMs: e.UPSTREAM_MAX_RETRY_AFTER_MS,
      backoffLimitMs: e.UPSTREAM_BACKOFF_LIMIT_MS,
    },
    metricsConcurrency: e.METRICS_CONCURRENCY,
    introspection: e.GRAPHQL_INTROSPECTION ?? !production,
    sandbox: e.GRAPHQL_SANDBOX ?? !production,
    corsOrigins: e.CORS_ORIGINS.split(',')
      .map((o) => o.trim())
      .filter(Boolean),
    maxRequestBytes: e.MAX_REQUEST_BYTES,
    logLevel: e.LOG_LEVEL,
  };
}
