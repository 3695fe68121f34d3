// The fleet's one Redis connection (REDIS_URL): commands, plus a second connection for pub/sub.
// Redis is a help, never a dependency: while it is down every command fails at once (no offline
// queue) and its callers fall back to what one instance does alone; node-redis reconnects by
// itself, and each transition (down, back) is one warn line and the /readyz detail.
import { randomUUID } from 'node:crypto';
import { createClient } from '@redis/client';
import type { Logger } from 'pino';

export type RedisClient = ReturnType<typeof createClient>;

/** Between reconnection attempts at most: a Redis back up is used again within this. */
const MAX_RECONNECT_DELAY_MS = 1_000;

export interface FleetRedisSettings {
  /** REDIS_URL; it may carry a password, so it is never logged. */
  url: string;
  /** fleet.redisPrefix: every key and channel starts with it, so several fleets can share a Redis. */
  prefix: string;
}

/** A command unanswered this long fails (its caller falls back, as when Redis is down). */
const COMMAND_TIMEOUT_MS = 1_000;
/** Between PINGs of a Redis that stopped answering, until it answers again. */
const STALL_PROBE_MS = 500;

/** Redis did not answer in time, or is known not to answer now. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
}

type Listener = (up: boolean) => void;

export class FleetRedis {
  /** Commands: the caches, the generations, the leases, the published states. */
  readonly client: RedisClient;
  /** Subscriptions only (a connection in subscriber mode runs no other command). */
  readonly subscriber: RedisClient;
  readonly prefix: string;
  /** This instance, in the leases it holds. */
  readonly instanceId = randomUUID();
  private upNow = false;
  private everUp = false;
  private closed = false;
  /** Connected, but a command went unanswered: down until a PING is answered. */
  private stalled = false;
  private stallProbe: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<Listener>();

  constructor(
    settings: FleetRedisSettings,
    private readonly logger: Logger,
  ) {
    this.prefix = settings.prefix;
    const options = {
      url: settings.url,
      // Fail fast while down: a command waits for no reconnection, its caller falls back.
      disableOfflineQueue: true,
      // Commands not sent yet fail after this; `command` bounds those sent too.
      commandOptions: { timeout: COMMAND_TIMEOUT_MS },
      socket: {
        connectTimeout: 2_000,
        reconnectStrategy: (retries: number) =>
          Math.min(50 * 2 ** Math.min(retries, 5), MAX_RECONNECT_DELAY_MS),
      },
    };
    this.client = createClient(options);
    this.subscriber = createClient(options);
    for (const connection of [this.client, this.subscriber]) {
      // node-redis reports every failed reconnection; the transition is what is worth a line.
      connection.on('error', () => this.update());
      connection.on('end', () => this.update());
      connection.on('ready', () => this.update());
    }
  }

  /** Both connections ready: the fleet mode is on. */
  get up(): boolean {
    return this.upNow;
  }

  /** Told on each transition, after the warn line. */
  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Connects both; resolves once they are ready or the first attempt failed (the gateway then
   * starts alone and joins the fleet when Redis answers).
   */
  async connect(): Promise<void> {
    await Promise.all(
      [this.client, this.subscriber].map(
        (connection) =>
          new Promise<void>((resolve) => {
            const settle = () => {
              connection.off('ready', settle);
              connection.off('error', settle);
              resolve();
            };
            connection.on('ready', settle);
            connection.on('error', settle);
            // Rejects only when the client is closed meanwhile; reconnection goes on by itself.
            connection.connect().catch(() => undefined);
          }),
      ),
    );
    this.update();
    if (!this.upNow) {
      this.logger.warn(
        'Redis is unreachable at start: serving from the upstream alone until it answers (no shared cache or APQ, each instance polls for itself)',
      );
    }
  }

  /**
   * Runs a command, failing at once while Redis is down and after COMMAND_TIMEOUT_MS otherwise:
   * node-redis bounds only commands not yet sent, and a Redis that stopped answering (paused,
   * overloaded, a network that drops packets) would hold the others, and every request with them.
   * A command unanswered makes Redis down until it answers a PING.
   */
  async command<R>(run: (client: RedisClient) => Promise<R>, connection = this.client): Promise<R> {
    if (!this.upNow) throw new RedisUnavailableError('Redis is unreachable');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        this.stall();
        reject(new RedisUnavailableError('Redis did not answer in time'));
      }, COMMAND_TIMEOUT_MS);
    });
    try {
      return await Promise.race([run(connection), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private stall(): void {
    if (this.stalled || this.closed) return;
    this.stalled = true;
    this.update();
    const probe = () => {
      this.stallProbe = setTimeout(() => {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new RedisUnavailableError('no PONG')), COMMAND_TIMEOUT_MS);
        });
        // Both connections: a wedged subscriber would leave followers deaf while "up".
        Promise.race([Promise.all([this.client.ping(), this.subscriber.ping()]), late])
          .then(() => {
            this.stalled = false;
            this.update();
          })
          .catch(() => !this.closed && probe())
          .finally(() => clearTimeout(timer));
      }, STALL_PROBE_MS);
    };
    probe();
  }

  /** A key in this fleet's namespace. */
  key(...parts: string[]): string {
    return `${this.prefix}${parts.join(':')}`;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.stallProbe);
    this.listeners.clear();
    await Promise.all(
      [this.client, this.subscriber].map(async (connection) => {
        if (!connection.isOpen) return;
        try {
          // Gracefully when Redis answers (its pending replies first); else at once.
          if (connection.isReady && !this.stalled) {
            let timer: NodeJS.Timeout | undefined;
            await Promise.race([
              connection.close(),
              new Promise<void>((resolve) => (timer = setTimeout(resolve, COMMAND_TIMEOUT_MS))),
            ]).finally(() => clearTimeout(timer));
          }
          if (connection.isOpen) connection.destroy();
        } catch {
          if (connection.isOpen) connection.destroy();
        }
      }),
    );
  }

  private update(): void {
    if (this.closed) return;
    const up = this.client.isReady && this.subscriber.isReady && !this.stalled;
    if (up === this.upNow) return;
    this.upNow = up;
    if (up) {
      if (this.everUp) this.logger.warn('Redis is reachable again: back to the fleet mode');
      this.everUp = true;
    } else {
      this.logger.warn(
        'Redis is unreachable: serving from the upstream alone (no shared cache or APQ, each instance polls for itself)',
      );
    }
    for (const listener of [...this.listeners]) {
      try {
        listener(up);
      } catch (error) {
        this.logger.error({ err: error }, 'a Redis state listener failed');
      }
    }
  }
}
