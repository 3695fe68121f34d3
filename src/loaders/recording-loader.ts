// A DataLoader that tells the operation's record of upstream calls when a load is answered from
// its cache: `loader` when the value was already there, `coalesced` when an identical load was
// still in flight; and counts those loads for /metrics. Priming is not a load, so it is never
// counted.
import DataLoader from 'dataloader';
import type { UpstreamCall } from '../upstream/recorder.js';

/** Told of each load answered without a call (the operation's record of upstream calls). */
export interface ReuseRecorder {
  reuse(call: UpstreamCall, source: 'loader' | 'coalesced'): void;
}

/** DataLoader's cache, plus whether each cached promise has settled yet. */
class SettlingCache<V, C> implements DataLoader.CacheMap<C, Promise<V>> {
  private readonly promises = new Map<C, Promise<V>>();
  private readonly settled = new Set<C>();

  get(key: C): Promise<V> | undefined {
    return this.promises.get(key);
  }

  set(key: C, promise: Promise<V>): void {
    this.promises.set(key, promise);
    this.settled.delete(key);
    const mark = () => {
      if (this.promises.get(key) === promise) this.settled.add(key);
    };
    promise.then(mark, mark);
  }

  delete(key: C): void {
    this.promises.delete(key);
    this.settled.delete(key);
  }

  clear(): void {
    this.promises.clear();
    this.settled.clear();
  }

  state(key: C): 'settled' | 'pending' | undefined {
    if (!this.promises.has(key)) return undefined;
    return this.settled.has(key) ? 'settled' : 'pending';
  }
}

export interface RecordingLoaderOptions<K, V, C> extends Omit<DataLoader.Options<K, V, C>, 'cacheMap'> {
  reuses: ReuseRecorder | undefined;
  /** The upstream read a key stands for, as the record shows it. */
  describe(key: K): UpstreamCall;
  /** Called for each load answered from the cache. */
  onCacheHit?: () => void;
}

/** A DataLoader that records the loads it answers without a call. */
export class RecordingDataLoader<K, V, C = K> extends DataLoader<K, V, C> {
  private readonly cache: SettlingCache<V, C>;
  private readonly reuses: ReuseRecorder | undefined;
  private readonly describe: (key: K) => UpstreamCall;
  private readonly keyOf: (key: K) => C;
  private readonly onCacheHit: (() => void) | undefined;

  constructor(batch: DataLoader.BatchLoadFn<K, V>, options: RecordingLoaderOptions<K, V, C>) {
    const { reuses, describe, onCacheHit, ...dataLoaderOptions } = options;
    const cache = new SettlingCache<V, C>();
    super(batch, { ...dataLoaderOptions, cacheMap: cache });
    this.cache = cache;
    this.reuses = reuses;
    this.describe = describe;
    this.onCacheHit = onCacheHit;
    this.keyOf = options.cacheKeyFn ?? ((key: K) => key as unknown as C);
  }

  override load(key: K): Promise<V> {
    const state = this.cache.state(this.keyOf(key));
    if (state !== undefined) {
      this.onCacheHit?.();
      this.reuses?.reuse(this.describe(key), state === 'pending' ? 'coalesced' : 'loader');
    }
    return super.load(key);
  }
}
