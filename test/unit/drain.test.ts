import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitForTrafficToMove } from '../../src/agent/drain.js';

/** A clock that advances only when the code under test waits. */
function fakeTime() {
  let t = 0;
  return { now: () => t, wait: async (ms: number) => { t += ms; } };
}

test('traffic that stops after a while: quiet once the counter stayed still for the quiet period', async () => {
  const clock = fakeTime();
  // 100 packets per read until t = 3 s, then none.
  let n = 0n;
  const forwarded = () => (clock.now() < 3000 ? (n += 100n) : n);
  const r = await waitForTrafficToMove(forwarded, { maxMs: 60_000, quietMs: 2000, pollMs: 250, ...clock });
  assert.equal(r.quiet, true);
  // The last read that saw the counter move was at 2.75 s; 2 s of stillness after it.
  assert.equal(r.waitedMs, 4750);
  assert.ok(r.packets > 0n);
});

test('traffic that never stops: the bound ends the wait, and says so', async () => {
  const clock = fakeTime();
  let n = 0n;
  const r = await waitForTrafficToMove(() => (n += 1n), { maxMs: 4000, quietMs: 2000, pollMs: 250, ...clock });
  assert.equal(r.quiet, false);
  assert.equal(r.waitedMs, 4000);
});

test('no traffic at all: quiet after the quiet period, not before', async () => {
  const clock = fakeTime();
  const r = await waitForTrafficToMove(() => 7n, { maxMs: 60_000, quietMs: 2000, pollMs: 250, ...clock });
  assert.deepEqual(r, { quiet: true, waitedMs: 2000, packets: 0n });
});
