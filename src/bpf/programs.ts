/** The two xdplb objects and their maps, loaded by name from bpf/build. */
import { fileURLToPath } from 'node:url';
import { BpfObject, type LoadOptions, type MapSpec } from '../libbpf/bpf-object.js';
import { BALANCER_PROGRAM, BalancerMaps, DECAP_PROGRAM, DecapMaps, NO_REAL_ID, RING_SIZE } from './consts.js';
import type { BpfMap } from '../libbpf/bpf-map.js';

const BPF_BUILD_DIR = fileURLToPath(new URL('../../../bpf/build/', import.meta.url));

export const BALANCER_OBJECT = process.env.XDPLB_BALANCER_OBJECT ?? `${BPF_BUILD_DIR}balancer.bpf.o`;
export const DECAP_OBJECT = process.env.XDPLB_DECAP_OBJECT ?? `${BPF_BUILD_DIR}decap.bpf.o`;

const PER_CPU = new Set<string>([BalancerMaps.vipStats, BalancerMaps.realStats, BalancerMaps.reasonStats,
  BalancerMaps.traceBudget, BalancerMaps.traceStats, DecapMaps.stats]);
const specs = (names: Record<string, string>): MapSpec[] =>
  Object.values(names).map((name) => ({ name, perCpu: PER_CPU.has(name) }));

export type BalancerMapSet = { [K in keyof typeof BalancerMaps]: BpfMap };
export type DecapMapSet = { [K in keyof typeof DecapMaps]: BpfMap };

export interface LoadedBalancer {
  object: BpfObject;
  maps: BalancerMapSet;
  progFd: number;
}

export interface LoadedDecap {
  object: BpfObject;
  maps: DecapMapSet;
  progFd: number;
}

function mapSet<N extends Record<string, string>>(object: BpfObject, names: N): { [K in keyof N]: BpfMap } {
  return Object.fromEntries(Object.entries(names).map(([k, name]) => [k, object.map(name)])) as {
    [K in keyof N]: BpfMap;
  };
}

/** Map capacities chosen at load time; absent: the compiled defaults. */
export interface BalancerCapacity {
  vips?: number;
  /** Real ids, including the reserved id 0. */
  reals?: number;
  /** Connection table entries. */
  lru?: number;
}

/** vip_num * RING_SIZE must stay a u32 ring index. */
export const MAX_VIP_CAPACITY = Math.floor(0xffffffff / RING_SIZE);

function capacityEntries(c: BalancerCapacity): Record<string, number> {
  const out: Record<string, number> = {};
  if (c.vips !== undefined) {
    if (!Number.isInteger(c.vips) || c.vips < 1 || c.vips > MAX_VIP_CAPACITY) {
      throw new Error(`VIP capacity ${c.vips} is not an integer in 1..${MAX_VIP_CAPACITY}`);
    }
    for (const m of [BalancerMaps.vips, BalancerMaps.vipAddrs, BalancerMaps.vipStats]) out[m] = c.vips;
    out[BalancerMaps.ring] = c.vips * RING_SIZE;
  }
  if (c.reals !== undefined) {
    if (!Number.isInteger(c.reals) || c.reals < NO_REAL_ID + 2) throw new Error(`real capacity ${c.reals} is not an integer >= ${NO_REAL_ID + 2}`);
    for (const m of [BalancerMaps.reals, BalancerMaps.realStats]) out[m] = c.reals;
  }
  if (c.lru !== undefined) {
    if (!Number.isInteger(c.lru) || c.lru < 1) throw new Error(`connection table size ${c.lru} is not a positive integer`);
    out[BalancerMaps.connTable] = c.lru;
  }
  return out;
}

export function loadBalancer(opts: LoadOptions & { capacity?: BalancerCapacity } = {}, path = BALANCER_OBJECT): LoadedBalancer {
  const maxEntries = { ...opts.maxEntries, ...capacityEntries(opts.capacity ?? {}) };
  const object = BpfObject.load(path, specs(BalancerMaps), { ...opts, maxEntries });
  return { object, maps: mapSet(object, BalancerMaps), progFd: object.programFd(BALANCER_PROGRAM) };
}

export function loadDecap(opts: LoadOptions = {}, path = DECAP_OBJECT): LoadedDecap {
  const object = BpfObject.load(path, specs(DecapMaps), opts);
  return { object, maps: mapSet(object, DecapMaps), progFd: object.programFd(DECAP_PROGRAM) };
}
