import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkQueue } from '../../src/controller/work-queue.js';

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
  }, { done: (_s, ok) => outcomes.push(ok) });
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
