// Clients that open sockets and never read nor close them, at the default limits and timeouts.
// The gateway runs as `npm start` runs it, in a process of its own, so that the sockets it holds
// are read from the kernel (its file descriptors, the TCP table): whatever it answers on a raw
// socket (400, 401, 408, 431) it lets the socket go, and three addresses holding all the sockets
// each may leave room for a fourth.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { startEntryPoint, stopEntryPoints, untilReady } from './entry-point-process.js';
import { waitUntil } from './live-client.js';

afterEach(() => stopEntryPoints());

/** Any of 127.0.0.0/8 is this machine: one address per client, as the gateway counts them. */
const FLOODERS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
const PROBE = '127.0.0.5';
const DEFAULTS = loadConfig({}).http;

interface Gateway {
  pid: number;
  port: number;
}

async function startGateway(): Promise<Gateway> {
  const main = startEntryPoint({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
  const url = new URL(await untilReady(main));
  return { pid: main.child.pid!, port: Number(url.port) };
}

/** A client's socket, and its end as the kernel's TCP table names it (`a.b.c.d:port`). */
interface Client {
  socket: Socket;
  end: string;
}

/**
 * A socket from `localAddress` that writes `request`, if any, and never reads nor closes: paused
 * before it connects, Node never reads it (the gateway's answer and its FIN wait in the kernel),
 * and with `allowHalfOpen` no end of its own follows the gateway's.
 */
function neverReads(port: number, localAddress: string, request?: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
    socket.pause();
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      // A socket refused at once may be reset: the client does not care.
      socket.on('error', () => {});
      if (request !== undefined) socket.write(request);
      resolve({ socket, end: `${socket.localAddress}:${socket.localPort}` });
    });
  });
}

/** What the gateway answers `GET /readyz` from `localAddress`, read until it closes. */
function readyz(port: number, localAddress: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress }, () =>
      socket.write('GET /readyz HTTP/1.1\r\nHost: localhost\r\nconnection: close\r\n\r\n'),
    );
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    socket.on('error', (error) => resolve(`refused (${error.message})`));
    socket.on('close', () => resolve(text));
  });
}

const ESTABLISHED = '01';
const LISTEN = '0A';

interface TcpSocket {
  local: string;
  remote: string;
  state: string;
  inode: string;
}

/** The kernel's IPv4 TCP sockets (/proc/net/tcp): both ends as `a.b.c.d:port`, state, inode. */
function tcpTable(): TcpSocket[] {
  const end = (hex: string) => {
    const [address, port] = hex.split(':') as [string, string];
    const bytes = address.match(/../g)!.map((byte) => parseInt(byte, 16));
    return `${bytes.reverse().join('.')}:${parseInt(port, 16)}`;
  };
  return readFileSync('/proc/net/tcp', 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const [, local, remote, state, , , , , , inode] = line.trim().split(/\s+/) as string[];
      return { local: end(local!), remote: end(remote!), state: state!, inode: inode! };
    });
}

/** The client ends of the connections on its port the gateway holds a file descriptor for. */
function heldBy(gateway: Gateway, table = tcpTable()): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${gateway.pid}/fd`)) {
    try {
      const socket = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${gateway.pid}/fd/${fd}`));
      if (socket) inodes.add(socket[1]!);
    } catch {
      // Closed between the listing and the read.
    }
  }
  return table
    .filter((s) => s.local === `127.0.0.1:${gateway.port}` && s.state !== LISTEN && inodes.has(s.inode))
    .map((s) => s.remote);
}

/**
 * The clients the gateway has answered or refused: their end is no longer established (its FIN
 * or reset has arrived, unread).
 */
function answered(clients: Client[], table: TcpSocket[]): Client[] {
  const states = new Map(table.map((s) => [s.local, s.state]));
  return clients.filter((client) => states.get(client.end) !== ESTABLISHED);
}

function countByAddress(ends: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const end of ends) {
    const address = end.split(':')[0]!;
    counts[address] = (counts[address] ?? 0) + 1;
  }
  return counts;
}

const UPGRADE =
  'GET /graphql HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n';

describe('clients that never read nor close their sockets, at the default limits', () => {
  it('lose their socket once answered or refused: the gateway holds none, and serves another address', async () => {
    const gateway = await startGateway();
    const garbage = 'GARBAGE\r\n\r\n'; // 400, from Node's parser
    const others = [
      `GET /graphql HTTP/1.1\r\nHost: localhost\r\nx-big: ${'x'.repeat(20_000)}\r\n\r\n`, // 431
      `${UPGRADE}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://elsewhere.example\r\n\r\n`, // 401
      `${UPGRADE}Sec-WebSocket-Key: not-a-key\r\n\r\n`, // 400, from ws
    ];
    // The finding's flood (256 sockets of garbage from each of three addresses), and the other
    // answers a raw socket gets, 8 of each from each address.
    const requests = [
      ...Array<string>(256).fill(garbage),
      ...others.flatMap((other) => Array<string>(8).fill(other)),
    ];
    const flood = await Promise.all(
      FLOODERS.flatMap((address) => requests.map((request) => neverReads(gateway.port, address, request))),
    );
    try {
      await waitUntil(() => answered(flood, tcpTable()).length === flood.length);
      // None is left for its client to close: a fourth address is served, and (the gateway has
      // run what followed each answer by the time it answers the probe) no flooder's is held.
      expect(await readyz(gateway.port, PROBE)).toMatch(/^HTTP\/1\.1 200 /);
      expect(heldBy(gateway).filter((end) => !end.startsWith(`${PROBE}:`))).toEqual([]);
    } finally {
      for (const { socket } of flood) socket.destroy();
    }
  });

  it('serve a fourth address while three hold all the sockets each may (HTTP_CONNECTIONS_PER_ADDRESS)', async () => {
    const gateway = await startGateway();
    const max = DEFAULTS.maxConnectionsPerAddress;
    const idle = await Promise.all(
      FLOODERS.flatMap((address) => Array.from({ length: max }, () => neverReads(gateway.port, address))),
    );
    try {
      // Each socket is held by the gateway, or was refused.
      let held: string[] = [];
      await waitUntil(() => {
        const table = tcpTable();
        held = heldBy(gateway, table);
        const ends = new Set(held);
        const refused = new Set(answered(idle, table));
        return idle.every((client) => ends.has(client.end) || refused.has(client));
      });
      expect(countByAddress(held)).toEqual(Object.fromEntries(FLOODERS.map((address) => [address, max])));
      expect(await readyz(gateway.port, PROBE)).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      for (const { socket } of idle) socket.destroy();
    }
  });

  it(
    'get a 408 at HTTP_HEADERS_TIMEOUT_MS for no request or part of one, and the gateway closes the socket',
    { timeout: 60_000 },
    async () => {
      const gateway = await startGateway();
      const opened = performance.now();
      const clients = [
        await neverReads(gateway.port, FLOODERS[0]!),
        await neverReads(gateway.port, FLOODERS[1]!, 'POST /graphql HTTP/1.1\r\nHost: localhost\r\nx-slow: '),
      ];
      try {
        await waitUntil(() => answered(clients, tcpTable()).length === clients.length);
        expect(performance.now() - opened).toBeGreaterThanOrEqual(DEFAULTS.headersTimeoutMs);
        // The gateway closed its socket, which sent the FIN the clients have: it holds neither.
        expect(heldBy(gateway)).toEqual([]);
        for (const { socket } of clients) {
          let text = '';
          socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
          socket.resume();
          await new Promise((resolve) => socket.once('end', resolve));
          expect(text).toMatch(/^HTTP\/1\.1 408 /);
          expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toMatchObject({
            errors: [{ extensions: { code: 'BAD_REQUEST' } }],
          });
        }
      } finally {
        for (const { socket } of clients) socket.destroy();
      }
    },
  );
});
