/**
 * The agent container's memory request and limit, from its XdpBalancer's
 * capacities (README, "Agent memory"). The BPF maps are charged to the memory
 * cgroup of the agent that made them (Linux 5.11+), so they are part of both:
 *
 *   limit   = NODE_PEAK + connectionTable x COPY_BYTES_PER_CONNECTION + maps x MAP_HEADROOM
 *   request = NODE_STEADY + maps
 *
 * where maps is src/bpf/map-memory.ts's estimate at ASSUMED_NODE_CPUS.
 */
import type { XdpBalancerCapacities } from '../api/xdpbalancer.js';
import { schemaBytes } from '../bpf/map-memory.js';
import { BALANCER_MAPS, DEFAULT_CAPACITIES, type MapCapacities, realSlotsFor } from '../bpf/maps.js';

const MIB = 2 ** 20;

/**
 * Possible CPUs the per-CPU maps are sized for. The controller does not know its nodes, and one
 * DaemonSet template serves them all; a per-CPU term sized for a large node costs little (about
 * 75 KiB per CPU at the default capacities, 16 B per real slot per CPU in general), while sizing
 * it for the nodes seen would roll every agent whenever a larger node joins.
 */
export const ASSUMED_NODE_CPUS = 256;

/**
 * The agent process itself at its peak: 456 MB RSS measured (bench/README.md, "Scale": 1000
 * VIPs x 100 pods, cold, Node 26), rounded up to the next power of two.
 */
export const NODE_PEAK_BYTES = 512 * MIB;

/**
 * The agent process programmed and idle: 150-159 MB RSS after 1000 VIPs x 100 reals
 * (bench/README.md, "Agent reconcile"), with room for the health prober's state.
 */
export const NODE_STEADY_BYTES = 256 * MIB;

/**
 * A capacities change reads the old connection table into the agent's memory before it copies
 * it: about 150 MB for a million entries (README, "Capacities").
 */
export const COPY_BYTES_PER_CONNECTION = 150;

/**
 * Over the maps' estimate, for what loading charges besides them (the program, its BTF, the LRU's
 * per-CPU lists) and a node with more CPUs than assumed. Measured (test/bpf/map-memory.test.ts):
 * the estimate is 0.2-1% over the maps' own figures, a loader's cgroup is charged 0.4% over it.
 */
export const MAP_HEADROOM = 1.1;

/** The capacities an XdpBalancer's spec gives the agents' maps (absent: the compiled defaults). */
export function mapCapacitiesOf(caps: XdpBalancerCapacities = {}): MapCapacities {
  return {
    vips: caps.vips ?? DEFAULT_CAPACITIES.vips,
    reals: caps.reals === undefined ? DEFAULT_CAPACITIES.reals : realSlotsFor(caps.reals),
    connectionTable: caps.connectionTable ?? DEFAULT_CAPACITIES.connectionTable,
  };
}

export interface AgentMemory {
  requestBytes: number;
  limitBytes: number;
}

export function agentMemory(caps: XdpBalancerCapacities = {}): AgentMemory {
  const c = mapCapacitiesOf(caps);
  const maps = schemaBytes(BALANCER_MAPS, c, ASSUMED_NODE_CPUS);
  return {
    requestBytes: NODE_STEADY_BYTES + maps,
    limitBytes: NODE_PEAK_BYTES + c.connectionTable * COPY_BYTES_PER_CONNECTION + maps * MAP_HEADROOM,
  };
}

/**
 * V8's old-space limit for the agent: its share of the limit (NODE_PEAK_BYTES). Without it V8
 * sizes its heap from the memory it sees, which under a cgroup limit that is mostly BPF maps is not
 * the agent's to use: the heap would fail or be killed at a size no one chose.
 */
export const AGENT_HEAP_MIB = NODE_PEAK_BYTES / MIB;

/** Bytes as a Kubernetes quantity in whole MiB, rounded up ("898Mi"). */
export const mebibytes = (bytes: number): string => `${Math.ceil(bytes / MIB)}Mi`;
