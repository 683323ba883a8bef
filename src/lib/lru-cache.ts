/**
 * A cache bounded by a budget, evicting the least recently used entries.
 * The budget counts entries, or whatever `weigh` measures (estimated bytes).
 *
 * Why LRU rather than clearing when full: a cleared cache throws away the
 * entries every pass uses along with the one-off ones, so above its size
 * nearly every lookup misses. Why LRU rather than two generations: for the
 * same memory, LRU keeps a working set as large as its whole budget, two
 * generations only half of it; the price, a list node per entry (~56 B),
 * is small beside what the caches here hold (an address, a validated VIP).
 *
 * Why a linked list rather than Map's insertion order (delete and set on a
 * hit, evict from the front): evicting through a fresh Map iterator walks
 * every deleted entry V8 has not yet compacted away (7x slower under
 * churn), and a kept iterator pins every table V8 rehashes to while it is
 * parked (a cache that only hits grew without bound).
 */

export interface LruCacheOptions<K, V> {
  /** The most total weight held. */
  budget: number;
  /**
   * An entry's weight, 1 when absent (the budget counts entries). Must
   * return the same for the same entry: it is called again on eviction
   * rather than stored beside each entry.
   */
  weigh?: (key: K, value: V) => number;
}

export interface LruCacheStats {
  entries: number;
  /** Total weight of the entries held (their count when there is no `weigh`). */
  weight: number;
  hits: number;
  misses: number;
}

/** A place in the use order: a ring through the cache's head. */
interface Link<K, V> {
  newer: Link<K, V>;
  older: Link<K, V>;
}

interface Entry<K, V> extends Link<K, V> {
  readonly key: K;
  readonly value: V;
}

const countOne = (): number => 1;

/** Values may not be undefined: get() returns undefined for a miss. */
export class LruCache<K, V extends NonNullable<unknown>> {
  private readonly entries = new Map<K, Entry<K, V>>();
  /** head.older is the most recently used entry, head.newer the least. */
  private readonly head: Link<K, V>;
  private readonly budget: number;
  private readonly weigh: (key: K, value: V) => number;
  private weight = 0;
  private hits = 0;
  private misses = 0;

  constructor(options: LruCacheOptions<K, V>) {
    this.budget = options.budget;
    this.weigh = options.weigh ?? countOne;
    const head = {} as Link<K, V>;
    head.newer = head;
    head.older = head;
    this.head = head;
  }

  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    if (this.head.older !== entry) {
      unlink(entry);
      this.linkNewest(entry);
    }
    return entry.value;
  }

  /** An entry heavier than the whole budget is not kept (it would evict everything for itself). */
  set(key: K, value: V): void {
    this.delete(key);
    const weight = this.weigh(key, value);
    if (weight > this.budget) return;
    const entry = { key, value } as Entry<K, V>;
    this.linkNewest(entry);
    this.entries.set(key, entry);
    this.weight += weight;
    while (this.weight > this.budget) this.remove(this.head.newer as Entry<K, V>);
  }

  delete(key: K): void {
    const entry = this.entries.get(key);
    if (entry) this.remove(entry);
  }

  stats(): LruCacheStats {
    return { entries: this.entries.size, weight: this.weight, hits: this.hits, misses: this.misses };
  }

  private linkNewest(entry: Entry<K, V>): void {
    entry.newer = this.head;
    entry.older = this.head.older;
    this.head.older.newer = entry;
    this.head.older = entry;
  }

  private remove(entry: Entry<K, V>): void {
    unlink(entry);
    this.entries.delete(entry.key);
    this.weight -= this.weigh(entry.key, entry.value);
  }
}

function unlink<K, V>(link: Link<K, V>): void {
  link.newer.older = link.older;
  link.older.newer = link.newer;
}
