// Singleflight: callers asking for the same key while a first call is still running get that
// call's result instead of starting their own. Nothing is kept once the call settles, so this is
// no cache: a caller never sees a result older than the call it joined.

export class Singleflight<T> {
  private readonly inFlight = new Map<string, Promise<T>>();

  /** Runs `work`, or joins the run already in flight for `key`. */
  run(key: string, work: () => Promise<T>): { result: Promise<T>; joined: boolean } {
    const running = this.inFlight.get(key);
    if (running !== undefined) return { result: running, joined: true };
    const result: Promise<T> = work().finally(() => {
      // Only its own entry: after `detachAll`, a newer run may hold the key.
      if (this.inFlight.get(key) === result) this.inFlight.delete(key);
    });
    this.inFlight.set(key, result);
    return { result, joined: false };
  }

  /** The run in flight for `key`, if there is one. */
  joinable(key: string): Promise<T> | undefined {
    return this.inFlight.get(key);
  }

  /** Runs in flight finish for those who joined them; callers from now on start their own. */
  detachAll(): void {
    this.inFlight.clear();
  }

  /** How many distinct calls are in flight now. */
  get size(): number {
    return this.inFlight.size;
  }
}
