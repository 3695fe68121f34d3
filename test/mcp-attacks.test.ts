// A hostile or sloppy client at /mcp, in raw HTTP (no SDK client to tidy its messages): every
// bad message gets a well-formed answer with a stable code, runs no more than the limits allow,
// and is echoed into no answer or log line at any length, nor with its credentials.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACME_KEY, startStack, type Stack } from './harness.js';

const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  authorization: `Bearer ${ACME_KEY}`,
};

function toolCall(name: string, args: unknown, id = 1) {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } };
}

describe('at the defaults', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.stop());
  beforeEach(() => stack.simulator.resetRequests());

  async function post(message: unknown, headers: Record<string, string> = {}) {
    const response = await fetch(new URL('/mcp', stack.gateway.url), {
      method: 'POST',
      headers: { ...HEADERS, ...headers },
      body: typeof message === 'string' ? message : JSON.stringify(message),
    });
    const text = await response.text();
    return { status: response.status, text, body: JSON.parse(text) as Record<string, unknown> };
  }

  it('refuses a JSON-RPC batch of more tool calls than limits.maxBatch, running none of them', async () => {
    const calls = (count: number) =>
      Array.from({ length: count }, (_, i) => toolCall('get_job', { id: `ftj-none-${i}` }, i));
    const refused = await post(calls(11));
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({
      jsonrpc: '2.0',
      id: null,
      error: { code: -32600, data: { code: 'QUERY_LIMIT_EXCEEDED', limit: 'batch', maxBatch: 10 } },
    });
    expect(stack.simulator.requests).toHaveLength(0);

    // Ten are answered, each one operation (one upstream call) of its own.
    const answered = await post(calls(10));
    expect(answered.status).toBe(200);
    expect((answered.body as unknown as unknown[]).length).toBe(10);
    expect(stack.simulator.requests).toHaveLength(10);
  });

  it('answers JSON that does not parse with a JSON-RPC parse error', async () => {
    for (const text of ['{"jsonrpc": "2.0", "id": 1, "method": ', '']) {
      const { status, body } = await post(text);
      expect(status).toBe(400);
      expect(body).toMatchObject({
        jsonrpc: '2.0',
        id: null,
        error: { code: -32700, data: { code: 'BAD_REQUEST' } },
      });
    }
  });

  it('answers a malformed tools/call (no params, arguments that are no object) with InvalidParams', async () => {
    const malformed = [
      { jsonrpc: '2.0', id: 1, method: 'tools/call' },
      toolCall('list_jobs', [1, 2]),
      toolCall('list_jobs', 'limit=2'),
    ];
    for (const message of malformed) {
      const { status, body } = await post(message);
      expect(status).toBe(200);
      expect(body).toMatchObject({ jsonrpc: '2.0', id: 1, error: { code: -32602 } });
      expect((body.error as { message: string }).message).toContain('Invalid tools/call request');
    }
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it("refuses a browser's simple POST (text/plain, a form) with 415, running no tool", async () => {
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'text/plain; a=application/json',
    ]) {
      const { status, body } = await post(toolCall('list_jobs', {}), { 'content-type': type });
      expect(status, type).toBe(415);
      expect(body).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 }, id: null });
    }
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('cuts a huge tool name, argument name, type or resource URI in its answer and log line', async () => {
    const from = stack.logLines.length;
    const huge = 'x'.repeat(200_000);
    const answers = [
      await post(toolCall(huge, {})),
      await post(toolCall('list_jobs', { [huge]: 1 })),
      await post(toolCall('describe_schema', { type: huge })),
      await post({ jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: `http://${huge}` } }),
      await post({
        jsonrpc: '2.0',
        id: 1,
        method: 'resources/read',
        params: { uri: `fine-tune-job://${huge}` },
      }),
    ];
    for (const { status, text } of answers) {
      expect(status).toBe(200);
      expect(text.length, text.slice(0, 300)).toBeLessThan(2_000);
    }
    const lines = stack.logLines.slice(from);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line.length, line.slice(0, 300)).toBeLessThan(2_000);
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('refuses a describe_schema `type` that is not a string, however deep, with BAD_USER_INPUT', async () => {
    const depth = 100_000;
    const deep = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    const { status, body } = await post(
      `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"describe_schema","arguments":{"type":${deep}}}}`,
    );
    expect(status).toBe(200);
    expect(body.result).toMatchObject({
      isError: true,
      structuredContent: { errors: [{ extensions: { code: 'BAD_USER_INPUT', argument: 'type' } }] },
    });
  });

  it('refuses a document past limits.maxBytes as a tool error, a body past http.maxRequestBytes with 413', async () => {
    const padded = `{ fineTuneJobs { id } }${' '.repeat(100 * 1024)}`;
    for (const tool of ['execute_operation', 'validate_operation']) {
      const { body } = await post(toolCall(tool, { query: padded }));
      expect(body.result, tool).toMatchObject({
        isError: true,
        structuredContent: { errors: [{ extensions: { code: 'QUERY_LIMIT_EXCEEDED', limit: 'bytes' } }] },
      });
    }
    const { status, body } = await post(toolCall('execute_operation', { query: padded.repeat(11) }));
    expect(status).toBe(413);
    expect(body).toMatchObject({ jsonrpc: '2.0', error: { code: -32600, data: { code: 'BAD_REQUEST' } } });
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('shows no key or token, good or bad, in any answer or log line', async () => {
    const from = stack.logLines.length;
    const credentials = [
      `Bearer ${ACME_KEY}`,
      'Bearer sim-acme-key SECRET-with-space',
      'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTRUNSRVRKV1QifQ.c2lnU0VDUkVUU0lH',
    ];
    const answers: string[] = [];
    for (const authorization of credentials) {
      for (const message of [
        toolCall('list_jobs', {}),
        toolCall('execute_operation', { query: '{ nope }' }),
      ]) {
        answers.push((await post(message, { authorization })).text);
      }
    }
    // A 100 KB header is refused by Node's parser before the gateway reads it.
    const oversized = await post(toolCall('list_jobs', {}), {
      authorization: `Bearer ${'K'.repeat(100_000)}`,
    });
    expect(oversized.status).toBe(431);
    answers.push(oversized.text);
    for (const text of [...answers, ...stack.logLines.slice(from)]) {
      for (const secret of [ACME_KEY, 'SECRET', 'eyJ', 'KKKKKKKK']) expect(text).not.toContain(secret);
    }
  });
});
