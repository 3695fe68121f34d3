// One poll loop shared by every subscriber of the same resource: the upstream sees one request
// per interval however many clients listen. It starts with the first subscriber, stops when the
// last one leaves, and waits for each poll to finish before timing the next (never overlapping).
import type { Logger } from 'pino';

export type PollEvent<T> = { value: T } | { error: unknown };
export type PollListener<T> = (event: PollEvent<T>) => void;

export interface PollerOptions<T> {
  /** One upstream read of the resource. */
  fetch(): Promise<T>;
  /** How long to wait before the next poll, given the latest value (undefined before the first). */
  intervalMs(latest: T | undefined): number;
  /** Called once when the last subscriber has left and the loop has stopped. */
  onStop(): void;
  /** Called after each poll, once every listener has heard it. */
  onPolled?(): void;
  logger: Logger;
}

export class SharedPoller<T> {
  private readonly listeners = new Set<PollListener<T>>();
  private latest: T | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = false;

  constructor(private readonly options: PollerOptions<T>) {}

  get subscriberCount(): number {
    return this.listeners.size;
  }

  /**
   * Adds a listener; it hears the latest value at once (when there is one), then every poll.
   * Returns the function that removes it.
   */
  subscribe(listener: PollListener<T>): () => void {
    if (this.stopped) throw new Error('poller already stopped');
    this.listeners.add(listener);
    if (this.listeners.size === 1 && !this.polling && this.timer === undefined) void this.poll();
    else if (this.latest !== undefined) {
      const latest = this.latest;
      // Not synchronously: the caller has not got its unsubscribe function yet.
      queueMicrotask(() => this.listeners.has(listener) && listener({ value: latest }));
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
    let event: PollEvent<T>;
    try {
      this.latest = await this.options.fetch();
      event = { value: this.latest };
    } catch (error) {
      event = { error };
    }
    this.polling = false;
    if (this.stopped) return;
    // A copy: a listener that hears its last event unsubscribes while we go through them.
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (error) {
        this.options.logger.error({ err: error }, 'subscription listener failed');
      }
    }
    this.options.onPolled?.();
    if (!this.stopped && this.listeners.size > 0) {
      this.timer = setTimeout(() => void this.poll(), this.options.intervalMs(this.latest));
    }
  }
}
