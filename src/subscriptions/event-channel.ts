// The async iterator a subscription hands to graphql-ws: listeners push payloads into it, and the
// client's unsubscribe (`return()`) reaches the cleanup at once, even while no event is pending;
// an async generator would only see it at its next `yield`, and its poller would keep polling.

export class EventChannel<T> implements AsyncIterableIterator<T> {
  private readonly queue: T[] = [];
  private waiting: ((result: IteratorResult<T>) => void) | undefined;
  private ended = false;
  private cleanup: (() => void) | undefined;
  /** How many values were still queued when the current batch began (see `beginBatch`). */
  private heldBeforeBatch: number | undefined;

  constructor(
    /** Values queued at most while the consumer is busy; past this the channel overflows. */
    private readonly limit = Number.POSITIVE_INFINITY,
    /** The last value a channel that overflowed delivers (its queue dropped), before it ends. */
    private readonly overflow?: () => T,
  ) {}

  /** What to undo when the channel ends, by either side. */
  onEnd(cleanup: () => void): void {
    if (this.ended) cleanup();
    else this.cleanup = cleanup;
  }

  /**
   * Starts a batch of values pushed together (one poll's changes): the limit then counts what
   * the consumer left from before the batch, so a burst bigger than the limit reaches a consumer
   * that keeps up, and a consumer that has not caught up by the next batch is let go.
   */
  beginBatch(): void {
    this.heldBeforeBatch = this.queue.length;
  }

  push(value: T): void {
    if (this.ended) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve({ value, done: false });
    } else if ((this.heldBeforeBatch ?? this.queue.length) >= this.limit) {
      this.queue.length = 0;
      if (this.overflow) this.queue.push(this.overflow());
      this.end();
    } else {
      this.queue.push(value);
    }
  }

  /** Ends the stream after the values already pushed. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.cleanup?.();
    this.cleanup = undefined;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    const value = this.queue.shift();
    if (this.heldBeforeBatch !== undefined)
      this.heldBeforeBatch = Math.min(this.heldBeforeBatch, this.queue.length);
    if (value !== undefined) return Promise.resolve({ value, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.waiting = resolve));
  }

  return(): Promise<IteratorResult<T>> {
    this.queue.length = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
