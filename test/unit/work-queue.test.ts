import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkQueue } from '../../src/lib/work-queue.js';

test('a key queued many times while waiting is reconciled once; a failing key is retried', async () => {
  const seen: string[] = [];
  let failuresLeft = 2;
  const outcomes: boolean[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const q = new WorkQueue('test', async (key) => {
    seen.push(key);
    if (key === 'first') await gate; // hold the worker while others queue up
    if (key === 'flaky' && failuresLeft-- > 0) throw new Error('apiserver said no');
  }, { done: (_s, ok) => outcomes.push(ok) }, 1);
  q.start();
  q.add('first');
  await sleep(10);
  for (let i = 0; i < 5; i++) q.add('a');
  q.add('flaky');
  assert.equal(q.depth, 2);
  release();
  // Retries back off 250 ms, then 500 ms.
  for (let i = 0; i < 100 && seen.filter((k) => k === 'flaky').length < 3; i++) await sleep(20);
  await q.stop();
  assert.deepEqual(seen, ['first', 'a', 'flaky', 'flaky', 'flaky']);
  assert.deepEqual(outcomes, [true, true, false, false, true]);
});

test('with several workers, different keys overlap and one key never runs twice at once', async () => {
  const running = new Set<string>();
  let overlap = 0;
  let twice = 0;
  const runs: string[] = [];
  const q = new WorkQueue('test', async (key) => {
    if (running.has(key)) twice++;
    running.add(key);
    overlap = Math.max(overlap, running.size);
    runs.push(key);
    await sleep(30);
    running.delete(key);
  }, {}, 3);
  q.start();
  for (const k of ['a', 'b', 'c']) q.add(k);
  await sleep(10);
  q.add('a'); // while a runs: once more, after it
  for (let i = 0; i < 100 && runs.length < 4; i++) await sleep(10);
  await sleep(50);
  await q.stop();
  assert.equal(overlap, 3);
  assert.equal(twice, 0);
  assert.deepEqual([...runs].sort(), ['a', 'a', 'b', 'c']);
});

/** Polls until cond holds (or about 5 s pass), so no test depends on how fast the machine is. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 250 && !cond(); i++) await sleep(20);
}

test('a reconcile that returns a requeue wish is reconciled again, once, and then not', async () => {
  const runs: string[] = [];
  const q = new WorkQueue('test', async (key) => {
    runs.push(key);
    return runs.length === 1 ? { requeueAfterMs: 10 } : undefined; // a drain that ends: look again once
  }, {}, 1);
  q.start();
  q.add('vip');
  await until(() => runs.length >= 2);
  await sleep(50);
  await q.stop();
  assert.deepEqual(runs, ['vip', 'vip']);
});

test('a delayed key waits for the earliest request: a later one never postpones it', async () => {
  const runs: string[] = [];
  const q = new WorkQueue('test', async (key) => {
    runs.push(key);
  }, {}, 1);
  q.start();
  q.addAfter('soon-then-late', 10);
  q.addAfter('soon-then-late', 3_600_000); // covered by the earlier one
  q.addAfter('late-then-soon', 3_600_000);
  q.addAfter('late-then-soon', 10); // replaces the later one
  await until(() => runs.length >= 2);
  await q.stop();
  assert.deepEqual([...runs].sort(), ['late-then-soon', 'soon-then-late']);
  q.add('after-stop');
  q.addAfter('after-stop', 0);
  await sleep(20);
  assert.equal(q.depth, 0, 'a stopped queue takes no more keys');
});
