// Observability: one log line per operation, the request id end to end, /metrics, /healthz and /readyz.
import { connect } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  expectData,
  expectErrorCode,
  holdUpstream,
  metric,
  startStack,
  untilMetric,
  type Stack,
} from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ config: { upstream: { timeoutMs: 300 } } });
});
afterAll(() => stack.stop());
beforeEach(() => {
  stack.simulator.resetRequests();
  stack.simulator.faults.clear();
});

interface OperationLine {
  msg: string;
  requestId: string;
  operationName: string | null;
  durationMs: number;
  upstreamCalls: number;
  outcome: string;
  errorCodes?: string[];
}

function operationLines(requestId: string): OperationLine[] {
  return stack.logLines
    .map((line) => JSON.parse(line) as OperationLine)
    .filter((line) => line.msg === 'graphql operation' && line.requestId === requestId);
}

async function metricsText(): Promise<string> {
  const response = await fetch(stack.gateway.metricsUrl);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

function metricValue(text: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf('}'));
    const have = labelText.split(',');
    if (wanted.every((w) => have.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

describe('operation log and request id', () => {
  it('logs one line per operation with name, duration, upstream calls and outcome', async () => {
    const acme = stack.simulator.store.organizations[0]!;
    const [job] = stack.simulator.store.list(acme, null);
    const response = await stack.query(
      `query TwoCalls { fineTuneJobs(limit: 2) { id } fineTuneJob(id: "${job!.id}-missing") { id } }`,
      undefined,
      { headers: { 'x-request-id': 'req-log-1' } },
    );
    expectData(response);
    const lines = operationLines('req-log-1');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ operationName: 'TwoCalls', upstreamCalls: 2, outcome: 'ok' });
    expect(lines[0]!.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('counts retries as upstream calls and logs the error codes', async () => {
    stack.simulator.faults.set('listJobs', { status: 503, times: 1 });
    expectData(
      await stack.query('query Retried { fineTuneJobs(limit: 1) { id } }', undefined, {
        headers: { 'x-request-id': 'req-log-2' },
      }),
    );
    expect(operationLines('req-log-2')[0]).toMatchObject({ upstreamCalls: 2, outcome: 'ok' });

    stack.simulator.faults.set('listJobs', { status: 403 });
    expectErrorCode(
      await stack.query('query Refused { fineTuneJobs(limit: 1) { id } }', undefined, {
        headers: { 'x-request-id': 'req-log-3' },
      }),
      'FORBIDDEN',
    );
    expect(operationLines('req-log-3')[0]).toMatchObject({
      upstreamCalls: 1,
      outcome: 'error',
      errorCodes: ['FORBIDDEN'],
    });
  });

  it("returns the caller's request id and forwards it upstream", async () => {
    const response = await stack.query('query { fineTuneJobs(limit: 1) { id } }', undefined, {
      headers: { 'x-request-id': 'trace-abc.123' },
    });
    expect(response.headers.get('x-request-id')).toBe('trace-abc.123');
    expect(stack.simulator.requestsTo('listJobs').map((r) => r.requestId)).toEqual(['trace-abc.123']);
  });

  it('makes one when the caller sends none or an unusable one, and forwards that', async () => {
    for (const headers of [{}, { 'x-request-id': 'bad id with spaces' }] as Record<string, string>[]) {
      stack.simulator.resetRequests();
      const response = await stack.query('query { fineTuneJobs(limit: 1) { id } }', undefined, { headers });
      const id = response.headers.get('x-request-id');
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(stack.simulator.requestsTo('listJobs').map((r) => r.requestId)).toEqual([id]);
    }
  });

  it('logs JSON lines by default outside a terminal (pino)', () => {
    for (const line of stack.logLines) expect(() => JSON.parse(line)).not.toThrow();
  });
});

describe('GET /metrics', () => {
  it('counts operations by name and outcome, with durations', async () => {
    const before = await metricsText();
    expectData(await stack.query('query Counted { fineTuneJobs(limit: 1) { id } }'));
    stack.simulator.faults.set('listJobs', { status: 404 });
    await stack.query('query Counted { fineTuneJobs(limit: 1) { id } }');
    const after = await metricsText();
    const ops = (outcome: string, text: string) =>
      metricValue(text, 'gateway_graphql_operations_total', { operation: 'Counted', outcome });
    expect(ops('ok', after) - ops('ok', before)).toBe(1);
    expect(ops('NOT_FOUND', after) - ops('NOT_FOUND', before)).toBe(1);
    expect(
      metricValue(after, 'gateway_graphql_operation_duration_seconds_count', {
        operation: 'Counted',
        outcome: 'ok',
      }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('counts an operation with a name over 100 characters as (other), never by its name', async () => {
    const name = `Long${'x'.repeat(100)}`;
    const before = await metricsText();
    expectData(await stack.query(`query ${name} { fineTuneJobs(limit: 1) { id } }`));
    const after = await metricsText();
    const other = (text: string) =>
      metricValue(text, 'gateway_graphql_operations_total', { operation: '(other)', outcome: 'ok' });
    expect(other(after) - other(before)).toBe(1);
    expect(after).not.toContain(name);
  });

  it('counts upstream requests by endpoint and status, retries and timeouts', async () => {
    const endpoint = 'GET /fine-tune/jobs';
    const before = await metricsText();
    stack.simulator.faults.set('listJobs', { status: 502, times: 1 });
    expectData(await stack.query('query { fineTuneJobs(limit: 1) { id } }'));
    stack.simulator.faults.set('listJobs', { delayMs: 1_000 });
    expectErrorCode(await stack.query('query { fineTuneJobs(limit: 1) { id } }'), 'UPSTREAM_TIMEOUT');
    const after = await metricsText();
    const delta = (name: string, labels: Record<string, string>) =>
      metricValue(after, name, labels) - metricValue(before, name, labels);
    expect(delta('gateway_upstream_requests_total', { endpoint, status: '502' })).toBe(1);
    expect(delta('gateway_upstream_requests_total', { endpoint, status: '200' })).toBe(1);
    expect(delta('gateway_upstream_requests_total', { endpoint, status: 'timeout' })).toBe(1);
    expect(delta('gateway_upstream_retries_total', { endpoint })).toBe(1);
    expect(delta('gateway_upstream_timeouts_total', { endpoint })).toBe(1);
    expect(delta('gateway_upstream_request_duration_seconds_count', { endpoint, status: '200' })).toBe(1);
  });

  it('counts loads answered without an upstream call', async () => {
    const acme = stack.simulator.store.organizations[0]!;
    const [first] = stack.simulator.store.list(acme, null);
    const before = await metricsText();
    expectData(
      await stack.query(`query {
        a: fineTuneJobs(limit: 1) { id }
        b: fineTuneJobs(limit: 1) { name }
        c: fineTuneJob(id: "${first!.id}") { id }
      }`),
    );
    const after = await metricsText();
    const delta = (labels: Record<string, string>) =>
      metricValue(after, 'gateway_loader_hits_total', labels) -
      metricValue(before, 'gateway_loader_hits_total', labels);
    expect(delta({ loader: 'jobList', source: 'cache' })).toBe(1);
    expect(delta({ loader: 'jobById', source: 'list' }) + delta({ loader: 'jobById', source: 'cache' })).toBe(
      1,
    );
    expect(stack.simulator.requests).toHaveLength(1);
  });

  it('reports the circuit state, requests in flight and process figures', async () => {
    const idle = await metricsText();
    expect(idle).toMatch(/^gateway_upstream_circuit_state 0$/m);
    // Earlier requests of this file were timed from arrival to response; none is in flight now.
    expect(
      metricValue(idle, 'gateway_http_request_duration_seconds_count', { path: '/graphql' }),
    ).toBeGreaterThan(5);
    expect(idle).toMatch(/^gateway_http_oldest_in_flight_seconds 0$/m);
    expect(idle).toMatch(/^process_resident_memory_bytes \d+/m);
    // A query held at the upstream is in flight while the metrics are read.
    const hold = holdUpstream(stack, 'listJobs');
    const arrived = stack.untilOperationsResolved(stack.operationsResolved + 1);
    const pending = stack.query('query { fineTuneJobs(limit: 1) { id } }');
    await arrived;
    const busy = await metricsText();
    hold.release();
    expectData(await pending);
    expect(busy).toMatch(/^gateway_http_oldest_in_flight_seconds (0\.\d*[1-9]\d*|[1-9][\d.]*)(e-\d+)?$/m);
  });
});

describe('a client that goes away mid-body', () => {
  it('is no error of the gateway: nothing logged at error level, and it keeps serving', async () => {
    const linesBefore = stack.logLines.length;
    const { port } = new URL(stack.gateway.url);
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(
      'POST /graphql HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n' +
        'content-length: 1000\r\n\r\n{"query":"{ fineTu',
    );
    // The gateway counts the request aborted once it has seen the client go.
    const aborted = () => metric(stack, 'gateway_http_requests_aborted_total', { path: '/graphql' });
    const before = await aborted();
    socket.destroy();
    await untilMetric(stack, 'gateway_http_requests_aborted_total', (n) => n > before, { path: '/graphql' });
    const errors = stack.logLines.slice(linesBefore).filter((line) => JSON.parse(line).level >= 50);
    expect(errors).toEqual([]);
    expectData(await stack.query('query { fineTuneJobs(limit: 1) { id } }'));
  });
});

describe('health probes', () => {
  it('/healthz and /readyz answer 200 while the upstream is up', async () => {
    const health = await fetch(new URL('/healthz', stack.gateway.url));
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(new URL('/readyz', stack.gateway.url));
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', upstream: 'reachable' });
  });

  it('answers any other path 404 with a coded error that says where GraphQL is', async () => {
    const response = await fetch(new URL('/graphq', stack.gateway.url));
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      errors: [{ message: 'Not found; GraphQL is served at /graphql.', extensions: { code: 'NOT_FOUND' } }],
    });
  });

  it('/readyz reuses its check for a second: a flood of probes is not a flood upstream', async () => {
    const probes = () => stack.simulator.requests.filter((r) => r.route === null).length;
    const before = probes();
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => fetch(new URL('/readyz', stack.gateway.url)).then((r) => r.status)),
    );
    expect(answers.every((status) => status === 200)).toBe(true);
    expect(probes() - before).toBeLessThanOrEqual(1);
  });

  it('/readyz reports an unreachable upstream while /healthz stays 200', async () => {
    const lonely = await startStack();
    await lonely.simulator.stop();
    try {
      const ready = await fetch(new URL('/readyz', lonely.gateway.url));
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: 'not ready', upstream: 'unreachable' });
      expect((await fetch(new URL('/healthz', lonely.gateway.url))).status).toBe(200);
      expectErrorCode(await lonely.query('query { fineTuneJobs(limit: 1) { id } }'), 'UPSTREAM_UNAVAILABLE');
    } finally {
      await lonely.gateway.stop();
    }
  });
});
