/** The two xdplb objects and their maps, loaded by name from bpf/build. */
import { fileURLToPath } from 'node:url';
import { BpfObject, type LoadOptions, type MapSpec } from './object.js';
import { BALANCER_PROGRAM, BalancerMaps, DECAP_PROGRAM, DecapMaps } from './layout.js';
import type { BpfMap } from './map.js';

const BPF_BUILD_DIR = fileURLToPath(new URL('../../../../bpf/build/', import.meta.url));

export const BALANCER_OBJECT = process.env.XDPLB_BALANCER_OBJECT ?? `${BPF_BUILD_DIR}balancer.bpf.o`;
export const DECAP_OBJECT = process.env.XDPLB_DECAP_OBJECT ?? `${BPF_BUILD_DIR}decap.bpf.o`;

const PER_CPU = new Set<string>([BalancerMaps.vipStats, BalancerMaps.realStats, BalancerMaps.reasonStats, DecapMaps.stats]);
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

export function loadBalancer(opts: LoadOptions = {}, path = BALANCER_OBJECT): LoadedBalancer {
  const object = BpfObject.load(path, specs(BalancerMaps), opts);
  return { object, maps: mapSet(object, BalancerMaps), progFd: object.programFd(BALANCER_PROGRAM) };
}

export function loadDecap(opts: LoadOptions = {}, path = DECAP_OBJECT): LoadedDecap {
  const object = BpfObject.load(path, specs(DecapMaps), opts);
  return { object, maps: mapSet(object, DecapMaps), progFd: object.programFd(DECAP_PROGRAM) };
}
