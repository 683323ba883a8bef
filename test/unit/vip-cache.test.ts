/** The cache of validated VIPs: hits skip validation; bounded by estimated bytes, least recently used out first. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ESTIMATED_BYTES_PER_REAL,
  isValid,
  validate,
  VIP_CACHE_BUDGET_BYTES,
  vipCacheStats,
  type VipSpec,
} from '../../src/agent/dataplane/desired-state.js';
import { ENCAP, reals, vip } from '../support/fixtures.js';

/** n reals in 10.<net>.0.0/16 (the fixture's reals() numbers only the last octet). */
const realsIn = (net: number, n: number) =>
  Array.from({ length: n }, (_, i) => ({ address: `10.${net}.${i >> 8}.${i & 255}`, weight: 1 }));

test('a VIP validated before is not validated again: the same result comes back', () => {
  const state = { encap: ENCAP, vips: [vip('198.19.40.1'), vip('198.19.40.2', reals(50))] };
  const first = validate(state);
  const misses = vipCacheStats().misses;
  const again = validate({ encap: ENCAP, vips: state.vips.map((v) => ({ ...v, reals: v.reals.map((r) => ({ ...r })) })) });
  assert.equal(vipCacheStats().misses, misses, 'equal input, no validation');
  again.vips.forEach((v, i) => assert.equal(v, first.vips[i]));
  validate({ encap: ENCAP, vips: [vip('198.19.40.2', reals(49))] });
  assert.equal(vipCacheStats().misses, misses + 1, 'a changed VIP is validated');
});

test('churn through large VIPs keeps the estimated bytes under the budget, and a VIP in use stays cached', () => {
  const REALS = 1000;
  const pool = realsIn(40, REALS);
  // Every step a distinct large VIP (its weights change), as a VIP whose pods churn would be.
  const churned = (step: number): VipSpec => vip('198.19.41.1', pool.map((r) => ({ ...r, weight: step + 1 })));
  const inUse = vip('198.19.41.2', realsIn(41, REALS));
  const perEntry = REALS * ESTIMATED_BYTES_PER_REAL;
  const STEPS = Math.ceil((2 * VIP_CACHE_BUDGET_BYTES) / perEntry); // twice what fits
  const USED_EVERY = 20;
  validate({ encap: ENCAP, vips: [inUse] });
  const start = vipCacheStats();
  for (let step = 0; step < STEPS; step++) {
    validate({ encap: ENCAP, vips: [churned(step)] });
    assert.ok(vipCacheStats().weight <= VIP_CACHE_BUDGET_BYTES, `step ${step}: ${vipCacheStats().weight} bytes`);
    if (step % USED_EVERY === 0) {
      const misses = vipCacheStats().misses;
      assert.ok(isValid(validate({ encap: ENCAP, vips: [inUse] }).vips[0]!));
      assert.equal(vipCacheStats().misses, misses, `the VIP in use was evicted by step ${step}`);
    }
  }
  const end = vipCacheStats();
  assert.equal(end.misses - start.misses, STEPS);
  assert.ok(end.entries < start.entries + STEPS, 'old versions were evicted');
  // The oldest versions went first: the first churned step is validated again, the last is not.
  const misses = end.misses;
  validate({ encap: ENCAP, vips: [churned(STEPS - 1)] });
  assert.equal(vipCacheStats().misses, misses);
  validate({ encap: ENCAP, vips: [churned(0)] });
  assert.equal(vipCacheStats().misses, misses + 1);
});
