// Pollers: one poll loop shared by every subscriber of the same resource, so the upstream sees
// one request per interval however many clients listen. A Poller is what subscribers see; a
// LocalPoller is one instance's timer loop; FleetPolling makes pollers shared by a fleet (the
// leased ones of src/fleet/leased-poller.ts). A loop starts with the first subscriber, stops when
// the last one leaves, and waits for each poll to finish before timing the next (never
// overlapping).
import type { Logger } from 'pino';
import type { GatewayTracing, TraceContext } from '../observability/tracing.js';

export type PollEvent<T> = { value: T } | { error: unknown };
/** Hears each poll; returns how many events it passed on to its subscriber (for its span). */
export type PollListener<T> = (event: PollEvent<T>) => number | void;

/** Polls traced: a span per poll, linked to the subscribing operations, and per delivered batch. */
export interface PollTracing {
  tracing: GatewayTracing;
  /** `job`, `jobs`, `metrics`: the kind of resource, never whose or which. */
  resource: string;
  /** A failed poll's code, for its span. */
  errorType(error: unknown): string;
}

/** Links a poll's span carries at most; its `subscribers` attribute counts them all. */
const MAX_POLL_LINKS = 32;

export interface PollerOptions<T> {
  /** One upstream read of the resource, given the latest value (what changed is worked out against it). */
  fetch(latest: T | undefined): Promise<T>;
  /** The value to start from (the fleet's last published one, when this instance takes over). */
  initial?: T;
  /** How long to wait before the next poll, given the latest value (undefined before the first). */
  intervalMs(latest: T | undefined): number;
  /** Called once when the last subscriber has left and the loop has stopped. */
  onStop(): void;
  /** Called after each poll, once every listener has heard it. */
  onPolled?(): void;
  logger: Logger;
  /** When tracing is on. */
  tracing?: PollTracing;
}

/** One instance's timer loop, polling for its own subscribers. */
export class LocalPoller<T> implements Poller<T> {
  /** Each listener, with its subscribing operation's span (tracing on) to link to. */
  private readonly listeners = new Map<PollListener<T>, TraceContext | undefined>();
  private latest: T | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = false;

  constructor(private readonly options: PollerOptions<T>) {
    this.latest = options.initial;
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }

  /**
   * Adds a listener; it hears the latest value at once (when there is one), then every poll.
   * Returns the function that removes it. `operation`: the subscribing operation's span.
   */
  subscribe(listener: PollListener<T>, operation?: TraceContext): () => void {
    if (this.stopped) throw new Error('poller already stopped');
    this.listeners.set(listener, operation);
    if (this.listeners.size === 1 && !this.polling && this.timer === undefined) void this.poll();
    else if (this.latest !== undefined) {
      const latest = this.latest;
      // Not synchronously: the caller has not got its unsubscribe function yet.
      queueMicrotask(() => this.listeners.has(listener) && this.tell(listener, { value: latest }));
    }
    return () => this.unsubscribe(listener);
  }

  /** Stops the loop now, whoever still listens (server shutdown). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.listeners.clear();
    this.options.onStop();
  }

  private unsubscribe(listener: PollListener<T>): void {
    this.listeners.delete(listener);
    if (this.listeners.size === 0) this.stop();
  }

  private async poll(): Promise<void> {
    this.timer = undefined;
    this.polling = true;
    const { tracing } = this.options;
    const polled = await (tracing ? this.tracedPoll(tracing) : this.pollOnce());
    if (polled && !this.stopped && this.listeners.size > 0) {
      this.timer = setTimeout(() => void this.poll(), this.options.intervalMs(this.latest));
    }
  }

  /** One read and its delivery to every listener; false when the poller stopped meanwhile. */
  private async pollOnce(): Promise<PollEvent<T> | false> {
    let event: PollEvent<T>;
    try {
      this.latest = await this.options.fetch(this.latest);
      event = { value: this.latest };
    } catch (error) {
      event = { error };
    }
    this.polling = false;
    if (this.stopped) return false;
    // A copy: a listener that hears its last event unsubscribes while we go through them.
    for (const listener of [...this.listeners.keys()]) this.tell(listener, event);
    this.options.onPolled?.();
    return event;
  }

  /**
   * A poll as a span of its own trace (it serves every subscriber, not one operation), linked
   * to the operations that subscribed; its upstream calls and deliveries are its children.
   */
  private async tracedPoll({ tracing, resource, errorType }: PollTracing): Promise<PollEvent<T> | false> {
    const links: TraceContext[] = [];
    for (const operation of this.listeners.values()) {
      if (links.length === MAX_POLL_LINKS) break;
      if (operation !== undefined) links.push(operation);
    }
    const span = tracing.startSpan(`subscription poll ${resource}`, {
      links,
      attributes: {
        'gateway.subscription.resource': resource,
        'gateway.subscription.subscribers': this.listeners.size,
      },
    });
    const event = await tracing.within(tracing.contextOf(span), () => this.pollOnce());
    if (event && 'error' in event) tracing.fail(span, errorType(event.error));
    span.end();
    return event;
  }

  /** Tells one listener; with tracing, the events it passed on are a span linked to its operation. */
  private tell(listener: PollListener<T>, event: PollEvent<T>): void {
    const traced = this.options.tracing;
    // Read first: a listener that hears its last event unsubscribes.
    const operation = traced && this.listeners.get(listener);
    const started = traced && performance.timeOrigin + performance.now();
    let delivered: number | void;
    try {
      delivered = listener(event);
    } catch (error) {
      this.options.logger.error({ err: error }, 'subscription listener failed');
      return;
    }
    if (!traced || !delivered) return;
    const { tracing, resource } = traced;
    tracing
      .startSpan(`subscription deliver ${resource}`, {
        parent: tracing.ambient(),
        links: operation ? [operation] : [],
        startTime: started,
        attributes: { 'gateway.subscription.resource': resource, 'gateway.subscription.events': delivered },
      })
      .end();
  }
}

/** What subscribers see of a poller, local or leased: subscribe, and stop. */
export interface Poller<T> {
  readonly subscriberCount: number;
  subscribe(listener: PollListener<T>, operation?: TraceContext): () => void;
  stop(): void;
}

/** How a failed poll that ends subscriptions travels to other instances. */
export interface PollErrorCodec {
  /** Undefined for a failure the next poll may fix: followers are not told of it. */
  encode(error: unknown): unknown;
  decode(encoded: unknown): Error;
}

export interface FleetPollerOptions<T> extends PollerOptions<T> {
  /** The poller's key among this instance's (identity and resource); hashed before Redis sees it. */
  key: string;
  errors: PollErrorCodec;
}

/**
 * The factory of pollers shared by a fleet of instances (REDIS_URL: LeasedPolling in
 * src/fleet/leased-poller.ts): one poller per key for the whole fleet instead of one per instance.
 */
export interface FleetPolling {
  poller<T>(options: FleetPollerOptions<T>): Poller<T>;
}
