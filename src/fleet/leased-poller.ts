// One poller per (credential identity, watched thing) for the whole fleet (REDIS_URL). The
// instances with subscribers to it compete for a lease in Redis (SET NX PX); the holder polls as
// one instance does alone and publishes each snapshot, which every instance's subscribers hear
// over pub/sub, and keeps the last one in Redis. The others follow, and try the lease every half
// interval: when the holder dies its lease ends within 1.5 intervals, so another polls within
// two. A new holder starts from the last published snapshot, so what changed while no one
// polled is an event like any other (a list's changes are worked out against it).
//
// Redis down: each instance polls for itself (as without REDIS_URL), and competes again once
// Redis is back. Subscribers see the same events either way.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import {
  LocalPoller,
  type FleetPollerOptions,
  type FleetPolling,
  type PollEvent,
  type PollListener,
  type Poller,
} from '../subscriptions/poller.js';
import type { TraceContext } from '../observability/tracing.js';
import type { FleetRedis } from './redis.js';

/** Renews the lease if `ARGV[1]` holds it: it lasts `ARGV[2]` ms more. */
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
/** Gives the lease up, if still held by `ARGV[1]`. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

type Mode = 'idle' | 'leading' | 'following' | 'alone' | 'stopped';

interface Message {
  from: string;
  event: { value: unknown } | { error: unknown };
}

type MessageListener = (message: string) => void;

/** The fleet's FleetPolling over Redis: makes LeasedPollers and keeps what they leave to finish. */
export class LeasedPolling implements FleetPolling {
  private readonly pending = new Set<Promise<unknown>>();
  /** Listeners of stopped pollers whose UNSUBSCRIBE failed (Redis down): node-redis would subscribe them again. */
  private readonly stale = new Map<string, Set<MessageListener>>();

  constructor(
    readonly redis: FleetRedis,
    readonly logger: Logger,
  ) {
    redis.onChange((up) => {
      if (!up) return;
      const stale = [...this.stale];
      this.stale.clear();
      for (const [channel, listeners] of stale)
        for (const listener of listeners) this.unsubscribe(channel, listener);
    });
  }

  /** Stops a poller's listening; tried again once Redis is back if it fails. */
  unsubscribe(channel: string, listener: MessageListener): void {
    const retryLater = () => {
      const listeners = this.stale.get(channel) ?? new Set<MessageListener>();
      listeners.add(listener);
      this.stale.set(channel, listeners);
    };
    let sent: Promise<unknown>;
    try {
      sent = this.redis.command(
        (subscriber) => subscriber.unsubscribe(channel, listener),
        this.redis.subscriber,
      );
    } catch {
      return retryLater();
    }
    this.track(sent.catch(retryLater));
  }

  poller<T>(options: FleetPollerOptions<T>): Poller<T> {
    return new LeasedPoller<T>(this, options);
  }

  /** Keeps a command that must finish before the connection closes (a lease given up). */
  track(promise: Promise<unknown>): void {
    const settled = promise.catch(() => undefined).finally(() => this.pending.delete(settled));
    this.pending.add(settled);
  }

  /** Resolves once the leases given up are released in Redis. */
  async settled(): Promise<void> {
    await Promise.all([...this.pending]);
  }
}

/** One fleet-wide poller: polls while this instance holds its Redis lease, else hears the holder. */
class LeasedPoller<T> implements Poller<T> {
  private readonly listeners = new Map<PollListener<T>, TraceContext | undefined>();
  private latest: T | undefined;
  private mode: Mode = 'idle';
  /** This instance's own poll loop, while leading or alone. */
  private local: LocalPoller<T> | undefined;
  /** Renewal while leading, or the next try while following. */
  private timer: NodeJS.Timeout | undefined;
  private readonly leaseKey: string;
  private readonly stateKey: string;
  private readonly channel: string;
  private readonly unwatchRedis: () => void;
  /** One listener, however often it subscribes: node-redis keeps each function once per channel. */
  private readonly onMessage = (message: string) => this.heard(message);

  constructor(
    private readonly fleet: LeasedPolling,
    private readonly options: FleetPollerOptions<T>,
  ) {
    const name = createHash('sha256').update(options.key).digest('hex');
    this.leaseKey = fleet.redis.key('poll', name, 'lease');
    this.stateKey = fleet.redis.key('poll', name, 'state');
    this.channel = fleet.redis.key('poll', name);
    this.unwatchRedis = fleet.redis.onChange((up) => void this.redisChanged(up));
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }

  subscribe(listener: PollListener<T>, operation?: TraceContext): () => void {
    if (this.mode === 'stopped') throw new Error('poller already stopped');
    this.listeners.set(listener, operation);
    if (this.listeners.size === 1 && this.mode === 'idle') void this.start();
    else if (this.latest !== undefined) {
      const latest = this.latest;
      // Not synchronously: the caller has not got its unsubscribe function yet.
      queueMicrotask(() => this.listeners.has(listener) && this.tell(listener, { value: latest }));
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  stop(): void {
    if (this.mode === 'stopped') return;
    const wasLeading = this.mode === 'leading';
    this.mode = 'stopped';
    clearTimeout(this.timer);
    this.local?.stop();
    this.local = undefined;
    this.listeners.clear();
    this.unwatchRedis();
    const { redis } = this.fleet;
    this.fleet.unsubscribe(this.channel, this.onMessage);
    if (redis.up) {
      // Given up at once: another instance's subscribers get a poller at its next try.
      if (wasLeading) {
        this.fleet.track(
          redis.command((client) =>
            client.eval(RELEASE, { keys: [this.leaseKey], arguments: [redis.instanceId] }),
          ),
        );
      }
    }
    this.options.onStop();
  }

  private get isStopped(): boolean {
    return this.mode === 'stopped';
  }

  /** Between polls now; the lease lasts 1.5 of it, renewed every half. */
  private get intervalMs(): number {
    return this.options.intervalMs(this.latest);
  }

  private async start(): Promise<void> {
    if (!this.fleet.redis.up) return this.alone();
    try {
      await this.fleet.redis.command(
        (subscriber) => subscriber.subscribe(this.channel, this.onMessage),
        this.fleet.redis.subscriber,
      );
    } catch {
      return this.alone();
    }
    await this.compete();
  }

  /** Takes the lease if free: then polls, from the last published snapshot; else follows. */
  private async compete(): Promise<void> {
    if (this.mode === 'stopped') return;
    const { redis } = this.fleet;
    let taken: boolean;
    let state: string | null = null;
    try {
      const px = Math.ceil(this.intervalMs * 1.5);
      const reply = await redis.command((client) =>
        client.set(this.leaseKey, redis.instanceId, { NX: true, PX: px }),
      );
      taken = reply === 'OK';
      // A new holder starts where the last one stopped; a follower shows it to who just came.
      if (taken || this.latest === undefined) {
        state = await redis.command((client) => client.get(this.stateKey));
      }
    } catch {
      return this.alone();
    }
    if (this.isStopped) {
      if (taken)
        this.fleet.track(
          redis.command((client) =>
            client.eval(RELEASE, { keys: [this.leaseKey], arguments: [redis.instanceId] }),
          ),
        );
      return;
    }
    const published = state === null ? undefined : this.decode(state);
    if (taken) {
      if (published && 'value' in published) this.latest = published.value;
      this.lead();
    } else {
      this.follow();
      if (this.latest === undefined && published && 'value' in published) this.deliver(published);
    }
  }

  private lead(): void {
    this.mode = 'leading';
    this.pollHere();
    this.schedule(() => void this.renew());
  }

  private follow(): void {
    this.mode = 'following';
    this.local?.stop();
    this.local = undefined;
    this.schedule(() => void this.compete());
  }

  /** Redis down (or failing): this instance polls for itself, as without REDIS_URL. */
  private alone(): void {
    if (this.mode === 'stopped') return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.mode = 'alone';
    this.pollHere();
    // Redis up but a command failed: try again; Redis down: its return calls `rejoin`.
    if (this.fleet.redis.up) this.schedule(() => void this.rejoin());
  }

  private async renew(): Promise<void> {
    if (this.mode !== 'leading') return;
    const { redis } = this.fleet;
    let kept: unknown;
    try {
      const px = String(Math.ceil(this.intervalMs * 1.5));
      kept = await redis.command((client) =>
        client.eval(RENEW, { keys: [this.leaseKey], arguments: [redis.instanceId, px] }),
      );
    } catch {
      return this.alone();
    }
    if (this.mode !== 'leading') return;
    // Lost (this instance stalled past the lease): whoever holds it now polls.
    if (kept !== 1) return this.follow();
    this.schedule(() => void this.renew());
  }

  private schedule(next: () => void): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(next, Math.max(1, Math.floor(this.intervalMs / 2)));
  }

  private async redisChanged(up: boolean): Promise<void> {
    if (this.mode === 'stopped' || this.mode === 'idle') return;
    if (!up) return this.alone();
    await this.rejoin();
  }

  /** From polling alone back to the fleet: compete for the lease again. */
  private async rejoin(): Promise<void> {
    if (this.mode !== 'alone' || !this.fleet.redis.up) return;
    try {
      // node-redis subscribes again by itself after a reconnection; this covers a failed start.
      await this.fleet.redis.command(
        (subscriber) => subscriber.subscribe(this.channel, this.onMessage),
        this.fleet.redis.subscriber,
      );
    } catch {
      if (this.mode === 'alone' && this.fleet.redis.up) this.schedule(() => void this.rejoin());
      return;
    }
    if (this.mode === 'alone') await this.compete();
  }

  /** This instance's own loop, started from the latest snapshot known (if not running yet). */
  private pollHere(): void {
    if (this.local) return;
    const poller = new LocalPoller<T>({
      ...this.options,
      initial: this.latest,
      onStop: () => undefined,
    });
    this.local = poller;
    poller.subscribe((event) => this.polled(event));
  }

  /** A poll of this instance's: its subscribers hear it, and the fleet's when leading. */
  private polled(event: PollEvent<T>): number {
    if ('value' in event) this.latest = event.value;
    // Read before telling: a snapshot that ends this instance's last subscriber (a job done)
    // stops the poller, and the other instances' subscribers must still hear it.
    const leading = this.mode === 'leading';
    let told = 0;
    for (const listener of [...this.listeners.keys()]) told += this.tell(listener, event);
    if (leading) this.publish(event);
    return told;
  }

  private publish(event: PollEvent<T>): void {
    let shared: Message['event'];
    if ('value' in event) shared = { value: event.value };
    else {
      const error = this.options.errors.encode(event.error);
      // A failure the next poll may fix: the leader logged it, followers wait for that poll.
      if (error === undefined) return;
      shared = { error };
    }
    const { redis } = this.fleet;
    const text = JSON.stringify({ from: redis.instanceId, event: shared } satisfies Message);
    // The state first: an instance that takes over reads what its followers last heard, or later.
    const px = Math.ceil(this.intervalMs * 4);
    redis
      .command((client) =>
        client.multi().set(this.stateKey, text, { PX: px }).publish(this.channel, text).exec(),
      )
      .catch(() => undefined);
  }

  private heard(text: string): void {
    if (this.mode !== 'following') return;
    let from: string | undefined;
    try {
      from = (JSON.parse(text) as Message).from;
    } catch {
      return;
    }
    // Its own, published just before it lost the lease: its subscribers have heard it.
    if (from === this.fleet.redis.instanceId) return;
    const message = this.decode(text);
    if (message) this.deliver(message);
  }

  private deliver(event: PollEvent<T>): void {
    if ('value' in event) this.latest = event.value;
    for (const listener of [...this.listeners.keys()]) this.tell(listener, event);
  }

  private decode(text: string): PollEvent<T> | undefined {
    try {
      const { event } = JSON.parse(text) as Message;
      if ('value' in event) return { value: event.value as T };
      return { error: this.options.errors.decode(event.error) };
    } catch {
      return undefined;
    }
  }

  private tell(listener: PollListener<T>, event: PollEvent<T>): number {
    try {
      return listener(event) || 0;
    } catch (error) {
      this.options.logger.error({ err: error }, 'subscription listener failed');
      return 0;
    }
  }
}
