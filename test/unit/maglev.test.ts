import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { maglevRing, murmur3, type MaglevBackend } from '../../src/lib/maglev.js';
import { RING_SIZE } from '../../src/bpf/consts.js';

const backends = (n: number, weight = (_i: number) => 1): MaglevBackend<number>[] =>
  Array.from({ length: n }, (_, i) => ({ key: `198.18.${i >> 8}.${i & 255}`, weight: weight(i), value: i }));

function shares(ring: Int32Array, n: number): number[] {
  const counts = new Array<number>(n).fill(0);
  for (const owner of ring) counts[owner]!++;
  return counts;
}

describe('maglev', () => {
  test('murmur3 matches the reference vectors', () => {
    assert.equal(murmur3('', 0), 0);
    assert.equal(murmur3('hello', 0), 613153351);
    assert.equal(murmur3('hello, world', 0), 345750399);
    assert.equal(murmur3('The quick brown fox jumps over the lazy dog', 0x9747b28c), 0x2fa826cd);
  });

  test('fills every slot with some backend', () => {
    const ring = maglevRing(backends(7), RING_SIZE);
    assert.equal(ring.length, RING_SIZE);
    assert.ok(ring.every((o) => o >= 0 && o < 7));
  });

  for (const n of [10, 100, 333, 1000]) {
    test(`equal weights: each of ${n} reals within 1% of the mean share`, () => {
      const counts = shares(maglevRing(backends(n), RING_SIZE), n);
      const mean = RING_SIZE / n;
      for (const c of counts) {
        // "within 1%" of the ring: a share differs from the mean by < 1% of the slots
        assert.ok(Math.abs(c - mean) / RING_SIZE < 0.01, `share ${c} vs mean ${mean.toFixed(1)}`);
        // and Maglev's own guarantee: ceil/floor of the mean
        assert.ok(Math.abs(c - mean) <= 1, `share ${c} not within one slot of mean ${mean.toFixed(1)}`);
      }
    });
  }

  for (const n of [10, 100, 1000]) {
    test(`removing one of ${n} reals moves at most 1/N + 1% of slots`, () => {
      const all = backends(n);
      const before = maglevRing(all, RING_SIZE);
      const removed = Math.floor(n / 2);
      const rest = all.filter((_, i) => i !== removed);
      const after = maglevRing(rest, RING_SIZE);
      // after's owners index the sorted remaining list; compare by key.
      const sortedBefore = [...all].sort((a, b) => (a.key < b.key ? -1 : 1)).map((b) => b.key);
      const sortedAfter = [...rest].sort((a, b) => (a.key < b.key ? -1 : 1)).map((b) => b.key);
      let moved = 0;
      for (let i = 0; i < RING_SIZE; i++) if (sortedBefore[before[i]!] !== sortedAfter[after[i]!]) moved++;
      const limit = RING_SIZE * (1 / n + 0.01);
      assert.ok(moved <= limit, `moved ${moved} slots, limit ${limit.toFixed(0)}`);
      // every slot of the removed real had to move
      const removedKey = all[removed]!.key;
      const owned = [...before].filter((o) => sortedBefore[o] === removedKey).length;
      assert.ok(moved >= owned, `moved ${moved} < ${owned} slots of the removed real`);
    });
  }

  test('weights are respected within 1%', () => {
    const weights = [1, 2, 3, 5, 10, 1, 4];
    const ring = maglevRing(backends(weights.length, (i) => weights[i]!), RING_SIZE);
    const counts = shares(ring, weights.length);
    const total = weights.reduce((a, b) => a + b, 0);
    weights.forEach((w, i) => {
      const expected = (w / total) * RING_SIZE;
      assert.ok(Math.abs(counts[i]! - expected) / RING_SIZE < 0.01, `real ${i}: ${counts[i]} vs ${expected.toFixed(0)}`);
    });
  });

  test('weight 0 keeps a backend out of the ring; all zero gives an empty ring', () => {
    const ring = maglevRing(backends(4, (i) => (i === 2 ? 0 : 1)), RING_SIZE);
    assert.ok(!ring.includes(2));
    assert.ok(maglevRing(backends(3, () => 0), RING_SIZE).every((o) => o === -1));
    assert.ok(maglevRing([], RING_SIZE).every((o) => o === -1));
  });

  test('the same backends in any order give the same ring', () => {
    const list = backends(50, (i) => 1 + (i % 3));
    const reversed = [...list].reverse();
    const shuffled = [...list].sort((a, b) => (a.key.length * 31 + a.value) % 17 - ((b.key.length * 31 + b.value) % 17));
    const ring = maglevRing(list, RING_SIZE);
    assert.deepEqual(maglevRing(reversed, RING_SIZE), ring);
    assert.deepEqual(maglevRing(shuffled, RING_SIZE), ring);
  });

  test('rejects bad input', () => {
    assert.throws(() => maglevRing(backends(3), 65536), /not prime/);
    assert.throws(() => maglevRing([...backends(2), ...backends(1)], RING_SIZE), /listed twice/);
    assert.throws(() => maglevRing(backends(2, () => -1), RING_SIZE), /weight/);
    assert.throws(() => maglevRing(backends(2, () => Number.NaN), RING_SIZE), /weight/);
  });
});
