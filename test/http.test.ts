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
  it('a request line past what Node parses (a 20 KB query string) is a 431 with a coded body', async () => {
    const query = encodeURIComponent(`{ fineTuneJobs(limit: 1) { id } } #${'x'.repeat(20_000)}`);
    const answer = await sendRaw(
      `GET /graphql?query=${query} HTTP/1.1\r\nHost: localhost\r\nconnection: close\r\n\r\n`,
    );
    expect(answer.status).toBe(431);
    expect(JSON.parse(answer.body)).toMatchObject({ errors: [{ extensions: { code: 'BAD_REQUEST' } }] });
    expect(errorLines()).toEqual([]);
  });

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

// A socket that sends no request, or only part of one, is cut at the default headers timeout in
// test/socket-floods.test.ts; these are the other cuts, at short timeouts.
describe('slow and idle clients', () => {
  let limited: Stack;
  beforeAll(async () => {
    limited = await startStack({
      simulator: { jobsPerOrganization: 2 },
      config: {
        http: { headersTimeoutMs: 300, requestTimeoutMs: 600, keepAliveTimeoutMs: 300, maxConnections: 4 },
      },
    });
  });
  afterAll(() => limited.stop());

  /** Opens a socket, writes `first` if given, and resolves when the gateway closes it. */
  function closedByGateway(first?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(limited.gateway.port, '127.0.0.1', () => {
        if (first !== undefined) socket.write(first);
      });
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('error', reject);
      socket.on('close', () => resolve(text));
    });
  }

  it('cuts a body sent a byte at a time', async () => {
    const answer = await closedByGateway(
      'POST /graphql HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('closes an idle keep-alive connection after its response', async () => {
    const answer = await closedByGateway(
      'GET /healthz HTTP/1.1\r\nHost: localhost\r\nconnection: keep-alive\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
  });

  it('past http.maxConnections, closes new sockets as they arrive', async () => {
    const open = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<ReturnType<typeof connect>>((resolve) => {
            const socket = connect(limited.gateway.port, '127.0.0.1', () => resolve(socket));
          }),
      ),
    );
    try {
      // The fifth is closed at once, with nothing written to it.
      expect(await closedByGateway()).toBe('');
    } finally {
      for (const socket of open) socket.destroy();
    }
  });
});

describe('connections per address (http.maxConnectionsPerAddress)', () => {
  let limited: Stack;
  beforeAll(async () => {
    limited = await startStack({
      simulator: { jobsPerOrganization: 1 },
      config: { http: { maxConnectionsPerAddress: 2 } },
    });
  });
  afterAll(() => limited.stop());

  /** A socket from `localAddress` (any of 127.0.0.0/8 is this machine), once connected. */
  function openFrom(localAddress: string): Promise<ReturnType<typeof connect>> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port: limited.gateway.port, host: '127.0.0.1', localAddress }, () =>
        resolve(socket),
      );
      socket.on('error', reject);
    });
  }

  /** What the gateway answers a request on `socket`, read until it closes it. */
  function answerOn(socket: ReturnType<typeof connect>, request?: string): Promise<string> {
    return new Promise((resolve) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('close', () => resolve(text));
      if (request !== undefined) socket.write(request);
    });
  }

  it('closes an address past its share, and serves another address meanwhile', async () => {
    const held = [await openFrom('127.0.0.1'), await openFrom('127.0.0.1')];
    try {
      expect(await answerOn(await openFrom('127.0.0.1'))).toBe('');
      const other = await openFrom('127.0.0.2');
      const answer = await answerOn(
        other,
        'GET /readyz HTTP/1.1\r\nHost: localhost\r\nconnection: close\r\n\r\n',
      );
      expect(answer).toMatch(/^HTTP\/1\.1 200/);
    } finally {
      for (const socket of held) socket.destroy();
    }
  });
});

describe('/metrics', () => {
  it('is served on METRICS_PORT, never on the API port', async () => {
    const onApi = await fetch(new URL('/metrics', stack.gateway.url));
    expect(onApi.status).toBe(404);
    const metrics = await fetch(stack.gateway.metricsUrl);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^gateway_graphql_operations_total/m);
  });
});
