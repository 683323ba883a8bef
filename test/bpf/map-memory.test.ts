/**
 * The maps' memory estimate (src/bpf/map-memory.ts), which the agent's memory limit holds,
 * against what this kernel charges for the real balancer object: the `memlock:` line of each
 * map's /proc/self/fdinfo (the bytes the kernel accounts to the map), which the estimate must
 * not be below nor far above; and the memory cgroup of a process that loads it, charged for
 * the maps and the program, within the estimate and the agent limit's headroom.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { mapBytes, schemaBytes } from '../../src/bpf/map-memory.js';
import { BALANCER_MAPS, entriesOf, type MapCapacities } from '../../src/bpf/maps.js';
import { loadBalancer } from '../../src/bpf/programs.js';
import { possibleCpus } from '../../src/libbpf/libbpf.js';
import { MAP_HEADROOM } from '../../src/controller/agent-memory.js';
import { requireKernel } from '../support/kernel.js';
import { MemoryCgroup } from '../support/memory-cgroup.js';

/** How far above the kernel's figure the estimate of all the maps may be (each map's struct is counted as a page). */
const MAX_OVERESTIMATE = 1.1;

/** Small, so loading is quick, yet each one's ring or connection table outweighs the fixed maps (the 4 MiB trace ring). */
const CAPACITIES: MapCapacities[] = [
  { vips: 1, reals: 2, connectionTable: 1024 },
  { vips: 8, reals: 100, connectionTable: 10000 },
  { vips: 32, reals: 1024, connectionTable: 65536 },
];
/** Far over what loading any of them takes: the cgroup is there to be measured, not to limit. */
const CGROUP_LIMIT_BYTES = 2 ** 30;
const CHARGE_SCRIPT = fileURLToPath(new URL('../support/balancer-charge.js', import.meta.url));

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

test('the memory cgroup of the process that loads the object is charged for its maps', (t) => {
  if (!requireKernel(t)) return;
  const capacities = CAPACITIES[CAPACITIES.length - 1]!;
  const estimate = schemaBytes(BALANCER_MAPS, capacities, possibleCpus);
  const cgroup = MemoryCgroup.create(`xdplb-map-memory-${process.pid}`, CGROUP_LIMIT_BYTES);
  try {
    const [cmd, args] = cgroup.wrap([process.execPath, CHARGE_SCRIPT, cgroup.usageFile, JSON.stringify(capacities)]);
    const { chargedBytes } = JSON.parse(execFileSync(cmd, args, { encoding: 'utf8' })) as { chargedBytes: number };
    const ratio = chargedBytes / estimate;
    t.diagnostic(`cgroup charged ${chargedBytes} bytes, maps' estimate ${estimate} (${ratio.toFixed(4)}x)`);
    // Below the estimate by the estimate's own margin at most: the maps are charged to the loader.
    assert.ok(chargedBytes * MAX_OVERESTIMATE >= estimate, `charged ${chargedBytes} bytes, far below the maps' ${estimate}: are BPF maps charged to the cgroup?`);
    // The program and its BTF come on top of the maps; the limit's headroom is for them.
    assert.ok(ratio <= MAP_HEADROOM, `charged ${chargedBytes} bytes, ${ratio.toFixed(3)}x the maps' estimate: over the agent limit's ${MAP_HEADROOM}x headroom`);
  } finally {
    cgroup.remove();
  }
});
