/**
 * One cache-churn measurement in a fresh process (clean caches, --expose-gc):
 * argv[2] = "pool" (one 1000-real VIP changed per step, its reals drawn from a
 * pool of 4000: the agent under ordinary churn) or "distinct" (every step's
 * reals are new addresses: churn past every bound); argv[3] = steps.
 * Prints one JSON line: the heap retained after the churn, the heap one
 * validated copy of that VIP holds (the floor), and both caches' state.
 */
import { validate, vipCacheStats } from '../src/agent/dataplane/desired-state.js';
import { parseCacheStats } from '../src/lib/ip.js';
import { ENCAP } from '../test/support/balancer-harness.js';

const MODE = process.argv[2] === 'distinct' ? 'distinct' : 'pool';
const STEPS = Number(process.argv[3] ?? 2000);
const REALS = 1000;
const REAL_POOL = 4000;

const address = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const stateAt = (step: number) => ({
  encap: ENCAP,
  vips: [{ address: '198.19.0.1', port: 80, protocol: 'TCP' as const,
    reals: Array.from({ length: REALS }, (_, r) => ({ address: address(MODE === 'distinct' ? step * REALS + r : (r + step) % REAL_POOL), weight: 1 })) }],
});
const heap = () => {
  global.gc!();
  return process.memoryUsage().heapUsed;
};

const start = heap();
const kept = validate(stateAt(0)); // the floor: one validated VIP, held
const floor = heap() - start;
let peakWeight = 0;
for (let s = 1; s <= STEPS; s++) {
  validate(stateAt(s));
  peakWeight = Math.max(peakWeight, vipCacheStats().weight);
}
const retained = heap() - start;
process.stdout.write(`${JSON.stringify({ mode: MODE, steps: STEPS, floor, retained, peakWeight, vipCache: vipCacheStats(), parseCache: parseCacheStats(), kept: !!kept })}\n`);
