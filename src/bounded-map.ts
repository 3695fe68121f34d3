// A Map for what clients decide the keys of (documents, operation names): bounded both in entries
// and in the size of what it holds, so no stream of distinct, large requests can grow the heap
// without limit. The oldest entry goes first.

export class BoundedMap<K, V> {
  private readonly entries = new Map<K, { value: V; size: number }>();
  private held = 0;

  constructor(
    private readonly maxEntries: number,
    /** The most the entries may weigh together, in the unit `sizeOf` returns. */
    private readonly maxSize: number,
    /** An entry's weight: for text, its length. */
    private readonly sizeOf: (key: K, value: V) => number,
  ) {}

  get(key: K): V | undefined {
    return this.entries.get(key)?.value;
  }

  /** Keeps the entry unless it alone weighs more than the whole budget. */
  set(key: K, value: V): void {
    this.delete(key);
    const size = this.sizeOf(key, value);
    if (size > this.maxSize) return;
    while (
      this.entries.size > 0 &&
      (this.entries.size >= this.maxEntries || this.held + size > this.maxSize)
    ) {
      this.delete(this.entries.keys().next().value!);
    }
    this.entries.set(key, { value, size });
    this.held += size;
  }

  delete(key: K): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.held -= entry.size;
  }

  clear(): void {
    this.entries.clear();
    this.held = 0;
  }

  get size(): number {
    return this.entries.size;
  }

  /** What the entries weigh together. */
  get weight(): number {
    return this.held;
  }
}
