/**
 * Run in a memory cgroup of its own (test/bpf/map-memory.test.ts): loads the balancer object at
 * the capacities given and prints, as JSON, the bytes the cgroup was charged for it. A first
 * load at the smallest capacities charges what any load costs once (libbpf, the object file's
 * pages), so the figure is the second load's: the maps and the program. The first stays open
 * until then: the kernel frees a closed map's memory later (deferred), which would be counted off.
 *   node balancer-charge.js <the cgroup's usage file> '<capacities JSON>'
 */
import { readFileSync } from 'node:fs';
import type { MapCapacities } from '../../src/bpf/maps.js';
import { loadBalancer } from '../../src/bpf/programs.js';

const [usageFile, capacitiesJson] = process.argv.slice(2);
if (!usageFile || !capacitiesJson) throw new Error('usage: balancer-charge.js <memory cgroup usage file> <capacities JSON>');
const usage = () => Number(readFileSync(usageFile, 'utf8'));

const first = loadBalancer({ capacity: { vips: 1, reals: 2, connectionTable: 1024 } });
const before = usage();
const lb = loadBalancer({ capacity: JSON.parse(capacitiesJson) as MapCapacities });
const chargedBytes = usage() - before;
lb.object.close();
first.object.close();
process.stdout.write(`${JSON.stringify({ chargedBytes })}\n`);
