import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type HealthState, initialHealth, observe } from '../../../src/agent/health/thresholds.js';

const T = { unhealthyThreshold: 3, healthyThreshold: 2 };

function run(s: HealthState, results: boolean[], from = 0): { state: HealthState; changes: number[] } {
  const changes: number[] = [];
  results.forEach((ok, i) => {
    const r = observe(s, ok, T, from + i, ok ? undefined : `fail ${i}`);
    s = r.state;
    if (r.changed) changes.push(from + i);
  });
  return { state: s, changes };
}

test('N failures in a row make a healthy backend unhealthy, at the Nth, with the last reason', () => {
  const { state, changes } = run(initialHealth(0), [false, false, false]);
  assert.deepEqual(changes, [2]);
  assert.deepEqual(state, { healthy: false, streak: 0, since: 2, reason: 'fail 2' });
});

test('a success between failures starts the count again', () => {
  const { state, changes } = run(initialHealth(0), [false, false, true, false, false, true, false, false]);
  assert.deepEqual(changes, []);
  assert.equal(state.healthy, true);
  assert.equal(state.streak, 2);
});

test('M successes in a row bring it back; a failure between them starts again', () => {
  const down = run(initialHealth(0), [false, false, false]).state;
  const { state, changes } = run(down, [true, false, true, true], 10);
  assert.deepEqual(changes, [13]);
  assert.deepEqual(state, { healthy: true, streak: 0, since: 13 });
});

test('a backend known unhealthy (judged by another node) starts unhealthy and needs M successes', () => {
  const s = initialHealth(50, { since: 7, reason: 'timeout' });
  assert.deepEqual(s, { healthy: false, streak: 0, since: 7, reason: 'timeout' });
  const one = observe(s, true, T, 51);
  assert.equal(one.changed, false);
  assert.equal(observe(one.state, true, T, 52).changed, true);
});

test('thresholds of 1 change at the first result either way', () => {
  const t1 = { unhealthyThreshold: 1, healthyThreshold: 1 };
  const down = observe(initialHealth(0), false, t1, 1, 'x');
  assert.equal(down.changed, true);
  assert.equal(observe(down.state, true, t1, 2).changed, true);
});
