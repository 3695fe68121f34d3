// The HTTP layer (Fastify) as a hostile or careless client meets it, over raw sockets where a
// fetch client would refuse to send the request: every answer is a coded GraphQL error body,
// never a 500, and nothing is logged at error level.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACME_KEY, startStack, type Stack } from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ simulator: { jobsPerOrganization: 3 } });
});
afterAll(() => stack.stop());

interface RawAnswer {
  status: number;
  headers: string;
  body: string;
}

/** Sends `request` as it is written and reads the whole answer (the request asks to close). */
function sendRaw(request: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(stack.gateway.port, '127.0.0.1', () => socket.write(request));
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      const split = text.indexOf('\r\n\r\n');
      const headers = text.slice(0, split);
      resolve({ status: Number(headers.split(' ')[1]), headers, body: text.slice(split + 4) });
    });
  });
}

const QUERY = JSON.stringify({ query: '{ fineTuneJobs(limit: 1) { id } }' });

function rawPost(host: string, body = QUERY, target = '/graphql'): string {
  return (
    `POST ${target} HTTP/1.1\r\nHost: ${host}\r\nauthorization: Bearer ${ACME_KEY}\r\n` +
    `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

function errorLines(): unknown[] {
  return stack.logLines
    .map((line) => JSON.parse(line) as { level: number })
    .filter((line) => line.level >= 50);
}

describe('requests Apollo Server never sees', () => {
  it.each(['a b', '%', '[::1', ''])(
    'a Host header no URL can carry (%j) is a 400 BAD_REQUEST',
    async (host) => {
      const answer = await sendRaw(rawPost(host));
      expect(answer.status, answer.body).toBe(400);
      expect(JSON.parse(answer.body)).toEqual({
        errors: [{ message: 'The Host header is not a valid host.', extensions: { code: 'BAD_REQUEST' } }],
      });
      expect(errorLines()).toEqual([]);
    },
  );

  it('a URL Fastify cannot route is a 400 BAD_REQUEST', async () => {
    const answer = await sendRaw('GET /graphql/%zz HTTP/1.1\r\nHost: localhost\r\nconnection: close\r\n\r\n');
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body).errors[0].extensions.code).toBe('BAD_REQUEST');
    expect(errorLines()).toEqual([]);
  });

  it('a body that is not JSON is a 400 BAD_REQUEST', async () => {
    const answer = await sendRaw(rawPost('localhost', '{"query": '));
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toEqual({
      errors: [{ message: 'Request body is not valid JSON.', extensions: { code: 'BAD_REQUEST' } }],
    });
    expect(errorLines()).toEqual([]);
  });

  it('a JSON body with __proto__ is refused, not merged', async () => {
    const answer = await sendRaw(rawPost('localhost', '{"query": "{ __typename }", "__proto__": {"x": 1}}'));
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body).errors[0].extensions.code).toBe('BAD_REQUEST');
  });

  it('the absolute form of the target (from some proxies) is served by its path', async () => {
    const answer = await sendRaw(
      rawPost('localhost', QUERY, `http://localhost:${stack.gateway.port}/graphql`),
    );
    expect(answer.status, answer.body).toBe(200);
    expect(JSON.parse(answer.body).data.fineTuneJobs).toHaveLength(1);
  });

  it('answers every response with its request id, on every path', async () => {
    const answer = await sendRaw(
      'GET /healthz HTTP/1.1\r\nHost: localhost\r\nx-request-id: probe-1\r\nconnection: close\r\n\r\n',
    );
    expect(answer.status).toBe(200);
    expect(answer.headers).toMatch(/^x-request-id: probe-1$/im);
  });

  it('redirects / to the GraphQL path', async () => {
    const response = await fetch(new URL('/', stack.gateway.url), { redirect: 'manual' });
    expect(response.status).toBe(302);
    expect(response.headers.get('location')).toBe('/graphql');
  });
});
