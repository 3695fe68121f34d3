// Starts the real parts for a test: the simulator (the upstream) and the gateway, each an HTTP
// server on loopback, and a GraphQL client that talks to the gateway over the wire.
import type { ApolloServerPlugin } from '@apollo/server';
import { ClientError, GraphQLClient } from 'graphql-request';
import { expect } from 'vitest';
import { mergeConfig } from '../scripts/config-file.js';
import { resolveConfig, type Config, type GatewayConfigFile } from '../src/config.js';
import type { GatewayContext } from '../src/context.js';
import { createLogger } from '../src/observability/logging.js';
import { startGateway, type RunningGateway } from '../src/server.js';
import type { SimulatorRoute } from '../src/simulator/faults.js';
import { startSimulator, type RunningSimulator, type SimulatorOptions } from '../src/simulator/server.js';

export const ACME_KEY = 'sim-acme-key';
export const GLOBEX_KEY = 'sim-globex-key';

export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  data?: T | null;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[];
  headers: Headers;
}

export interface Stack {
  simulator: RunningSimulator;
  gateway: RunningGateway;
  /** Every line the gateway logged, as JSON strings. */
  logLines: string[];
  /**
   * Resolves once `count` operations in all have passed `didResolveOperation` (parsed,
   * validated, limits checked) and what follows without I/O has run: a request is then waiting
   * for its own execution or for an identical one's.
   */
  untilOperationsResolved(count: number): Promise<void>;
  /** Operations that passed `didResolveOperation` so far. */
  readonly operationsResolved: number;
  /** Sends an operation with `Authorization: Bearer <apiKey>` (none when apiKey is null). */
  query<T = Record<string, unknown>>(
    document: string,
    variables?: Record<string, unknown>,
    options?: { apiKey?: string | null; headers?: Record<string, string> },
  ): Promise<GraphQLResponse<T>>;
  stop(): Promise<void>;
}

export interface StackOptions {
  simulator?: SimulatorOptions;
  /** The gateway's own key; by default none, so tests state which key they use. */
  serverApiKey?: string;
  /** The gateway's environment: what changes per deployment (NODE_ENV, ATAI_API_KEY, REDIS_URL, …). */
  env?: Record<string, string>;
  /**
   * The configuration file's content, in its shape (`{ limits: { maxCost: 10 } }`), checked by
   * the same schema as gateway.config.yaml.
   */
  config?: GatewayConfigFile;
  /** Apollo Server plugins an operator adds. */
  plugins?: ApolloServerPlugin<GatewayContext>[];
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const simulator = await startSimulator({ jobsPerOrganization: 12, ...options.simulator });
  let stack: Stack;
  try {
    stack = await startGatewayOn(simulator, options);
  } catch (error) {
    // A gateway that refused to start (a bad setting under test) leaves nothing running.
    await simulator.stop();
    throw error;
  }
  return {
    ...stack,
    // Getters are not copied by a spread.
    get operationsResolved() {
      return stack.operationsResolved;
    },
    async stop() {
      await stack.stop();
      await simulator.stop();
    },
  };
}

/**
 * A gateway on a simulator already running (several gateways on one upstream, as a fleet):
 * its `stop` stops the gateway only.
 */
export async function startGatewayOn(
  simulator: RunningSimulator,
  options: Omit<StackOptions, 'simulator'> = {},
): Promise<Stack> {
  const logLines: string[] = [];
  const logger = createLogger('debug', {
    destination: { write: (line: string) => void logLines.push(line) },
  });
  const env = {
    PORT: '0',
    METRICS_PORT: '0',
    HOST: '127.0.0.1',
    ATAI_API_URL: simulator.url,
    // OpenTelemetry's SDK reads its variables from the process, as a user's gateway does.
    ...Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('OTEL_'))),
    ...options.env,
  };
  const testDefaults: GatewayConfigFile = {
    // Tests inject failures on purpose, many in a row; the circuit breaker would carry them over
    // into the next test. test/upstream-protection.test.ts turns it on with its own settings.
    upstream: { backoffLimitMs: 50, breaker: { minCalls: 100_000, failuresInARow: 100_000 } },
    // Many tests send hundreds of operations with one key; test/rate-limits.test.ts turns it on.
    rateLimits: { enabled: false },
  };
  const content = mergeConfig(testDefaults, options.config ?? {});
  const config = resolveConfig(env, { name: 'the test configuration', content, expanded: new Set() });
  const resolved = { count: 0, waiters: [] as { count: number; resolve(): void }[] };
  const resolvedCounter: ApolloServerPlugin<GatewayContext> = {
    async requestDidStart() {
      return {
        async didResolveOperation() {
          resolved.count += 1;
          for (const waiter of resolved.waiters.filter((w) => w.count <= resolved.count)) {
            resolved.waiters.splice(resolved.waiters.indexOf(waiter), 1);
            // After the pipeline's next steps, which do no I/O before execution or a join.
            setImmediate(waiter.resolve);
          }
        },
      };
    },
  };
  const gateway = await startGateway({
    config,
    upstreamBaseUrl: simulator.url,
    serverApiKey: options.serverApiKey,
    logger,
    plugins: [resolvedCounter, ...(options.plugins ?? [])],
  });

  return {
    simulator,
    gateway,
    logLines,
    get operationsResolved() {
      return resolved.count;
    },
    untilOperationsResolved(count) {
      if (resolved.count >= count) return new Promise((resolve) => setImmediate(resolve));
      return new Promise((resolve) => resolved.waiters.push({ count, resolve }));
    },
    async query(document, variables, { apiKey = ACME_KEY, headers = {} } = {}) {
      const client = new GraphQLClient(gateway.url, {
        errorPolicy: 'all',
        headers: { ...(apiKey !== null && { authorization: `Bearer ${apiKey}` }), ...headers },
      });
      try {
        const response = await client.rawRequest(document, variables);
        return response as unknown as GraphQLResponse<never>;
      } catch (error) {
        // Non-2xx answers (validation errors, bad requests) come back as ClientError.
        if (error instanceof ClientError) return error.response as unknown as GraphQLResponse<never>;
        throw error;
      }
    },
    async stop() {
      await gateway.stop();
    },
  };
}

/**
 * The configuration a gateway would start with from this file content and environment, as
 * `gateway.config.yaml` (no file is read: the working directory's would not be the test's).
 */
export function configFrom(content: unknown, env: Record<string, string> = {}): Config {
  return resolveConfig(env, { name: 'gateway.config.yaml', content, expanded: new Set() });
}

/** `{ a: { b: value } }` for `a.b`: a file's content with one key set. */
export function withKey(key: string, value: unknown): Record<string, unknown> {
  return key
    .split('.')
    .reduceRight<Record<string, unknown>>((inner, part) => ({ [part]: inner }), value as never) as never;
}

/**
 * Holds the upstream's next `times` requests to `route` until `release()`: concurrent requests
 * can then be sent and seen to arrive (untilOperationsResolved) before any of them is answered.
 */
export function holdUpstream(stack: Stack, route: SimulatorRoute, times = 1): { release(): void } {
  let release!: () => void;
  const until = new Promise<void>((resolve) => (release = resolve));
  stack.simulator.faults.set(route, { until, times });
  return { release };
}

/**
 * Sends `send()`'s requests together, holding the upstream's answers to `route` until all of
 * them have reached the gateway's execution or joined an identical one.
 */
export async function sentTogether<T>(
  stack: Stack,
  route: SimulatorRoute,
  requests: (() => Promise<T>)[],
  upstreamCalls = 1,
): Promise<T[]> {
  const hold = holdUpstream(stack, route, upstreamCalls);
  const arrived = stack.untilOperationsResolved(stack.operationsResolved + requests.length);
  const responses = Promise.all(requests.map((send) => send()));
  await arrived;
  hold.release();
  return responses;
}

/** A metric of the gateway now, summed over its series whose labels include `labels`. */
export async function metric(
  stack: Stack,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(stack.gateway.metricsUrl)).text();
  let total = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? ([\\d.e+-]+)$`, 'gm'))) {
    const series = match[1] ?? '';
    if (Object.entries(labels).every(([key, value]) => series.includes(`${key}="${value}"`)))
      total += Number(match[2]);
  }
  return total;
}

/**
 * Resolves once a metric of the gateway meets `condition`: waiting on what the gateway did (a
 * poll done, pollers stopped), not on the clock; the test's own timeout is the only bound.
 */
export async function untilMetric(
  stack: Stack,
  name: string,
  condition: (value: number) => boolean,
  labels: Record<string, string> = {},
): Promise<number> {
  for (;;) {
    const value = await metric(stack, name, labels);
    if (condition(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Asserts a response has data and no errors, printing the whole response when it does not. */
export function expectData<T>(response: GraphQLResponse<T>): T {
  expect(response.errors, JSON.stringify(response, null, 2)).toBeUndefined();
  expect(response.data, JSON.stringify(response, null, 2)).toBeTruthy();
  return response.data as T;
}

/** Asserts a response carries exactly one error with this code, and returns that error. */
export function expectErrorCode(response: GraphQLResponse, code: string) {
  const shown = JSON.stringify(response, null, 2);
  expect(response.errors?.length, shown).toBe(1);
  const error = response.errors![0]!;
  expect(error.extensions?.code, shown).toBe(code);
  return error;
}
