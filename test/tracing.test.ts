// OpenTelemetry over the wire: a real OTLP/HTTP receiver in the test process decodes what the
// gateway exports (JSON), a client sends a W3C traceparent, and the simulator records the
// traceparent of every upstream request. With no endpoint set, the built entry point loads no
// OpenTelemetry module at all (a module-loading hook in the child process lists them).
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../src/config.js';
import { startEntryPoint, untilReady } from './entry-point-process.js';
import {
  ACME_KEY,
  configFrom,
  expectData,
  expectErrorCode,
  sentTogether,
  startStack,
  type Stack,
} from './harness.js';
import { jobRecord } from './jobs.js';
import { connect } from './live-client.js';

// OTLP span kinds (the protocol's numbering) and status codes.
const SERVER = 2;
const CLIENT = 3;
const STATUS_ERROR = 2;

interface OtlpValue {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: OtlpValue[] };
}
type Attributes = Record<string, unknown>;

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  attributes: Attributes;
  links: { traceId: string; spanId: string }[];
  events: { name: string; attributes: Attributes }[];
  status: { code?: number };
  resource: Attributes;
}

function valueOf(value: OtlpValue): unknown {
  if (value.arrayValue) return (value.arrayValue.values ?? []).map(valueOf);
  if (value.intValue !== undefined) return Number(value.intValue);
  return value.stringValue ?? value.doubleValue ?? value.boolValue;
}

function attributesOf(list: { key: string; value: OtlpValue }[] | undefined): Attributes {
  return Object.fromEntries((list ?? []).map(({ key, value }) => [key, valueOf(value)]));
}

interface RawSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: OtlpValue }[];
  links?: { traceId: string; spanId: string }[];
  events?: { name: string; attributes?: { key: string; value: OtlpValue }[] }[];
  status?: { code?: number };
}
interface ExportRequest {
  resourceSpans: {
    resource?: { attributes?: { key: string; value: OtlpValue }[] };
    scopeSpans: { spans: RawSpan[] }[];
  }[];
}

/** An OTLP/HTTP receiver on loopback: every export request's body, headers and spans. */
interface Receiver {
  url: string;
  bodies: string[];
  headers: IncomingHttpHeaders[];
  spans: ExportedSpan[];
  /** Resolves once the spans received meet `condition` (waits on exports, not on the clock). */
  until<T>(condition: (spans: ExportedSpan[]) => T | undefined | false): Promise<T>;
  stop(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const received = new EventEmitter();
  const receiver = {
    bodies: [] as string[],
    headers: [] as IncomingHttpHeaders[],
    spans: [] as ExportedSpan[],
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const text = Buffer.concat(chunks).toString('utf8');
      receiver.bodies.push(text);
      receiver.headers.push(req.headers);
      for (const { resource, scopeSpans } of (JSON.parse(text) as ExportRequest).resourceSpans) {
        for (const span of scopeSpans.flatMap((scope) => scope.spans)) {
          receiver.spans.push({
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId || undefined,
            name: span.name,
            kind: span.kind,
            attributes: attributesOf(span.attributes),
            links: (span.links ?? []).map(({ traceId, spanId }) => ({ traceId, spanId })),
            events: (span.events ?? []).map((e) => ({
              name: e.name,
              attributes: attributesOf(e.attributes),
            })),
            status: span.status ?? {},
            resource: attributesOf(resource?.attributes),
          });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      received.emit('spans');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    ...receiver,
    async until(condition) {
      for (;;) {
        const met = condition(receiver.spans);
        if (met) return met;
        await once(received, 'spans');
      }
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** A client's trace: its W3C `traceparent` header and the ids in it. */
function clientTrace(sampled = true) {
  const traceId = hex(16);
  const parentId = hex(8);
  return { traceId, parentId, traceparent: `00-${traceId}-${parentId}-${sampled ? '01' : '00'}` };
}

const COLLECTOR_TOKEN = 'collector-token-5f2a9c';

let receiver: Receiver;
let stack: Stack;
let jobIds: string[];
beforeAll(async () => {
  receiver = await startReceiver();
  // The SDK reads its variables from the process's environment, as in a user's gateway.
  vi.stubEnv('OTEL_EXPORTER_OTLP_ENDPOINT', receiver.url);
  vi.stubEnv('OTEL_RESOURCE_ATTRIBUTES', 'deployment.environment=test');
  vi.stubEnv('OTEL_EXPORTER_OTLP_HEADERS', `x-collector-token=${COLLECTOR_TOKEN}`);
  // Exports follow within milliseconds; the tests wait on the receiver, never on a delay.
  vi.stubEnv('OTEL_BSP_SCHEDULE_DELAY', '10');
  stack = await startStack({
    simulator: { jobsPerOrganization: 6, providerExamples: false },
    config: { subscriptions: { pollMs: 30, activePollMs: 30 } },
  });
  const acme = stack.simulator.store.organizations[0]!;
  jobIds = stack.simulator.store.list(acme, null).map((job) => job.id);
});
afterAll(async () => {
  await stack?.stop();
  await receiver?.stop();
  vi.unstubAllEnvs();
});
beforeEach(() => {
  stack.simulator.resetRequests();
  stack.simulator.faults.clear();
});

/** Nothing exported may carry a key, a variable's value or the collector's own token. */
function expectNothingSecret(secrets: string[]) {
  const exported = receiver.bodies.join('\n');
  for (const secret of [ACME_KEY, COLLECTOR_TOKEN, ...secrets]) expect(exported).not.toContain(secret);
  expect(stack.logLines.join('\n')).not.toContain(COLLECTOR_TOKEN);
}

const TRACED_JOBS = `query TracedJobs($limit: Int!, $id: ID!) {
  fineTuneJobs(limit: $limit) { id metrics(limit: 2) { entries { step } } }
  fineTuneJob(id: $id) { name }
}`;

describe('a traced query', () => {
  it("gives the operation's span tree under the client's trace, and sends its traceparent upstream", async () => {
    const client = clientTrace();
    // A job past the first two: read by id, not served from the list.
    const variables = { limit: 2, id: jobIds[4]! };
    expectData(await stack.query(TRACED_JOBS, variables, { headers: { traceparent: client.traceparent } }));

    const inTrace = (spans: ExportedSpan[]) => spans.filter((s) => s.traceId === client.traceId);
    const spans = await receiver.until((all) => {
      const mine = inTrace(all);
      // The operation's span ends last: its children and upstream calls were exported with or before it.
      return (
        mine.some((s) => s.kind === SERVER) && mine.filter((s) => s.kind === CLIENT).length === 4 && mine
      );
    });

    const operation = spans.find((s) => s.kind === SERVER)!;
    expect(operation.name).toBe('query TracedJobs');
    expect(operation.parentSpanId).toBe(client.parentId);
    expect(operation.attributes).toMatchObject({
      'graphql.operation.type': 'query',
      'graphql.operation.name': 'TracedJobs',
      'graphql.document.hash': sha256(TRACED_JOBS),
      'graphql.document.cached': false,
      'gateway.answered_from': 'execution',
      'gateway.outcome': 'ok',
      'gateway.upstream_calls': 4,
      'gateway.transport': 'http',
      'http.response.status_code': 200,
    });
    expect(operation.status.code).not.toBe(STATUS_ERROR);
    // The gateway's name, unless OTEL_SERVICE_NAME says another (the entry point's test, below).
    expect(operation.resource['service.name']).toBe('fine-tune-gateway');
    expect(operation.resource['deployment.environment']).toBe('test');

    const children = spans.filter((s) => s.parentSpanId === operation.spanId);
    expect(
      children
        .filter((s) => s.kind !== CLIENT)
        .map((s) => s.name)
        .sort(),
    ).toEqual(['graphql.execute', 'graphql.parse', 'graphql.validate']);
    const calls = children.filter((s) => s.kind === CLIENT);
    expect(calls.map((s) => s.name).sort()).toEqual([
      'GET /fine-tune/jobs',
      'GET /fine-tune/jobs/{job_id}',
      'GET /fine-tune/jobs/{job_id}/metrics',
      'GET /fine-tune/jobs/{job_id}/metrics',
    ]);
    for (const call of calls) {
      expect(call.attributes).toMatchObject({
        'http.request.method': 'GET',
        'url.template': `/v0.5${call.name.slice('GET '.length)}`,
        'http.response.status_code': 200,
        'gateway.upstream.attempts': 1,
        'server.address': '127.0.0.1',
      });
      expect(call.attributes['http.request.resend_count']).toBeUndefined();
      // Only an attempt that did not succeed is an event.
      expect(call.events).toEqual([]);
    }

    // Each upstream request carried the trace id, with its own call's span as the parent.
    const sent = stack.simulator.requests.map((r) => r.traceparent).sort();
    expect(sent).toEqual(calls.map((call) => `00-${client.traceId}-${call.spanId}-01`).sort());

    // The collector's headers were sent; no key, variable value or token is in any export.
    expect(receiver.headers.at(-1)?.['x-collector-token']).toBe(COLLECTOR_TOKEN);
    expectNothingSecret([variables.id]);
  });

  it('says how an answer shared from an identical query in flight came, with no execution of its own', async () => {
    const document = 'query SharedPage { fineTuneJobs(limit: 3) { id } }';
    const [leader, follower] = [clientTrace(), clientTrace()];
    // Held upstream until both have arrived, so the second joins the first's flight.
    const answers = await sentTogether(
      stack,
      'listJobs',
      [leader, follower].map(
        (t) => () => stack.query(document, {}, { headers: { traceparent: t.traceparent } }),
      ),
    );
    for (const answer of answers) expectData(answer);

    const operations = await receiver.until((all) => {
      const found = [leader, follower].map((t) =>
        all.find((s) => s.traceId === t.traceId && s.kind === SERVER),
      );
      return found.every(Boolean) && (found as ExportedSpan[]);
    });
    // Whichever arrived first executed; the other joined it.
    expect(operations.map((s) => s.attributes['gateway.answered_from']).sort()).toEqual([
      'execution',
      'flight',
    ]);
    const executed = operations.find((s) => s.attributes['gateway.answered_from'] === 'execution')!;
    const joined = operations.find((s) => s.attributes['gateway.answered_from'] === 'flight')!;
    expect(executed.attributes['gateway.upstream_calls']).toBe(1);
    expect(joined.attributes['gateway.upstream_calls']).toBe(0);
    const named = (operation: ExportedSpan) =>
      receiver.spans.filter((s) => s.parentSpanId === operation.spanId).map((s) => s.name);
    expect(named(executed)).toContain('graphql.execute');
    expect(named(joined)).not.toContain('graphql.execute');
  });

  it("keeps a client's decision not to sample: nothing exported, the upstream gets the same trace unsampled", async () => {
    const unsampled = clientTrace(false);
    expectData(
      await stack.query(
        '{ fineTuneJobs(limit: 1) { id } }',
        {},
        { headers: { traceparent: unsampled.traceparent } },
      ),
    );
    const [request] = stack.simulator.requests;
    expect(request?.traceparent).toMatch(new RegExp(`^00-${unsampled.traceId}-[0-9a-f]{16}-00$`));

    // A sampled request after it: once its span is in, an unsampled one would have been too.
    const sampled = clientTrace();
    expectData(
      await stack.query(
        '{ fineTuneJobs(limit: 1) { id } }',
        {},
        { headers: { traceparent: sampled.traceparent } },
      ),
    );
    await receiver.until((all) => all.some((s) => s.traceId === sampled.traceId && s.kind === SERVER));
    expect(receiver.spans.filter((s) => s.traceId === unsampled.traceId)).toEqual([]);
  });

  it('starts a trace of its own when the client sends none, or a malformed traceparent', async () => {
    expectData(
      await stack.query(
        'query Untraced { fineTuneJobs(limit: 1) { id } }',
        {},
        { headers: { traceparent: 'nonsense' } },
      ),
    );
    const operation = await receiver.until((all) => all.find((s) => s.name === 'query Untraced'));
    expect(operation.parentSpanId).toBeUndefined();
    expect(operation.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(stack.simulator.requests[0]?.traceparent).toContain(operation.traceId);
  });
});

describe('a failed operation', () => {
  it('has its error code on the span, and the retries on the upstream call', async () => {
    // Three answers of 503: the first attempt and both retries.
    stack.simulator.faults.set('listJobs', { status: 503, times: 3 });
    const client = clientTrace();
    const response = await stack.query(
      'query FailingJobs { fineTuneJobs(limit: 2) { id } }',
      {},
      { headers: { traceparent: client.traceparent } },
    );
    expectErrorCode(response, 'UPSTREAM_UNAVAILABLE');

    const spans = await receiver.until((all) => {
      const mine = all.filter((s) => s.traceId === client.traceId);
      return mine.some((s) => s.kind === SERVER) && mine;
    });
    const operation = spans.find((s) => s.kind === SERVER)!;
    expect(operation.status.code).toBe(STATUS_ERROR);
    expect(operation.attributes).toMatchObject({
      'gateway.outcome': 'error',
      'graphql.error.codes': ['UPSTREAM_UNAVAILABLE'],
      'error.type': 'UPSTREAM_UNAVAILABLE',
    });
    const call = spans.find((s) => s.kind === CLIENT)!;
    expect(call.parentSpanId).toBe(operation.spanId);
    expect(call.status.code).toBe(STATUS_ERROR);
    expect(call.attributes).toMatchObject({
      'error.type': '503',
      'http.response.status_code': 503,
      'http.request.resend_count': 2,
      'gateway.upstream.attempts': 3,
    });
    expect(call.events.map((e) => e.attributes['gateway.upstream.outcome'])).toEqual(['503', '503', '503']);
    // Every attempt carried the same call's traceparent.
    expect(new Set(stack.simulator.requests.map((r) => r.traceparent))).toEqual(
      new Set([`00-${client.traceId}-${call.spanId}-01`]),
    );
  });

  it('refused by validation: the validate span failed, nothing executed', async () => {
    const client = clientTrace();
    const response = await stack.query(
      'query Broken { fineTuneJobs { noSuchField } }',
      {},
      { headers: { traceparent: client.traceparent } },
    );
    expectErrorCode(response, 'GRAPHQL_VALIDATION_FAILED');
    const spans = await receiver.until((all) => {
      const mine = all.filter((s) => s.traceId === client.traceId);
      return mine.some((s) => s.kind === SERVER) && mine;
    });
    const operation = spans.find((s) => s.kind === SERVER)!;
    expect(operation.attributes).toMatchObject({
      'graphql.error.codes': ['GRAPHQL_VALIDATION_FAILED'],
      'gateway.answered_from': 'none',
      'http.response.status_code': 400,
    });
    expect(operation.status.code).toBe(STATUS_ERROR);
    const validation = spans.find((s) => s.name === 'graphql.validate')!;
    expect(validation.status.code).toBe(STATUS_ERROR);
    expect(spans.map((s) => s.name)).not.toContain('graphql.execute');
    expectNothingSecret([]);
  });
});

describe('a traced subscription', () => {
  it("gives a span per poll and per delivered batch, linked to the subscribing operation's span", async () => {
    const acme = stack.simulator.store.organizations[0]!;
    const job = jobRecord(acme, { status: 'RUNNING' });
    stack.simulator.store.put(acme, job);
    const live = connect(stack.gateway.url, ACME_KEY);
    try {
      const subscription = live.subscribe(
        'subscription WatchJob($id: ID!) { fineTuneJobUpdated(id: $id) { id status } }',
        { id: job.id },
      );
      await subscription.waitForEvents(1);

      const { operation, polls, deliveries } = await receiver.until((all) => {
        const operation = all.find((s) => s.name === 'subscription WatchJob');
        if (operation === undefined) return false;
        const linked = (s: ExportedSpan) => s.links.some((l) => l.spanId === operation.spanId);
        const polls = all.filter((s) => s.name === 'subscription poll job' && linked(s));
        const deliveries = all.filter((s) => s.name === 'subscription deliver job' && linked(s));
        return polls.length >= 2 && deliveries.length >= 1 && { operation, polls, deliveries };
      });
      expect(operation.kind).toBe(SERVER);
      expect(operation.attributes).toMatchObject({
        'graphql.operation.type': 'subscription',
        'gateway.transport': 'websocket',
        'gateway.outcome': 'ok',
      });
      for (const poll of polls) {
        // A trace of its own: a poll serves every subscriber of the job, not one operation.
        expect(poll.parentSpanId).toBeUndefined();
        expect(poll.links).toContainEqual({ traceId: operation.traceId, spanId: operation.spanId });
        expect(poll.attributes).toMatchObject({
          'gateway.subscription.resource': 'job',
          'gateway.subscription.subscribers': 1,
        });
      }
      // The first poll read the job (its upstream call is the poll's child) and delivered it.
      const pollIds = new Set(polls.map((p) => p.spanId));
      const reads = receiver.spans.filter(
        (s) => s.name === 'GET /fine-tune/jobs/{job_id}' && pollIds.has(s.parentSpanId ?? ''),
      );
      expect(reads.length).toBeGreaterThanOrEqual(polls.length);
      expect(pollIds.has(deliveries[0]!.parentSpanId ?? '')).toBe(true);
      expect(deliveries[0]!.attributes['gateway.subscription.events']).toBe(1);
      subscription.unsubscribe();
      expectNothingSecret([job.id]);
    } finally {
      await live.dispose();
    }
  });
});

describe('tracing configuration', () => {
  const base = { ATAI_API_URL: 'http://127.0.0.1:9/v0.5' };
  const endpoint = { ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };

  it('is on with an OTLP endpoint, off without one, or with the SDK disabled or the exporter none', () => {
    expect(configFrom({}, base).telemetry.tracing).toBe(false);
    expect(configFrom({}, endpoint).telemetry.tracing).toBe(true);
    const traces = { ...base, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example.com/in' };
    expect(configFrom({}, traces).telemetry.tracing).toBe(true);
    expect(configFrom({}, { ...endpoint, OTEL_SDK_DISABLED: 'TRUE' }).telemetry.tracing).toBe(false);
    expect(configFrom({}, { ...endpoint, OTEL_TRACES_EXPORTER: 'none' }).telemetry.tracing).toBe(false);
  });

  // The SDK would take either silently: it logs through its own diag channel, which the gateway
  // does not register, and would send JSON to a gRPC port or to its default endpoint.
  it.each([
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, /^Invalid OTEL_EXPORTER_OTLP_ENDPOINT/],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, /^Invalid OTEL_EXPORTER_OTLP_PROTOCOL.*only http\/json/],
    [{ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }, /^Invalid OTEL_EXPORTER_OTLP_TRACES_PROTOCOL/],
  ])('refuses %o with one clear line', (env, message) => {
    expect(() => configFrom({}, { ...endpoint, ...env })).toThrow(ConfigError);
    expect(() => configFrom({}, { ...endpoint, ...env })).toThrow(message);
  });
});

describe('the built entry point', () => {
  // A hook in the child that lists every module it loads: ESM resolutions and the CommonJS cache.
  let hooks: string;
  beforeAll(() => {
    hooks = mkdtempSync(join(tmpdir(), 'gateway-modules-'));
    writeFileSync(
      join(hooks, 'hooks.mjs'),
      `let port;
export function initialize(data) { port = data.port; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  port.postMessage(result.url);
  return result;
}
`,
    );
    writeFileSync(
      join(hooks, 'register.mjs'),
      `import { createRequire, register } from 'node:module';
import { writeFileSync } from 'node:fs';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const resolved = new Set();
port1.on('message', (url) => resolved.add(url));
port1.unref();
register('./hooks.mjs', import.meta.url, { data: { port: port2 }, transferList: [port2] });
const require = createRequire(import.meta.url);
// To a file: one write of 150 KB to a non-blocking stderr pipe can be cut short at exit.
process.on('exit', () => {
  writeFileSync(process.env.LOADED_MODULES_FILE, JSON.stringify([...resolved, ...Object.keys(require.cache)]));
});
`,
    );
  });
  afterAll(() => rmSync(hooks, { recursive: true, force: true }));

  /** Starts dist/main.js, sends one query, stops it; returns the modules it had loaded. */
  async function modulesOfOneQuery(env: Record<string, string>): Promise<string[]> {
    const modulesFile = join(hooks, `modules-${randomUUID()}.json`);
    const main = startEntryPoint(
      { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', LOADED_MODULES_FILE: modulesFile, ...env },
      { nodeArgs: ['--import', pathToFileURL(join(hooks, 'register.mjs')).href] },
    );
    try {
      const response = await fetch(await untilReady(main), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: 'query FromMain { fineTuneJobs(limit: 1) { id } }' }),
      });
      expect(response.status).toBe(200);
      main.child.kill('SIGTERM');
      const [code] = await main.exited;
      expect(code, main.stderr()).toBe(0);
    } finally {
      main.child.kill('SIGKILL');
    }
    return JSON.parse(readFileSync(modulesFile, 'utf8')) as string[];
  }

  /** The OpenTelemetry packages among the modules, each once. */
  const openTelemetry = (modules: string[]) => [
    ...new Set(modules.flatMap((m) => /\/node_modules\/(@opentelemetry\/[^/]+)\//.exec(m)?.[1] ?? [])),
  ];

  it('loads no OpenTelemetry module when no endpoint is set', async () => {
    const modules = await modulesOfOneQuery({});
    // The hook saw the gateway's own modules: the list is real.
    expect(modules.some((m) => m.endsWith('/dist/server.js'))).toBe(true);
    expect(modules.some((m) => m.endsWith('/dist/observability/tracing-sdk.js'))).toBe(false);
    // prom-client loads the API (no-op without an SDK) for its exemplars; nothing else is.
    expect(openTelemetry(modules).filter((name) => name !== '@opentelemetry/api')).toEqual([]);
  });

  it('with an endpoint, loads the SDK and the exporter, and its stop sends the spans not sent yet', async () => {
    const modules = await modulesOfOneQuery({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`,
      OTEL_SERVICE_NAME: 'gateway-from-main',
    });
    expect(modules.some((m) => m.endsWith('/dist/observability/tracing-sdk.js'))).toBe(true);
    expect(openTelemetry(modules)).toEqual(
      expect.arrayContaining(['@opentelemetry/sdk-trace-base', '@opentelemetry/exporter-trace-otlp-http']),
    );
    // The default schedule is 5 s: the span arrived with the flush at SIGTERM, before the exit.
    const operation = receiver.spans.find((s) => s.name === 'query FromMain');
    expect(operation?.resource['service.name']).toBe('gateway-from-main');
  });
});
