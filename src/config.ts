// Environment → typed, validated configuration. Every setting the gateway reads is here, with
// its default; the README's configuration table mirrors this file.
import { z } from 'zod';
import {
  SECRET_TRACING_VARIABLES,
  tracingEnvironment,
  tracingSettings,
  type TracingSettings,
} from './observability/tracing.js';
import type { PollSettings } from './subscriptions/live-jobs.js';
import type { UpstreamSettings } from './upstream/http.js';

export const DEFAULT_API_URL = 'https://api.u1.archetypeai.app/v0.5';

const flag = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** `https://app.example.com` or `http://localhost:3000`, exactly as a browser sends it. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}

/** PERSISTED_DOCUMENTS: an http(s) URL, or a file path (anything without a `scheme://`). */
function isManifestSource(value: string): boolean {
  if (!/^[a-z][a-z\d+.-]*:\/\//i.test(value)) return true;
  return URL.canParse(value) && /^https?:$/.test(new URL(value).protocol);
}

/** A host name as a `Host` header carries it, without port: `api.example.com`, `10.0.0.7`, `::1`. */
function isHostName(value: string): boolean {
  try {
    const url = new URL(`http://${value.includes(':') ? `[${value}]` : value}/`);
    return url.hostname.replace(/^\[|\]$/g, '') === value;
  } catch {
    return false;
  }
}

/** Every environment variable the gateway reads, with its default (the README table mirrors it). */
export const environment = z.object({
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
  UPSTREAM_MAX_CONCURRENCY: int(1, 10_000).default(64),
  UPSTREAM_MAX_QUEUE: int(0, 100_000).default(1_000),
  UPSTREAM_BREAKER_FAILURE_RATE: z.coerce.number().gt(0).lt(1).default(0.5),
  UPSTREAM_BREAKER_WINDOW_MS: int(100, 600_000).default(10_000),
  UPSTREAM_BREAKER_MIN_CALLS: int(1, 100_000).default(10),
  UPSTREAM_BREAKER_FAILURES_IN_A_ROW: int(1, 100_000).default(5),
  UPSTREAM_BREAKER_HALF_OPEN_MS: int(10, 30_000).default(10_000),
  GRAPHQL_INTROSPECTION: flag.optional(),
  GRAPHQL_SANDBOX: flag.optional(),
  EXPLORER: z.enum(['sandbox', 'graphiql']).default('sandbox'),
  GRAPHQL_FIELD_SUGGESTIONS: flag.optional(),
  QUERY_MAX_DEPTH: int(1, 100).default(8),
  QUERY_MAX_ALIASES: int(0, 1_000).default(15),
  QUERY_MAX_DIRECTIVES: int(0, 1_000).default(20),
  QUERY_MAX_TOKENS: int(10, 100_000).default(1_000),
  QUERY_MAX_BYTES: int(256, 10 * 1024 * 1024).default(64 * 1024),
  QUERY_MAX_COST: int(1, 10_000_000).default(5_000),
  QUERY_UNBOUNDED_LIST_SIZE: int(1, 100_000).default(100),
  QUERY_MAX_UPSTREAM_CALLS: int(1, 100_000).default(100),
  QUERY_MAX_JOBS: int(1, 10_000_000).default(5_000),
  QUERY_MAX_BATCH: int(1, 1_000).default(10),
  UPSTREAM_TRACE: flag.optional(),
  FEDERATION_SUBGRAPH: flag.default(false),
  PERSISTED_DOCUMENTS: z
    .string()
    .trim()
    .min(1)
    .refine(isManifestSource, 'must be a file path or an http(s) URL of the manifest')
    .optional(),
  PERSISTED_DOCUMENTS_ONLY: flag.default(false),
  CACHE_TTL_MS: int(0, 3_600_000).default(0),
  // redis:// or rediss://, optionally with a user and password (never shown in a message).
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  REDIS_PREFIX: z.string().min(1).max(100).default('ftg:'),
  SUBSCRIPTION_POLL_MS: int(10, 3_600_000).default(5_000),
  SUBSCRIPTION_ACTIVE_POLL_MS: int(10, 3_600_000).default(1_000),
  SUBSCRIPTIONS_PER_CONNECTION: int(1, 10_000).default(100),
  SUBSCRIPTIONS_PER_KEY: int(1, 1_000_000).default(1_000),
  SUBSCRIPTION_BACKLOG: int(1, 100_000).default(100),
  SUBSCRIPTION_DOCUMENT_BYTES: int(1024, 1024 * 1024 * 1024).default(32 * 1024 * 1024),
  SUBSCRIPTION_DOCUMENT_BYTES_PER_KEY: int(256, 512 * 1024 * 1024).default(2 * 1024 * 1024),
  SUBSCRIPTION_CONNECTIONS_PER_ADDRESS: int(1, 1_000_000).default(100),
  MAX_REQUEST_BYTES: int(1024, 100 * 1024 * 1024).default(1024 * 1024),
  HTTP_HEADERS_TIMEOUT_MS: int(100, 600_000).default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: int(100, 600_000).default(30_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: int(100, 600_000).default(5_000),
  HTTP_MAX_CONNECTIONS: int(1, 1_000_000).default(700),
  HTTP_CONNECTIONS_PER_ADDRESS: int(1, 1_000_000).default(128),
  METRICS_PORT: int(0, 65535).default(9464),
  // Matched exactly against a browser's Origin header: a path, a trailing slash or `*` would
  // match nothing, and CORS and the WebSocket origin check would fail without a word.
  CORS_ORIGINS: z
    .string()
    .default('https://studio.apollographql.com')
    .transform((value) =>
      value
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .refine(
      (origins) => origins.every(isOrigin),
      'each entry must be an origin such as https://app.example.com (scheme, host, port; no path, no trailing slash, no *)',
    ),
  ANONYMOUS_WRITES: flag.optional(),
  ALLOWED_HOSTS: z
    .string()
    .default('localhost,127.0.0.1,::1')
    .transform((value) =>
      value
        .split(',')
        .map((host) => host.trim().toLowerCase())
        .filter(Boolean),
    )
    .refine(
      (hosts) => hosts.every(isHostName),
      'each entry must be a host name or address as a Host header carries it, without scheme or port (api.example.com, 10.0.0.7, ::1)',
    ),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
  SHUTDOWN_GRACE_MS: int(0, 600_000).default(10_000),
  SIMULATOR_PACE_MS: int(0, 3_600_000).default(5_000),
});

// OpenTelemetry's standard variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, …), checked
// with the rest; the specification's, so listed in docs/operations.md#tracing, not the README's table.
const environmentWithTracing = environment.extend(tracingEnvironment);

/** The explorer a browser gets at /graphql (EXPLORER). */
export type Explorer = 'sandbox' | 'graphiql';

/** Where the trusted documents' manifest is read from (PERSISTED_DOCUMENTS). */
export type TrustedDocumentsSource = { kind: 'file'; path: string } | { kind: 'url'; url: string };

export interface TrustedDocumentsSettings {
  source: TrustedDocumentsSource;
  /** PERSISTED_DOCUMENTS_ONLY: every document not in the list is refused, unparsed. */
  only: boolean;
}

export type UpstreamTarget =
  | { kind: 'simulator'; paceMs: number }
  | { kind: 'remote'; baseUrl: string; serverApiKey: string | undefined };

/** What a query may ask for before it is rejected, unexecuted (see src/graphql/query-limits.ts). */
export interface QueryLimits {
  maxDepth: number;
  maxAliases: number;
  maxDirectives: number;
  maxTokens: number;
  /** The largest document, in bytes (whitespace and comments count), refused before parsing. */
  maxBytes: number;
  maxCost: number;
  /** The list size a cost estimate assumes for `limit: -1` (every job). */
  unboundedListSize: number;
  /** Upstream calls one operation may make at run time, whatever its estimate. */
  maxUpstreamCalls: number;
  /** Jobs one operation may return, all its fields together. */
  maxJobs: number;
  /**
   * Operations one HTTP request may batch (an array body, as Apollo Client's BatchHttpLink
   * sends); 1 turns batching off. A batch's cost, upstream calls and jobs count as one operation's.
   */
  maxBatch: number;
}

export interface HttpLimits {
  /** A request's headers must have arrived this long after its connection opened or went idle. */
  headersTimeoutMs: number;
  /** A whole request, headers and body, must have arrived within this. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Connections open at once; more are closed as they arrive. */
  maxConnections: number;
  /** Connections one client address may hold open at once, so one address cannot take them all. */
  maxConnectionsPerAddress: number;
}

export interface Config {
  production: boolean;
  port: number;
  host: string;
  upstream: UpstreamTarget;
  upstreamSettings: Omit<UpstreamSettings, 'baseUrl'>;
  /** The most metrics calls one GraphQL request has in flight at once. */
  metricsConcurrency: number;
  introspection: boolean;
  /** Whether a browser gets a landing page at /graphql, and GraphiQL at /explorer. */
  sandbox: boolean;
  /** The landing page: Apollo Sandbox (hosted by Apollo, linking to GraphiQL) or GraphiQL. */
  explorer: Explorer;
  /** "Did you mean …?" hints in validation errors, which reveal the schema bit by bit. */
  fieldSuggestions: boolean;
  queryLimits: QueryLimits;
  /** Whether responses carry `extensions.upstream`, the REST calls the operation made. */
  upstreamTrace: boolean;
  /** Serve the schema as an Apollo Federation 2 subgraph (adds `_service` and `_entities`). */
  federationSubgraph: boolean;
  /** The operations clients may send by id, and whether only those run (undefined: no list). */
  trustedDocuments: TrustedDocumentsSettings | undefined;
  /** How long a successful query answer serves identical requests (same credential); 0: off. */
  cacheTtlMs: number;
  /** REDIS_URL: instances share the answers cache, APQ and subscription polling (docs/fleet.md). */
  redis: { url: string; prefix: string } | undefined;
  /** Subscription polling: between polls, and between polls while a job is in progress. */
  subscriptionPoll: PollSettings;
  /** The most operations one WebSocket connection runs at once. */
  subscriptionsPerConnection: number;
  /** Bytes of subscription documents held at once: all keys together, and one key (its share). */
  subscriptionDocumentBytes: { all: number; perKey: number };
  /** WebSocket connections one client address may have open at once. */
  subscriptionConnectionsPerAddress: number;
  corsOrigins: string[];
  /** Limits on the API port's sockets (slow clients, idle ones, and how many at once). */
  http: HttpLimits;
  /** The port of `/metrics`, on HOST: never the API port. */
  metricsPort: number;
  /** A client without a key of its own may create, stop and cancel with the gateway's key. */
  anonymousWrites: boolean;
  /** Host names whose requests may act with the gateway's own key (DNS rebinding). */
  allowedHosts: string[];
  maxRequestBytes: number;
  logLevel: string;
  /** Human-readable logs; JSON (one object a line) otherwise. */
  logPretty: boolean;
  /** How long a stopping gateway lets in-flight operations finish before cutting them. */
  shutdownGraceMs: number;
  /** OpenTelemetry traces (OTEL_*); undefined, tracing off, when no OTLP endpoint is set. */
  tracing: TracingSettings | undefined;
}

/** A configuration the gateway refuses to start with; the message is one line for the operator. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "not set", as shells and .env files usually intend.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ''));
  const parsed = environmentWithTracing.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0]);
    // A key is never shown, nor a manifest URL (it may carry a token).
    const secret =
      ['ATAI_API_KEY', 'PERSISTED_DOCUMENTS', 'REDIS_URL'].includes(name) ||
      SECRET_TRACING_VARIABLES.has(name);
    const shown = secret ? '' : ` (got ${JSON.stringify(env[name])})`;
    throw new ConfigError(`Invalid ${name}${shown}: ${issue.message}`);
  }
  const e = parsed.data;
  if (e.HTTP_HEADERS_TIMEOUT_MS > e.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError(
      `Invalid HTTP_HEADERS_TIMEOUT_MS (got ${e.HTTP_HEADERS_TIMEOUT_MS}): must not exceed HTTP_REQUEST_TIMEOUT_MS (${e.HTTP_REQUEST_TIMEOUT_MS})`,
    );
  }
  // A share of half or more would let one caller (or the callers without a key together) hold
  // what the other keys need.
  if (e.SUBSCRIPTION_DOCUMENT_BYTES_PER_KEY > e.SUBSCRIPTION_DOCUMENT_BYTES / 2) {
    throw new ConfigError(
      `Invalid SUBSCRIPTION_DOCUMENT_BYTES_PER_KEY (got ${e.SUBSCRIPTION_DOCUMENT_BYTES_PER_KEY}): must be at most half of SUBSCRIPTION_DOCUMENT_BYTES (${e.SUBSCRIPTION_DOCUMENT_BYTES})`,
    );
  }
  const production = e.NODE_ENV === 'production';
  if (e.PERSISTED_DOCUMENTS_ONLY && e.PERSISTED_DOCUMENTS === undefined) {
    throw new ConfigError(
      'PERSISTED_DOCUMENTS_ONLY=true needs PERSISTED_DOCUMENTS: the manifest of the operations to allow',
    );
  }
  // A router's subgraph queries come from its query planner, not from a client's build: they
  // cannot be listed. Safelisting belongs to the router in front.
  if (e.PERSISTED_DOCUMENTS_ONLY && e.FEDERATION_SUBGRAPH) {
    throw new ConfigError(
      "PERSISTED_DOCUMENTS_ONLY=true cannot be used with FEDERATION_SUBGRAPH=true: a router's subgraph queries are never in a client's manifest; enforce the list at the router",
    );
  }

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
      maxConcurrency: e.UPSTREAM_MAX_CONCURRENCY,
      maxQueue: e.UPSTREAM_MAX_QUEUE,
      breakerFailureRate: e.UPSTREAM_BREAKER_FAILURE_RATE,
      breakerWindowMs: e.UPSTREAM_BREAKER_WINDOW_MS,
      breakerMinCalls: e.UPSTREAM_BREAKER_MIN_CALLS,
      breakerFailuresInARow: e.UPSTREAM_BREAKER_FAILURES_IN_A_ROW,
      breakerHalfOpenMs: e.UPSTREAM_BREAKER_HALF_OPEN_MS,
    },
    metricsConcurrency: e.METRICS_CONCURRENCY,
    introspection: e.GRAPHQL_INTROSPECTION ?? !production,
    sandbox: e.GRAPHQL_SANDBOX ?? !production,
    explorer: e.EXPLORER,
    fieldSuggestions: e.GRAPHQL_FIELD_SUGGESTIONS ?? !production,
    queryLimits: {
      maxDepth: e.QUERY_MAX_DEPTH,
      maxAliases: e.QUERY_MAX_ALIASES,
      maxDirectives: e.QUERY_MAX_DIRECTIVES,
      maxTokens: e.QUERY_MAX_TOKENS,
      maxBytes: e.QUERY_MAX_BYTES,
      maxCost: e.QUERY_MAX_COST,
      unboundedListSize: e.QUERY_UNBOUNDED_LIST_SIZE,
      maxUpstreamCalls: e.QUERY_MAX_UPSTREAM_CALLS,
      maxJobs: e.QUERY_MAX_JOBS,
      maxBatch: e.QUERY_MAX_BATCH,
    },
    upstreamTrace: e.UPSTREAM_TRACE ?? !production,
    federationSubgraph: e.FEDERATION_SUBGRAPH,
    trustedDocuments:
      e.PERSISTED_DOCUMENTS === undefined
        ? undefined
        : {
            source: /^https?:\/\//i.test(e.PERSISTED_DOCUMENTS)
              ? { kind: 'url', url: e.PERSISTED_DOCUMENTS }
              : { kind: 'file', path: e.PERSISTED_DOCUMENTS },
            only: e.PERSISTED_DOCUMENTS_ONLY,
          },
    cacheTtlMs: e.CACHE_TTL_MS,
    redis: e.REDIS_URL === undefined ? undefined : { url: e.REDIS_URL, prefix: e.REDIS_PREFIX },
    subscriptionPoll: {
      idleMs: e.SUBSCRIPTION_POLL_MS,
      activeMs: e.SUBSCRIPTION_ACTIVE_POLL_MS,
      perKey: e.SUBSCRIPTIONS_PER_KEY,
      backlog: e.SUBSCRIPTION_BACKLOG,
    },
    subscriptionConnectionsPerAddress: e.SUBSCRIPTION_CONNECTIONS_PER_ADDRESS,
    subscriptionsPerConnection: e.SUBSCRIPTIONS_PER_CONNECTION,
    subscriptionDocumentBytes: {
      all: e.SUBSCRIPTION_DOCUMENT_BYTES,
      perKey: e.SUBSCRIPTION_DOCUMENT_BYTES_PER_KEY,
    },
    corsOrigins: e.CORS_ORIGINS,
    http: {
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      maxConnections: e.HTTP_MAX_CONNECTIONS,
      maxConnectionsPerAddress: e.HTTP_CONNECTIONS_PER_ADDRESS,
    },
    metricsPort: e.METRICS_PORT,
    // The simulator's demo organization is a demo, not a key: Sandbox may change its jobs.
    anonymousWrites: e.ANONYMOUS_WRITES ?? upstream.kind === 'simulator',
    allowedHosts: e.ALLOWED_HOSTS,
    maxRequestBytes: e.MAX_REQUEST_BYTES,
    logLevel: e.LOG_LEVEL,
    // Pretty only where a person watches a terminal: pino-pretty is never loaded in production.
    logPretty:
      e.LOG_FORMAT === undefined ? !production && process.stdout.isTTY === true : e.LOG_FORMAT === 'pretty',
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    tracing: tracingSettings(e),
  };
}
