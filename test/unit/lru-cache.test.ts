import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LruCache } from '../../src/lib/lru-cache.js';

test('counting entries: the least recently used is evicted, a recently read one stays', () => {
  const c = new LruCache<string, number>({ budget: 3 });
  c.set('a', 1);
  c.set('b', 2);
  c.set('c', 3);
  assert.equal(c.get('a'), 1); // a is now the most recent: b is the oldest
  c.set('d', 4);
  assert.equal(c.get('b'), undefined);
  assert.deepEqual([c.get('a'), c.get('c'), c.get('d')], [1, 3, 4]);
  assert.deepEqual(c.stats(), { entries: 3, weight: 3, hits: 4, misses: 1 });
});

test('by weight: eviction goes on until the total fits, and the total never exceeds the budget', () => {
  const c = new LruCache<string, string>({ budget: 100, weigh: (_k, v) => v.length });
  const sizes = [10, 40, 30, 20, 90, 5, 60, 35, 1, 99];
  sizes.forEach((n, i) => {
    c.set(`k${i}`, 'x'.repeat(n));
    assert.ok(c.stats().weight <= 100, `after entry ${i}: ${c.stats().weight}`);
  });
  // The last (99) and the one before it (1) fill it exactly.
  assert.deepEqual(c.stats(), { entries: 2, weight: 100, hits: 0, misses: 0 });
});

test('replacing an entry re-weighs it; one heavier than the budget is not kept; delete frees its weight', () => {
  const c = new LruCache<string, string>({ budget: 10, weigh: (_k, v) => v.length });
  c.set('a', 'xxxx');
  c.set('a', 'xx');
  assert.equal(c.stats().weight, 2);
  c.set('huge', 'x'.repeat(11));
  assert.equal(c.get('huge'), undefined);
  assert.equal(c.get('a'), 'xx');
  c.delete('a');
  assert.deepEqual({ entries: c.stats().entries, weight: c.stats().weight }, { entries: 0, weight: 0 });
});

test('a hot key survives any amount of churn through a full cache, which keeps its size', () => {
  const BUDGET = 100;
  const c = new LruCache<number, number>({ budget: BUDGET });
  c.set(-1, -1);
  for (let i = 0; i < 10 * BUDGET; i++) {
    c.set(i, i);
    if (i % (BUDGET / 2) === 0) assert.equal(c.get(-1), -1, `hot key lost after ${i} others`);
    assert.ok(c.stats().entries <= BUDGET);
  }
  // Emptied by deletes, then filled again past the budget: eviction still finds the oldest.
  for (let i = 0; i < 10 * BUDGET; i++) c.delete(i);
  c.delete(-1);
  for (let i = 0; i < 2 * BUDGET; i++) c.set(i, i);
  assert.equal(c.stats().entries, BUDGET);
  assert.equal(c.get(BUDGET - 1), undefined);
  assert.equal(c.get(BUDGET), BUDGET);
});

test('a full cache that only hits does not grow', () => {
  // A Map iterator kept for eviction pinned each table V8 rehashed to as hits reordered the entries.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const BUDGET = 4096;
  const HITS = 2_000_000;
  const MOST_GROWTH_BYTES = 8 * 2 ** 20; // the leak grew by hundreds of MB here
  const c = new LruCache<string, number>({ budget: BUDGET });
  const keys = Array.from({ length: BUDGET }, (_, i) => `k${i}`);
  for (let i = 0; i < BUDGET; i++) c.set(keys[i]!, i);
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < HITS; i++) c.get(keys[(i * 7) % BUDGET]!);
  gc();
  const growth = process.memoryUsage().heapUsed - before;
  assert.ok(growth < MOST_GROWTH_BYTES, `heap grew ${(growth / 2 ** 20).toFixed(1)} MiB`);
  assert.equal(c.stats().hits, HITS);
});
