import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JITTER, probesPerSecond, Schedule } from '../../../src/agent/health/schedule.js';

const INTERVAL = 10_000;
const TICK = 20;

/** A seeded generator: the test sees the same jitter every run. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** Runs the schedule tick by tick from 0 to `until` ms; returns the probes per second bucket and each key's probe times. */
function simulate(keys: string[], until: number, maxPerSecond = 1e9) {
  const s = new Schedule(maxPerSecond, lcg(42));
  for (const k of keys) s.add(k, INTERVAL, 0);
  const perSecond = new Array<number>(Math.ceil(until / 1000)).fill(0);
  const times = new Map<string, number[]>();
  for (let now = 0; now < until; now += TICK) {
    for (const k of s.due(now)) {
      perSecond[Math.floor(now / 1000)]!++;
      times.set(k, [...(times.get(k) ?? []), now]);
    }
  }
  return { perSecond, times };
}

const KEYS = Array.from({ length: 20_000 }, (_, i) => `ns/vip-${i % 200}|198.18.${i >> 8}.${i & 255}`);

test('targets added at once spread evenly over the interval: no second gets much more than its share', () => {
  const { perSecond } = simulate(KEYS, 60_000);
  const fair = KEYS.length / (INTERVAL / 1000);
  // The first second lacks the jitter's delayed share of the probes before it: lower, never higher.
  assert.ok(perSecond[0]! <= fair * 1.15);
  for (const [s, n] of [...perSecond.entries()].slice(1)) assert.ok(n > fair * 0.85 && n < fair * 1.15, `second ${s}: ${n} probes, fair ${fair}`);
});

test('each target is probed once per interval, within the jitter', () => {
  const { times } = simulate(KEYS.slice(0, 2000), 60_000);
  for (const [k, t] of times) {
    for (let i = 1; i < t.length; i++) {
      const gap = t[i]! - t[i - 1]!;
      assert.ok(gap >= INTERVAL * (1 - JITTER) - TICK && gap <= INTERVAL * (1 + JITTER) + TICK, `${k}: ${gap} ms between probes`);
    }
  }
});

test('the cap holds back what is over it, and nothing is probed twice to catch up', () => {
  const cap = 500; // 20k targets every 10 s would be 2000/s
  const { perSecond, times } = simulate(KEYS, 30_000, cap);
  // At most a tenth of a second's worth leaves at once after a quiet spell (the first second).
  for (const [s, n] of perSecond.entries()) assert.ok(n <= cap * 1.1 + 1, `second ${s}: ${n} probes over the cap ${cap}`);
  for (const [k, t] of times) for (let i = 1; i < t.length; i++) assert.ok(t[i]! - t[i - 1]! >= INTERVAL / 2, `${k} probed again too soon`);
});

test('removing and re-adding targets keeps the heap consistent', () => {
  const s = new Schedule(1e9, lcg(1));
  for (const k of KEYS.slice(0, 1000)) s.add(k, INTERVAL, 0);
  for (const k of KEYS.slice(0, 1000).filter((_, i) => i % 3 === 0)) s.remove(k);
  assert.equal(s.size, 666);
  let last = -1;
  const seen = new Set<string>();
  for (let now = 0; now < INTERVAL * (1 + JITTER); now += TICK) {
    for (const k of s.due(now)) {
      assert.ok(now >= last);
      assert.ok(s.has(k));
      last = now;
      seen.add(k);
    }
  }
  assert.equal(seen.size, 666, 'every remaining target within its first interval');
});

test('probes per second at scale (README figures): 1000 VIPs x 100 backends, 10 s, over 1, 4 and 16 nodes', () => {
  assert.equal(probesPerSecond(100_000, 10, 1), 10_000);
  assert.equal(probesPerSecond(100_000, 10, 4), 2_500);
  assert.equal(probesPerSecond(100_000, 10, 16), 625);
});
