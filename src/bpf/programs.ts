/** The xdplb objects and their maps, loaded by name from bpf/build. */
import { fileURLToPath } from 'node:url';
import { BpfObject, type LoadOptions, type MapSpec } from '../libbpf/bpf-object.js';
import type { BpfMap } from '../libbpf/bpf-map.js';
import { BACKEND_FROM_NIC_PROGRAM, BACKEND_FROM_POD_PROGRAM, BACKEND_TO_POD_PROGRAM, BALANCER_PROGRAM, DECAP_PROGRAM } from './consts.js';
import { BACKEND_MAPS, type BackendCapacities, BALANCER_MAPS, type MapCapacities, DECAP_MAPS, isPerCpu, type Schema } from './maps.js';
import { loadSizes } from './pinned-layout.js';

const BPF_BUILD_DIR = fileURLToPath(new URL('../../../bpf/build/', import.meta.url));

export const BALANCER_OBJECT = process.env.XDPLB_BALANCER_OBJECT ?? `${BPF_BUILD_DIR}balancer.bpf.o`;
export const DECAP_OBJECT = process.env.XDPLB_DECAP_OBJECT ?? `${BPF_BUILD_DIR}decap.bpf.o`;
export const BACKEND_OBJECT = process.env.XDPLB_BACKEND_OBJECT ?? `${BPF_BUILD_DIR}backend.bpf.o`;

/** The kernel maps of a loaded program, by their schema's keys. */
export type KernelMapSet<S extends Schema> = { [K in keyof S]: BpfMap };
export type BalancerMapSet = KernelMapSet<typeof BALANCER_MAPS>;
export type DecapMapSet = KernelMapSet<typeof DECAP_MAPS>;
export type BackendMapSet = KernelMapSet<typeof BACKEND_MAPS>;

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

/** The backend object: its tc programs for a pod's host-side veth, egress (toward the pod) and ingress (from it). */
export interface LoadedBackend {
  object: BpfObject;
  maps: BackendMapSet;
  toPodFd: number;
  fromPodFd: number;
  /** Node addressing: tcx ingress of the node's NIC. */
  fromNicFd: number;
}

/** Map capacities chosen at load time; absent: the compiled defaults. */
export type BalancerCapacity = Partial<MapCapacities>;

const specs = (schema: Schema): MapSpec[] => Object.values(schema).map((m) => ({ name: m.name, perCpu: isPerCpu(m) }));

function mapSet<S extends Schema>(object: BpfObject, schema: S): KernelMapSet<S> {
  return Object.fromEntries(Object.entries(schema).map(([k, m]) => [k, object.map(m.name)])) as KernelMapSet<S>;
}

export function loadBalancer(opts: LoadOptions & { capacity?: BalancerCapacity } = {}, path = BALANCER_OBJECT): LoadedBalancer {
  const maxEntries = { ...opts.maxEntries, ...loadSizes(BALANCER_MAPS, opts.capacity ?? {}) };
  const object = BpfObject.load(path, specs(BALANCER_MAPS), { ...opts, maxEntries });
  return { object, maps: mapSet(object, BALANCER_MAPS), progFd: object.programFd(BALANCER_PROGRAM) };
}

export function loadDecap(opts: LoadOptions = {}, path = DECAP_OBJECT): LoadedDecap {
  const object = BpfObject.load(path, specs(DECAP_MAPS), opts);
  return { object, maps: mapSet(object, DECAP_MAPS), progFd: object.programFd(DECAP_PROGRAM) };
}

/** The backend object; capacity: its flow table's size (absent: the compiled default). */
export function loadBackend(opts: LoadOptions & { capacity?: Partial<BackendCapacities> } = {}, path = BACKEND_OBJECT): LoadedBackend {
  const maxEntries = { ...opts.maxEntries, ...loadSizes(BACKEND_MAPS, opts.capacity ?? {}) };
  const object = BpfObject.load(path, specs(BACKEND_MAPS), { ...opts, maxEntries });
  return {
    object,
    maps: mapSet(object, BACKEND_MAPS),
    toPodFd: object.programFd(BACKEND_TO_POD_PROGRAM),
    fromPodFd: object.programFd(BACKEND_FROM_POD_PROGRAM),
    fromNicFd: object.programFd(BACKEND_FROM_NIC_PROGRAM),
  };
}
