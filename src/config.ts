// Configuration: the file (gateway.config.yaml, or the path in GATEWAY_CONFIG) for how the gateway
// behaves, the environment for what changes per deployment (ports, the upstream and its key,
// Redis, the log level; OpenTelemetry's own OTEL_* variables, read by its SDK). One zod schema,
// `gatewayConfigSchema`, holds every file key with its default and description: the JSON Schema,
// the example file and docs/configuration.md are generated from it (`npm run config:docs`).
// This module is a leaf: features import their settings types from here, never the reverse.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { isMap, isScalar, isSeq, parseDocument, parse as parseYaml, visit, type Node } from 'yaml';
import { z } from 'zod';

export const DEFAULT_API_URL = 'https://api.u1.archetypeai.app/v0.5';
/** The file read when GATEWAY_CONFIG is unset, in the working directory; none is needed. */
export const DEFAULT_CONFIG_FILE = 'gateway.config.yaml';

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const ms = (max: number, min = 0) => int(min, max);

/** `https://app.example.com` or `http://localhost:3000`, exactly as a browser sends it. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}

/** The manifest: an http(s) URL, or a file path (anything without a `scheme://`). */
function isManifestSource(value: string): boolean {
  if (!/^[a-z][a-z\d+.-]*:\/\//i.test(value)) return true;
  return URL.canParse(value) && /^https?:$/.test(new URL(value).protocol);
}

/** A host name as a `Host` header carries it, without port: `api.example.com`, `10.0.0.7`, `::1`. */
function isHostName(value: string): boolean {
  try {
    const url = new URL(`http://${value.includes(':') ? `[${value}]` : value}/`);
    return url.hostname.replace(/^\[|\]$/g, '') === value.toLowerCase();
  } catch {
    return false;
  }
}

const ON_OUTSIDE_PRODUCTION = 'Unset: on, off in production (NODE_ENV=production).';

const upstream = z
  .strictObject({
    timeoutMs: ms(300_000, 1)
      .default(10_000)
      .describe(
        'Per attempt, from sending it (a concurrency slot taken) to the end of the response body; then UPSTREAM_TIMEOUT.',
      ),
    retries: int(0, 10)
      .default(2)
      .describe(
        'Retries of a read after 429, 502, 503, 504 or a dropped connection, and of a create, stop or cancel whose answer was lost; none while the last (this + 1) upstream attempts, of any calls, all failed.',
      ),
    maxRetryAfterMs: ms(120_000)
      .default(5_000)
      .describe('The longest `Retry-After` the gateway waits for; a longer one is reported at once.'),
    backoffLimitMs: ms(60_000)
      .default(2_000)
      .describe('Upper bound of the exponential backoff between retries.'),
    maxConcurrency: int(1, 10_000)
      .default(64)
      .describe('Upstream requests in flight at once, across all clients.'),
    maxQueue: int(0, 100_000)
      .default(1_000)
      .describe('Calls waiting for a free slot; past this a call fails at once with UPSTREAM_UNAVAILABLE.'),
    breaker: z
      .strictObject({
        failureRate: z
          .number()
          .gt(0)
          .lt(1)
          .default(0.5)
          .describe(
            'Share of failed attempts (5xx, timeout, unreachable; never 4xx; retries count) in the window that opens the circuit.',
          ),
        windowMs: ms(600_000, 100)
          .default(10_000)
          .describe('The sliding window the failure rate is measured over.'),
        minCalls: int(1, 100_000)
          .default(10)
          .describe('The fewest attempts in the window before the circuit may open.'),
        failuresInARow: int(1, 100_000)
          .default(5)
          .describe(
            'Failed attempts in a row, across all calls, that open the circuit whatever the window holds (a healthy minute before a failure does not keep it shut); any success ends the run.',
          ),
        halfOpenMs: ms(30_000, 10)
          .default(10_000)
          .describe('How long an open circuit fails fast before one call probes the upstream.'),
      })
      .prefault({})
      .describe('The circuit breaker: while open, calls fail at once with UPSTREAM_UNAVAILABLE.'),
  })
  .prefault({})
  .describe(
    'Calls to the fine-tune API. Where it is and its key are environment variables (ATAI_API_URL, ATAI_API_KEY).',
  );

const http = z
  .strictObject({
    headersTimeoutMs: ms(600_000, 100)
      .default(10_000)
      .describe(
        "A request's headers must arrive within this (slowloris, or a socket that sends nothing); then the socket is closed.",
      ),
    requestTimeoutMs: ms(600_000, 100)
      .default(30_000)
      .describe(
        'A whole request, headers and body, must arrive within this (a body sent a byte at a time); at least `headersTimeoutMs`.',
      ),
    keepAliveTimeoutMs: ms(600_000, 100)
      .default(5_000)
      .describe('An idle keep-alive connection is closed after this.'),
    maxConnections: int(1, 1_000_000)
      .default(700)
      .describe(
        'Connections open at once on the API port; more are closed as they arrive (keep it under the file-descriptor limit, less upstream sockets).',
      ),
    maxConnectionsPerAddress: int(1, 1_000_000)
      .default(128)
      .describe(
        'Connections one client address may hold; more are closed as they arrive, so one client cannot fill `maxConnections` (raise it behind a balancer).',
      ),
    maxRequestBytes: int(1024, 100 * 1024 * 1024)
      .default(1024 * 1024)
      .describe('Largest request body (and WebSocket message); larger is refused with 413.'),
    responseCacheTtlMs: ms(3_600_000)
      .default(0)
      .describe(
        'Milliseconds a successful query answer also serves identical requests with the same credential (0: off); emptied by any write.',
      ),
    shutdownGraceMs: ms(600_000)
      .default(10_000)
      .describe(
        'After SIGTERM/SIGINT, how long in-flight operations may finish before their connections are cut.',
      ),
  })
  .prefault({})
  .refine((h) => h.headersTimeoutMs <= h.requestTimeoutMs, {
    path: ['headersTimeoutMs'],
    message: 'must not exceed http.requestTimeoutMs',
  })
  .describe('The API port: timeouts, connections, body size, the response cache, the shutdown.');

const limits = z
  .strictObject({
    maxDepth: int(1, 100).default(8).describe('Deepest field nesting.'),
    maxAliases: int(0, 1_000).default(15).describe('Aliases per operation.'),
    maxDirectives: int(0, 1_000).default(20).describe('Directives per operation.'),
    maxTokens: int(10, 100_000).default(1_000).describe('Tokens in the document (checked while parsing).'),
    maxBytes: int(256, 10 * 1024 * 1024)
      .default(64 * 1024)
      .describe(
        'Largest query document in bytes, whitespace and comments included; refused before parsing, over HTTP and WebSocket.',
      ),
    maxCost: int(1, 10_000_000)
      .default(5_000)
      .describe('Estimated cost (docs/security.md); `limit: -1` is priced as 100 jobs.'),
    maxUpstreamCalls: int(1, 100_000)
      .default(100)
      .describe(
        "Upstream calls one operation may make at run time (each job's `metrics` is one); past it, QUERY_LIMIT_EXCEEDED and nothing more is sent.",
      ),
    maxJobs: int(1, 10_000_000)
      .default(5_000)
      .describe(
        'Jobs one operation may return, all its fields and aliases together; past it, QUERY_LIMIT_EXCEEDED.',
      ),
    maxBatch: int(1, 1_000)
      .default(10)
      .describe(
        'Operations one POST may batch (an array, as `BatchHttpLink` sends); their costs, calls and jobs count together; 1: off.',
      ),
  })
  .prefault({})
  .describe('What one operation may ask for (QUERY_LIMIT_EXCEEDED past any); see docs/security.md.');

const subscriptions = z
  .strictObject({
    pollMs: ms(3_600_000, 10)
      .default(5_000)
      .describe(
        'Milliseconds between polls of a watched job, its metrics or the job list (docs/subscriptions.md).',
      ),
    activePollMs: ms(3_600_000, 10)
      .default(1_000)
      .describe('The same while a job is STARTING, RUNNING or FINALIZING.'),
    perConnection: int(1, 10_000)
      .default(100)
      .describe('Operations one WebSocket connection may run at once; more are refused with BAD_REQUEST.'),
    perKey: int(1, 1_000_000)
      .default(1_000)
      .describe(
        'Subscriptions one key may have open at once, across the gateway; more are SUBSCRIPTION_LIMIT_EXCEEDED.',
      ),
    backlog: int(1, 100_000)
      .default(100)
      .describe(
        'Events a subscriber may fall behind by (a slow socket) before its subscription ends with SUBSCRIPTION_LIMIT_EXCEEDED.',
      ),
    documentBytes: int(1024, 1024 * 1024 * 1024)
      .default(32 * 1024 * 1024)
      .describe(
        'Bytes of documents the running subscriptions hold, all keys together; one more is SUBSCRIPTION_LIMIT_EXCEEDED (`documentBytes`).',
      ),
    documentBytesPerKey: int(256, 512 * 1024 * 1024)
      .default(2 * 1024 * 1024)
      .describe(
        "Bytes of documents one key's subscriptions may hold (callers without a key of their own share the gateway's), at most half of `documentBytes`, so no caller can take another's; one more is SUBSCRIPTION_LIMIT_EXCEEDED (`documentBytesPerKey`).",
      ),
    connectionsPerAddress: int(1, 1_000_000)
      .default(100)
      .describe(
        'WebSocket connections one client address may have open at once; one more is refused at the upgrade (429).',
      ),
  })
  .prefault({})
  // A share of half or more would let one caller (or the callers without a key together) hold
  // what the other keys need.
  .refine((s) => s.documentBytesPerKey <= s.documentBytes / 2, {
    path: ['documentBytesPerKey'],
    message: 'must be at most half of subscriptions.documentBytes',
  })
  .describe('Subscriptions over WebSocket: polling the upstream, and what each client may hold.');

const fleet = z
  .strictObject({
    redisPrefix: z
      .string()
      .min(1)
      .max(100)
      .default('ftg:')
      .describe(
        'Prefix of every Redis key and channel the gateway uses, so several fleets can share one Redis (a cluster has one database).',
      ),
  })
  .prefault({})
  .describe(
    'Instances sharing one Redis (REDIS_URL, an environment variable): the answers cache, APQ and subscription polling (docs/fleet.md).',
  );

const explorer = z
  .strictObject({
    enabled: z
      .boolean()
      .optional()
      .describe(
        `A landing page at /graphql in a browser, and GraphiQL at /explorer. ${ON_OUTSIDE_PRODUCTION}`,
      ),
    page: z
      .enum(['sandbox', 'graphiql'])
      .default('sandbox')
      .describe(
        "The landing page: `sandbox` (Apollo's, needs the internet; links to GraphiQL) or `graphiql` (served by the gateway, works offline).",
      ),
  })
  .prefault({})
  .describe('What a browser gets at /graphql.');

const security = z
  .strictObject({
    introspection: z.boolean().optional().describe(`Schema introspection. ${ON_OUTSIDE_PRODUCTION}`),
    fieldSuggestions: z
      .boolean()
      .optional()
      .describe(
        `"Did you mean …" hints in validation errors, which reveal the schema. ${ON_OUTSIDE_PRODUCTION}`,
      ),
    anonymousWrites: z
      .boolean()
      .optional()
      .describe(
        "A client without a key of its own may create, stop and cancel with the gateway's ATAI_API_KEY; off, anonymous access only reads. Unset: on with the built-in simulator, else off.",
      ),
    allowedHosts: z
      .array(
        z
          .string()
          .refine(
            isHostName,
            'must be a host name or address as a Host header carries it, without scheme or port (api.example.com, 10.0.0.7, ::1)',
          ),
      )
      .default(['localhost', '127.0.0.1', '::1'])
      .describe(
        "Host names (as in the `Host` header, no port) whose requests may act with the gateway's own key; others must bring a key (DNS rebinding).",
      ),
    // Matched exactly against a browser's Origin header: a path, a trailing slash or `*` would
    // match nothing, and CORS and the WebSocket origin check would fail without a word.
    corsOrigins: z
      .array(
        z
          .string()
          .refine(
            isOrigin,
            'must be an origin such as https://app.example.com (scheme, host, port; no path, no trailing slash, no *)',
          ),
      )
      .default(['https://studio.apollographql.com'])
      .describe(
        'Origins allowed by CORS and on WebSocket, each as a browser sends it (`https://app.example.com`: no path, no `*`).',
      ),
    trustedDocuments: z
      .strictObject({
        manifest: z
          .string()
          .min(1)
          .refine(isManifestSource, 'must be a file path or an http(s) URL of the manifest')
          .describe(
            "A file path or http(s) URL of an operation manifest (Apollo's or the codegen client preset's); never shown, it may carry a token (use `${env.NAME}`).",
          ),
        only: z
          .boolean()
          .default(false)
          .describe(
            "Only the manifest's operations run; any other document is refused unparsed, PERSISTED_QUERY_NOT_IN_LIST (introspection where on).",
          ),
      })
      .optional()
      .describe(
        'Trusted documents (docs/operations.md); SIGHUP reads the manifest again. Unset: any document runs.',
      ),
  })
  .prefault({})
  .describe(
    'Who may do what: anonymous access, host names, origins, the schema shown, the operations allowed.',
  );

const mcp = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        "The Model Context Protocol at /mcp on the API port: AI assistants call the tools with the caller's own `Authorization`, through the same pipeline and rights as /graphql.",
      ),
    operations: z
      .string()
      .min(1)
      .optional()
      .describe(
        "A folder of `.graphql` operations, one tool each (the file's name is the tool's). Unset: the gateway's own `mcp-tools/` (list_jobs, get_job, job_metrics_summary, create_job, stop_job, cancel_job).",
      ),
    mutations: z
      .boolean()
      .default(false)
      .describe(
        'Offer the mutation tools (create_job, stop_job, cancel_job, and any mutation of the operations); off, assistants only read.',
      ),
    freeFormTools: z
      .boolean()
      .optional()
      .describe(
        `describe_schema, validate_operation and execute_operation, which take any GraphQL (a mutation only with \`mutations\`). ${ON_OUTSIDE_PRODUCTION}`,
      ),
    trustedDocumentTools: z
      .boolean()
      .default(false)
      .describe(
        "With security.trustedDocuments: each named query of the list is a tool too (snake_case of its operation's name), mutations with `mutations`.",
      ),
  })
  .prefault({})
  .describe('AI assistants as clients (docs/agents.md).');

const federation = z
  .strictObject({
    subgraph: z
      .boolean()
      .default(false)
      .describe(
        'Serve the schema as an Apollo Federation 2 subgraph (adds `_service`, `_entities`; docs/federation.md).',
      ),
  })
  .prefault({})
  .describe('Running behind a federation router.');

const telemetry = z
  .strictObject({
    upstreamTrace: z
      .boolean()
      .optional()
      .describe(
        `\`extensions.upstream\` in responses: the REST calls of the operation (docs/operations.md). ${ON_OUTSIDE_PRODUCTION}`,
      ),
  })
  .prefault({})
  .describe(
    'What the gateway tells about its work. Logs: LOG_LEVEL; metrics: METRICS_PORT; traces: the standard OTEL_* variables (docs/operations.md#tracing).',
  );

const simulator = z
  .strictObject({
    paceMs: ms(3_600_000)
      .default(5_000)
      .describe('Milliseconds between job life-cycle steps; 0: jobs move only when a test steps them.'),
    jobsPerOrganization: int(0, 1_000_000).default(24).describe('Jobs seeded per demo organization.'),
    living: z
      .boolean()
      .default(true)
      .describe('New jobs keep registering and finished ones age out, so there is always something running.'),
  })
  .prefault({})
  .describe(
    'The built-in simulator (with no ATAI_API_URL or ATAI_API_KEY) and `npm run simulator`, which listens on SIMULATOR_PORT (4010) and SIMULATOR_HOST (127.0.0.1).',
  );

/** Signing algorithms an identity provider's JWKS can hold: asymmetric only (never `none`, never HS*). */
export const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;

const auth = z
  .strictObject({
    algorithms: z
      .array(z.enum(JWT_ALGORITHMS))
      .min(1)
      .default(['RS256', 'ES256', 'EdDSA'])
      .describe('Signing algorithms a token may use (asymmetric only: `none` and HS* are never accepted).'),
    clockToleranceSeconds: int(0, 300)
      .default(30)
      .describe("Clock skew allowed on a token's `exp`, `nbf` and `iat`."),
    keyPassThrough: z
      .boolean()
      .default(true)
      .describe(
        'A bearer value that is not a JWT is an Archetype AI API key, as without JWT authentication; off, only tokens are accepted.',
      ),
    scopesClaim: z
      .string()
      .min(1)
      .optional()
      .describe(
        "The claim carrying a token's scopes (a space-separated string or a list). Unset: `scope`, else `scp`.",
      ),
    requiredScopes: z
      .record(
        z.string().regex(/^[A-Za-z_]\w*\.[A-Za-z_]\w*$/, 'must be `Type.field`'),
        z.array(z.array(z.string().min(1)).min(1)).min(1),
      )
      .default({})
      .describe(
        'Fields that need scopes besides the schema\'s `@requiresScopes`: `Type.field` → `[[a, b], [c]]` (a and b, or c), e.g. `Query.fineTuneJobs: [["jobs:read"]]`.',
      ),
    organizations: z
      .strictObject({
        claim: z
          .string()
          .min(1)
          .default('org')
          .describe('The claim naming the organization (a string, or a list such as groups).'),
        keys: z
          .record(z.string().min(1), z.string().trim().min(1))
          .refine((keys) => Object.keys(keys).length > 0, 'must map at least one claim value to a key')
          .describe(
            'Claim value → the API key its people act with; write each as `${env.NAME}`, never the key itself.',
          ),
      })
      .optional()
      .describe(
        "Several organizations. Unset: every valid token acts with the gateway's ATAI_API_KEY; set: a token whose claim has no mapping is UNAUTHENTICATED.",
      ),
  })
  .prefault({})
  .describe(
    'JWT authentication (docs/security.md#jwt-authentication), on when AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE are set.',
  );

const rateLimits = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe('Off: no caller is limited (a gateway behind a router that limits).'),
    operationsPerMinute: int(1, 1_000_000)
      .default(600)
      .describe(
        "Operations one caller (the token's subject, else the key) may send a minute (introspection is free); 10 a second, more than any person at a keyboard sends.",
      ),
    upstreamCallsPerMinute: int(1, 10_000_000)
      .default(3_000)
      .describe(
        "Upstream calls (attempts, retries included) one caller's operations may spend a minute; counted after each operation ran, an operation runs while any are left.",
      ),
  })
  .prefault({})
  .describe(
    'Fair use per person (docs/security.md#rate-limits): past a limit, RATE_LIMITED with `retryAfter`, and no upstream call; shared by the fleet with REDIS_URL.',
  );

/** The configuration file: every key, its default and what it sets. */
export const gatewayConfigSchema = z
  .strictObject({
    upstream,
    http,
    limits,
    subscriptions,
    fleet,
    explorer,
    security,
    auth,
    rateLimits,
    mcp,
    federation,
    telemetry,
    simulator,
  })
  .describe('fine-tune-gateway configuration (gateway.config.yaml)');

/** The file's content as written: any key may be left out. */
export type GatewayConfigFile = z.input<typeof gatewayConfigSchema>;
/** The file's content with every default filled in. */
export type GatewaySettings = z.output<typeof gatewayConfigSchema>;

/** The settings of the upstream client (src/upstream/http.ts). */
export type UpstreamSettings = GatewaySettings['upstream'];
/** Limits on the API port's sockets and requests (src/http/app.ts). */
export type HttpLimits = GatewaySettings['http'];
/** What a query may ask for before or while it runs (src/limits/query-limits.ts). */
export type QueryLimits = GatewaySettings['limits'];
/** Subscription polling and what each client may hold (src/subscriptions/). */
export type PollSettings = GatewaySettings['subscriptions'];
/** JWT authentication's settings from the file (src/auth/). */
export type AuthSettings = GatewaySettings['auth'];
/** Fair use per caller (src/graphql/plugins/rate-limits.ts). */
export type RateLimitSettings = GatewaySettings['rateLimits'];
/** AI assistants at /mcp (src/mcp/), decided. */
export type McpSettings = Decided<GatewaySettings['mcp'], 'freeFormTools'>;
/** The explorer a browser gets at /graphql. */
export type Explorer = GatewaySettings['explorer']['page'];

/** The environment variables the gateway reads: what changes per deployment. */
const environment = z.object({
  NODE_ENV: z.string().default('development'),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  HOST: z.string().min(1).default('0.0.0.0'),
  ATAI_API_URL: z.url({ protocol: /^https?$/ }).optional(),
  ATAI_API_KEY: z.string().trim().min(1).optional(),
  // redis:// or rediss://, optionally with a user and password (never shown in a message).
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  GATEWAY_CONFIG: z.string().optional(),
  // JWT authentication: the identity provider's keys, and what its tokens must say.
  AUTH_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
  AUTH_ISSUER: z.string().min(1).optional(),
  AUTH_AUDIENCE: z.string().min(1).optional(),
  // OpenTelemetry's SDK reads its own variables; these decide whether it is loaded at all.
  OTEL_SDK_DISABLED: z.string().optional(),
  // Only the OTLP exporter is installed: another name would still export OTLP, silently.
  OTEL_TRACES_EXPORTER: z
    .enum(['otlp', 'none'], { error: 'only otlp (OTLP over HTTP, JSON bodies) or none is supported' })
    .optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  // Only the OTLP/HTTP JSON exporter is installed; the SDK would send JSON to a gRPC port.
  OTEL_EXPORTER_OTLP_PROTOCOL: z
    .enum(['http/json'], { error: 'only http/json is supported (OTLP over HTTP, JSON bodies)' })
    .optional(),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: z
    .enum(['http/json'], { error: 'only http/json is supported (OTLP over HTTP, JSON bodies)' })
    .optional(),
});

/**
 * Variables earlier versions read, now keys of the file (or gone): setting one stops the start
 * with where it went, rather than being ignored; `removed`: no longer a setting, and why.
 */
export const MOVED_VARIABLES: Readonly<Record<string, string | { removed: string }>> = {
  UPSTREAM_TIMEOUT_MS: 'upstream.timeoutMs',
  UPSTREAM_RETRIES: 'upstream.retries',
  UPSTREAM_MAX_RETRY_AFTER_MS: 'upstream.maxRetryAfterMs',
  UPSTREAM_BACKOFF_LIMIT_MS: 'upstream.backoffLimitMs',
  UPSTREAM_MAX_CONCURRENCY: 'upstream.maxConcurrency',
  UPSTREAM_MAX_QUEUE: 'upstream.maxQueue',
  UPSTREAM_BREAKER_FAILURE_RATE: 'upstream.breaker.failureRate',
  UPSTREAM_BREAKER_WINDOW_MS: 'upstream.breaker.windowMs',
  UPSTREAM_BREAKER_MIN_CALLS: 'upstream.breaker.minCalls',
  UPSTREAM_BREAKER_HALF_OPEN_MS: 'upstream.breaker.halfOpenMs',
  UPSTREAM_BREAKER_FAILURES_IN_A_ROW: 'upstream.breaker.failuresInARow',
  HTTP_HEADERS_TIMEOUT_MS: 'http.headersTimeoutMs',
  HTTP_REQUEST_TIMEOUT_MS: 'http.requestTimeoutMs',
  HTTP_KEEP_ALIVE_TIMEOUT_MS: 'http.keepAliveTimeoutMs',
  HTTP_MAX_CONNECTIONS: 'http.maxConnections',
  HTTP_CONNECTIONS_PER_ADDRESS: 'http.maxConnectionsPerAddress',
  MAX_REQUEST_BYTES: 'http.maxRequestBytes',
  CACHE_TTL_MS: 'http.responseCacheTtlMs',
  SHUTDOWN_GRACE_MS: 'http.shutdownGraceMs',
  QUERY_MAX_DEPTH: 'limits.maxDepth',
  QUERY_MAX_ALIASES: 'limits.maxAliases',
  QUERY_MAX_DIRECTIVES: 'limits.maxDirectives',
  QUERY_MAX_TOKENS: 'limits.maxTokens',
  QUERY_MAX_BYTES: 'limits.maxBytes',
  QUERY_MAX_COST: 'limits.maxCost',
  QUERY_MAX_UPSTREAM_CALLS: 'limits.maxUpstreamCalls',
  QUERY_MAX_JOBS: 'limits.maxJobs',
  QUERY_MAX_BATCH: 'limits.maxBatch',
  SUBSCRIPTION_POLL_MS: 'subscriptions.pollMs',
  SUBSCRIPTION_ACTIVE_POLL_MS: 'subscriptions.activePollMs',
  SUBSCRIPTIONS_PER_CONNECTION: 'subscriptions.perConnection',
  SUBSCRIPTIONS_PER_KEY: 'subscriptions.perKey',
  SUBSCRIPTION_BACKLOG: 'subscriptions.backlog',
  SUBSCRIPTION_DOCUMENT_BYTES: 'subscriptions.documentBytes',
  SUBSCRIPTION_DOCUMENT_BYTES_PER_KEY: 'subscriptions.documentBytesPerKey',
  SUBSCRIPTION_CONNECTIONS_PER_ADDRESS: 'subscriptions.connectionsPerAddress',
  REDIS_PREFIX: 'fleet.redisPrefix',
  GRAPHQL_SANDBOX: 'explorer.enabled',
  EXPLORER: 'explorer.page',
  GRAPHQL_INTROSPECTION: 'security.introspection',
  GRAPHQL_FIELD_SUGGESTIONS: 'security.fieldSuggestions',
  ANONYMOUS_WRITES: 'security.anonymousWrites',
  ALLOWED_HOSTS: 'security.allowedHosts',
  CORS_ORIGINS: 'security.corsOrigins',
  PERSISTED_DOCUMENTS: 'security.trustedDocuments.manifest',
  PERSISTED_DOCUMENTS_ONLY: 'security.trustedDocuments.only',
  FEDERATION_SUBGRAPH: 'federation.subgraph',
  UPSTREAM_TRACE: 'telemetry.upstreamTrace',
  SIMULATOR_PACE_MS: 'simulator.paceMs',
  SIMULATOR_JOBS: 'simulator.jobsPerOrganization',
  SIMULATOR_LIVING: 'simulator.living',
  METRICS_CONCURRENCY: {
    removed:
      'upstream.maxConcurrency bounds the upstream calls in flight; one request keeps at most 4 metrics calls',
  },
  QUERY_UNBOUNDED_LIST_SIZE: {
    removed: 'limits.maxCost is the cost setting; `limit: -1` is priced as 100 jobs',
  },
  LOG_FORMAT: { removed: 'logs are JSON unless a person watches a terminal outside production' },
};

/** A file key whose value is never repeated in a message: a manifest URL may carry a token. */
const SECRET_KEYS = new Set(['security.trustedDocuments.manifest']);
/** Keys under which every value is a secret (an organization's API key). */
const SECRET_SECTIONS = ['auth.organizations.keys.'];

/** Where the upstream is: the built-in simulator, or a real API (with the gateway's key, if any). */
export type UpstreamTarget =
  { kind: 'simulator' } | { kind: 'remote'; baseUrl: string; serverApiKey: string | undefined };

/** Where the trusted documents' manifest is read from. */
export type TrustedDocumentsSource = { kind: 'file'; path: string } | { kind: 'url'; url: string };

export interface TrustedDocumentsSettings {
  source: TrustedDocumentsSource;
  /** Every document not in the list is refused, unparsed. */
  only: boolean;
}

/** A section whose production-dependent keys are decided. */
type Decided<T, K extends keyof T> = Omit<T, K> & { [P in K]-?: Exclude<T[P], undefined> };

/** Everything the gateway runs with: the file's settings, decided, and the environment's. */
/** Where the identity provider's keys are, and what its tokens must say (AUTH_* variables). */
export interface IdentityProvider {
  jwksUrl: URL;
  issuer: string;
  audience: string;
}

export interface Config extends Omit<
  GatewaySettings,
  'explorer' | 'security' | 'telemetry' | 'auth' | 'mcp'
> {
  production: boolean;
  port: number;
  host: string;
  /** The port of `/metrics`, on `host`: never the API port. */
  metricsPort: number;
  logLevel: string;
  /** Human-readable logs (a person at a terminal, outside production); JSON otherwise. */
  logPretty: boolean;
  upstreamTarget: UpstreamTarget;
  explorer: Decided<GatewaySettings['explorer'], 'enabled'>;
  mcp: McpSettings;
  security: Omit<
    Decided<GatewaySettings['security'], 'introspection' | 'fieldSuggestions' | 'anonymousWrites'>,
    'trustedDocuments'
  > & {
    /** The operations clients may send by id, and whether only those run (undefined: no list). */
    trustedDocuments: TrustedDocumentsSettings | undefined;
  };
  telemetry: Decided<GatewaySettings['telemetry'], 'upstreamTrace'> & {
    /** OpenTelemetry traces, configured by the SDK from OTEL_*; off without an OTLP endpoint. */
    tracing: boolean;
  };
  /** JWT authentication: off (identityProvider undefined) unless the AUTH_* variables are set. */
  auth: AuthSettings & { identityProvider: IdentityProvider | undefined };
  /** REDIS_URL: instances share the answers cache, APQ and subscription polling (docs/fleet.md). */
  redis: { url: string; prefix: string } | undefined;
}

/** A configuration the gateway refuses to start with; the message is one line for the operator. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** The file read, or none. `name` is how messages call it: the path as the operator gave it. */
export interface ConfigSource {
  name: string;
  /** The file's content, parsed (YAML), `${env.NAME}` expanded. */
  content: unknown;
  /** Dotted keys whose value came from the environment: never repeated in a message. */
  expanded: ReadonlySet<string>;
}

/** An empty variable means "not set", as shells and .env files usually intend. */
function present(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter(
      (entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== '',
    ),
  );
}

function dotted(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

const REFERENCE = /\$\{env\.([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Parses the YAML and replaces `${env.NAME}` (or `${env.NAME:-fallback}`) in its values. A plain
 * (unquoted) value that is only a reference takes the variable's type as YAML reads it
 * (`maxCost: ${env.MAX_COST}` is a number); quoted, it stays text.
 */
export function parseConfigText(text: string, name: string, env: NodeJS.ProcessEnv): ConfigSource {
  const document = parseDocument(text, { uniqueKeys: true });
  const error = document.errors[0];
  if (error !== undefined) {
    // The first line says what and where ("… at line 3, column 1:"); the rest quotes the file.
    throw new ConfigError(
      `Cannot read ${name}: not YAML: ${error.message.split('\n')[0]!.replace(/:$/, '')}`,
    );
  }
  const set = present(env);
  const expanded = new Set<string>();
  visit(document, {
    Scalar(key, node, path) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('${env.')) return;
      const keyPath = keysOf([...path, node]);
      const whole = new RegExp(`^${REFERENCE.source}$`).test(node.value);
      const value = node.value.replace(
        REFERENCE,
        (_match, variable: string, fallback: string | undefined) => {
          const found = set[variable] ?? fallback;
          if (found === undefined) {
            throw new ConfigError(`${variable} is not set: ${keyPath} in ${name} reads \${env.${variable}}`);
          }
          return found;
        },
      );
      expanded.add(keyPath);
      if (whole && node.type === 'PLAIN') {
        const typed: unknown = parseYaml(value);
        node.value = typed !== null && typeof typed !== 'object' ? typed : value;
      } else {
        node.value = value;
      }
    },
  });
  return { name, content: document.toJS() ?? {}, expanded };
}

/** The dotted key of a scalar, from the nodes above it. */
function keysOf(path: readonly unknown[]): string {
  const keys: string[] = [];
  for (const [i, node] of path.entries()) {
    const child = path[i + 1];
    if (isMap(node) && child !== undefined) {
      const pair = node.items.find((item) => item === child);
      if (pair && isScalar(pair.key)) keys.push(String(pair.key.value));
    } else if (isSeq(node) && child !== undefined) {
      keys.push(String(node.items.indexOf(child as Node)));
    }
  }
  return keys.join('.');
}

/** The file GATEWAY_CONFIG names (it must exist), or gateway.config.yaml in `directory` if there is one. */
export function readConfigFile(
  env: NodeJS.ProcessEnv = process.env,
  directory = process.cwd(),
): ConfigSource | undefined {
  const named = present(env).GATEWAY_CONFIG;
  const path = named ?? DEFAULT_CONFIG_FILE;
  let text: string;
  try {
    text = readFileSync(resolve(directory, path), 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    if (named === undefined && code === 'ENOENT') return undefined;
    throw new ConfigError(`Cannot read ${named === undefined ? path : `GATEWAY_CONFIG=${path}`} (${code})`);
  }
  return parseConfigText(text, path, env);
}

/** Stops at a variable that was a setting: a deployment that sets it expects its effect. */
function refuseMovedVariables(env: Record<string, string>, fileName: string): void {
  for (const [variable, moved] of Object.entries(MOVED_VARIABLES)) {
    if (env[variable] === undefined) continue;
    throw new ConfigError(
      typeof moved === 'string'
        ? `${variable} is now ${moved} in ${fileName}`
        : `${variable} is no longer a setting: ${moved.removed}`,
    );
  }
}

/** The file's settings, defaults filled in; a ConfigError names the key and the file. */
export function parseSettings(source: ConfigSource | undefined): GatewaySettings {
  const name = source?.name ?? DEFAULT_CONFIG_FILE;
  const parsed = gatewayConfigSchema.safeParse(source?.content ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const key = dotted([...issue.path, issue.keys[0]!]);
    throw new ConfigError(`Unknown key ${key} in ${name}`);
  }
  if (issue.path.length === 0)
    throw new ConfigError(`Cannot read ${name}: not a mapping of sections (upstream, http, …)`);
  const key = dotted(issue.path);
  const value = issue.path.reduce<unknown>(
    (at, part) =>
      at !== null && typeof at === 'object' ? (at as Record<PropertyKey, unknown>)[part] : undefined,
    source?.content,
  );
  if (value === undefined && issue.code === 'invalid_type')
    throw new ConfigError(`Missing key ${key} in ${name}`);
  const secret =
    SECRET_KEYS.has(key) ||
    SECRET_SECTIONS.some((section) => key.startsWith(section)) ||
    source?.expanded.has(key) === true;
  const shown = secret || value === undefined ? '' : ` (got ${JSON.stringify(value)})`;
  throw new ConfigError(`Invalid ${key} in ${name}${shown}: ${issue.message}`);
}

/** The file (or none) and the environment, checked together. */
export function resolveConfig(env: NodeJS.ProcessEnv, source: ConfigSource | undefined): Config {
  const vars = present(env);
  const fileName = source?.name ?? DEFAULT_CONFIG_FILE;
  refuseMovedVariables(vars, fileName);
  const parsedEnv = environment.safeParse(vars);
  if (!parsedEnv.success) {
    const issue = parsedEnv.error.issues[0]!;
    const name = String(issue.path[0]);
    // A key is never shown, nor a URL that may carry a password.
    const shown = ['ATAI_API_KEY', 'REDIS_URL'].includes(name) ? '' : ` (got ${JSON.stringify(vars[name])})`;
    throw new ConfigError(`Invalid ${name}${shown}: ${issue.message}`);
  }
  const e = parsedEnv.data;
  const settings = parseSettings(source);
  const production = e.NODE_ENV === 'production';
  const documents = settings.security.trustedDocuments;
  // A router's subgraph queries come from its query planner, not from a client's build: they
  // cannot be listed. Safelisting belongs to the router in front.
  if (documents?.only === true && settings.federation.subgraph) {
    throw new ConfigError(
      `security.trustedDocuments.only cannot be used with federation.subgraph in ${fileName}: a router's subgraph queries are never in a client's manifest; enforce the list at the router`,
    );
  }

  let upstreamTarget: UpstreamTarget;
  if (e.ATAI_API_URL !== undefined || e.ATAI_API_KEY !== undefined) {
    upstreamTarget = {
      kind: 'remote',
      baseUrl: (e.ATAI_API_URL ?? DEFAULT_API_URL).replace(/\/+$/, ''),
      serverApiKey: e.ATAI_API_KEY,
    };
  } else if (production) {
    throw new ConfigError(
      'NODE_ENV=production needs ATAI_API_URL and/or ATAI_API_KEY: the built-in simulator serves demo data only',
    );
  } else {
    upstreamTarget = { kind: 'simulator' };
  }

  const { explorer, security, telemetry, mcp } = settings;
  return {
    ...settings,
    auth: { ...settings.auth, identityProvider: identityProvider(e) },
    production,
    port: e.PORT,
    host: e.HOST,
    metricsPort: e.METRICS_PORT,
    logLevel: e.LOG_LEVEL,
    // Pretty only where a person watches a terminal: pino-pretty is never loaded in production.
    logPretty: !production && process.stdout.isTTY === true,
    upstreamTarget,
    explorer: { ...explorer, enabled: explorer.enabled ?? !production },
    mcp: { ...mcp, freeFormTools: mcp.freeFormTools ?? !production },
    security: {
      ...security,
      introspection: security.introspection ?? !production,
      fieldSuggestions: security.fieldSuggestions ?? !production,
      // The simulator's demo organization is a demo, not a key: Sandbox may change its jobs.
      anonymousWrites: security.anonymousWrites ?? upstreamTarget.kind === 'simulator',
      allowedHosts: security.allowedHosts.map((host) => host.toLowerCase()),
      trustedDocuments:
        documents === undefined
          ? undefined
          : {
              source: /^https?:\/\//i.test(documents.manifest)
                ? { kind: 'url', url: documents.manifest }
                : { kind: 'file', path: documents.manifest },
              only: documents.only,
            },
    },
    telemetry: {
      upstreamTrace: telemetry.upstreamTrace ?? !production,
      tracing: tracingOn(e),
    },
    redis: e.REDIS_URL === undefined ? undefined : { url: e.REDIS_URL, prefix: settings.fleet.redisPrefix },
  };
}

/** The AUTH_* variables: all three or none; the keys over https unless on this machine. */
function identityProvider(e: z.output<typeof environment>): IdentityProvider | undefined {
  const { AUTH_JWKS_URL: jwksUrl, AUTH_ISSUER: issuer, AUTH_AUDIENCE: audience } = e;
  if (jwksUrl === undefined && issuer === undefined && audience === undefined) return undefined;
  if (jwksUrl === undefined || issuer === undefined || audience === undefined) {
    throw new ConfigError(
      'JWT authentication needs AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE together: a token is checked against all three',
    );
  }
  const url = new URL(jwksUrl);
  // Keys fetched in the clear could be swapped on the way: anyone could then sign tokens.
  if (url.protocol !== 'https:' && !isLoopback(url.hostname)) {
    throw new ConfigError(
      `Invalid AUTH_JWKS_URL (got ${JSON.stringify(jwksUrl)}): must be https (http only on localhost, 127.0.0.1 or ::1)`,
    );
  }
  return { jwksUrl: url, issuer, audience };
}

function isLoopback(hostname: string): boolean {
  const name = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return name === 'localhost' || name === '::1' || /^127(\.\d{1,3}){3}$/.test(name);
}

/**
 * Whether traces are sent: an OTLP endpoint is set, and neither the SDK nor the exporter is
 * turned off (the spec's variables). Decided here so that, off, no SDK module is loaded.
 */
function tracingOn(e: z.output<typeof environment>): boolean {
  if (e.OTEL_SDK_DISABLED?.toLowerCase() === 'true' || e.OTEL_TRACES_EXPORTER === 'none') return false;
  return e.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined || e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined;
}

/**
 * The configuration the entry point starts with: the environment, and the file GATEWAY_CONFIG
 * names or gateway.config.yaml in `directory` (the working directory).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, directory = process.cwd()): Config {
  refuseMovedVariables(present(env), present(env).GATEWAY_CONFIG ?? DEFAULT_CONFIG_FILE);
  return resolveConfig(env, readConfigFile(env, directory));
}

/** The simulator's settings alone (`npm run simulator`), from the same file. */
export function loadSimulatorSettings(env: NodeJS.ProcessEnv = process.env): GatewaySettings['simulator'] {
  refuseMovedVariables(present(env), present(env).GATEWAY_CONFIG ?? DEFAULT_CONFIG_FILE);
  return parseSettings(readConfigFile(env)).simulator;
}
