/**
 * The maps' memory estimate (src/bpf/map-memory.ts), which the agent's memory limit holds,
 * against what this kernel charges for the real balancer object: the `memlock:` line of each
 * map's /proc/self/fdinfo (the bytes the kernel accounts to the map), which the estimate must
 * not be below nor far above.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { mapBytes } from '../../src/bpf/map-memory.js';
import { BALANCER_MAPS, entriesOf, type MapCapacities } from '../../src/bpf/maps.js';
import { loadBalancer } from '../../src/bpf/programs.js';
import { possibleCpus } from '../../src/libbpf/libbpf.js';
import { requireKernel } from '../support/kernel.js';

/** How far above the kernel's figure the estimate of all the maps may be (each map's struct is counted as a page). */
const MAX_OVERESTIMATE = 1.1;

/** Small, so loading is quick, yet each one's ring or connection table outweighs the fixed maps (the 4 MiB trace ring). */
const CAPACITIES: MapCapacities[] = [
  { vips: 1, reals: 2, connectionTable: 1024 },
  { vips: 8, reals: 100, connectionTable: 10000 },
  { vips: 32, reals: 1024, connectionTable: 65536 },
];
function memlockBytes(fd: number): number {
  const fdinfo = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const m = /^memlock:\s+(\d+)$/m.exec(fdinfo);
  if (!m) throw new Error(`/proc/self/fdinfo/${fd} has no memlock line: is this a BPF map? (${fdinfo.split('\n')[0]})`);
  return Number(m[1]);
}

describe('the maps\' memory estimate against what the kernel charges', () => {
  for (const capacities of CAPACITIES) {
    test(`${capacities.vips} VIPs, ${capacities.reals} real slots, ${capacities.connectionTable} connections`, (t) => {
      if (!requireKernel(t)) return;
      const lb = loadBalancer({ capacity: capacities });
      try {
        let kernel = 0;
        let estimate = 0;
        for (const [key, m] of Object.entries(BALANCER_MAPS)) {
          const charged = memlockBytes(lb.maps[key as keyof typeof BALANCER_MAPS].fd);
          const estimated = mapBytes(m, entriesOf(m, capacities), possibleCpus);
          assert.ok(estimated >= charged, `${m.name}: estimate ${estimated} bytes below the kernel's ${charged}`);
          kernel += charged;
          estimate += estimated;
        }
        const ratio = estimate / kernel;
        t.diagnostic(`kernel ${kernel} bytes, estimate ${estimate} (${ratio.toFixed(4)}x) on ${possibleCpus} possible CPUs`);
        assert.ok(ratio <= MAX_OVERESTIMATE, `estimate ${estimate} bytes is ${ratio.toFixed(3)}x the kernel's ${kernel}, over ${MAX_OVERESTIMATE}x`);
      } finally {
        lb.object.close();
      }
    });
  }
});

