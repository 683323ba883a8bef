/**
 * One agent-reconcile measurement in a fresh process (for a clean RSS):
 * argv[2] = number of VIPs, 100 reals each. Prints one JSON line.
 */
import { loadBalancer } from '../src/bpf/programs.js';
import { Dataplane } from '../src/agent/dataplane/dataplane.js';
import type { VipSpec } from '../src/agent/dataplane/desired-state.js';
import { ENCAP } from '../test/support/balancer-harness.js';
import { timeMs } from './stats.js';

const VIPS = Number(process.argv[2] ?? 1);
const REALS_PER_VIP = 100;
const REAL_POOL = 4000;
const MIN_CAPACITY = 512;

const realAddress = (i: number) => `198.18.${64 + (i >> 8)}.${i & 255}`;
const vips: VipSpec[] = Array.from({ length: VIPS }, (_, v) => ({
  address: `198.19.${v >> 8}.${v & 255}`,
  port: 80,
  protocol: 'TCP',
  reals: Array.from({ length: REALS_PER_VIP }, (_, r) => ({ address: realAddress((v * 37 + r) % REAL_POOL), weight: 1 })),
}));

const rssMb = () => process.memoryUsage().rss / 2 ** 20;
const lb = loadBalancer({ capacity: { vips: Math.max(VIPS, MIN_CAPACITY), connectionTable: 65536 } });
const dp = new Dataplane(lb.maps);
const rssLoaded = rssMb();
const cold = timeMs(() => dp.apply({ encap: ENCAP, vips }));
const changed = vips.map((v, i) => (i === 0 ? { ...v, reals: v.reals.slice(1) } : v));
const change = timeMs(() => dp.apply({ encap: ENCAP, vips: changed }));
const noop = timeMs(() => dp.apply({ encap: ENCAP, vips: changed }));
// What an agent's sync asks first (cluster-vips.ts planVips): which VIPs fit, here all of them, unchanged.
const acceptNoop = timeMs(() => dp.accept({ encap: ENCAP, vips: changed }));
// A restarted agent: adopt the maps, then the same state.
const restarted = new Dataplane(lb.maps);
const adopt = timeMs(() => restarted.adopt());
const firstAfterAdopt = timeMs(() => restarted.apply({ encap: ENCAP, vips: changed }));
global.gc?.();
process.stdout.write(`${JSON.stringify({ vips: VIPS, cold, change, noop, acceptNoop, adopt, firstAfterAdopt, rssLoaded, rss: rssMb() })}\n`);
lb.object.close();
