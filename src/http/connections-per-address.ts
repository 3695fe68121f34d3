// Open connections per client address, against one limit: the one count behind both the HTTP
// server's sockets (http.maxConnectionsPerAddress) and the WebSocket server's
// (subscriptions.connectionsPerAddress), each with an instance of its own. A flood from one
// client leaves room for the others.

/** Anything that says once when it closes: a socket, a WebSocket. */
interface Closing {
  once(event: 'close', listener: () => void): unknown;
}

export class ConnectionsPerAddress {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Whether `address` may open one more connection. */
  hasRoom(address: string): boolean {
    return (this.open.get(address) ?? 0) < this.max;
  }

  /** Counts `connection` as one of `address`'s until it closes. */
  add(address: string, connection: Closing): void {
    this.open.set(address, (this.open.get(address) ?? 0) + 1);
    connection.once('close', () => {
      const left = (this.open.get(address) ?? 1) - 1;
      if (left === 0) this.open.delete(address);
      else this.open.set(address, left);
    });
  }

  /** Counts `connection` if `address` has room for it; false when it has none. */
  admit(address: string, connection: Closing): boolean {
    if (!this.hasRoom(address)) return false;
    this.add(address, connection);
    return true;
  }
}
