/**
 * The schema of every map of the programs (bpf/include/xdplb_maps.h,
 * bpf/decap.bpf.c and bpf/backend.bpf.c): name in the object, BPF map type and flags, key and value
 * codec, and the capacity its size follows. Loading (max_entries overrides),
 * typed handles, in-memory maps and test/bpf/layout.test.ts all derive from it.
 */
import type { IpAddress } from '../lib/ip.js';
import { MemoryMap } from '../libbpf/memory-map.js';
import type { RawMap } from '../libbpf/raw-map.js';
import { type Codec, TypedMap, U32Windows } from '../libbpf/typed-map.js';
import {
  BACKEND_FLOW_TABLE_SIZE,
  BACKEND_REASONS,
  CONNECTION_TABLE_SIZE,
  DECAP_REASONS,
  HALF_OPEN_TABLE_DIVISOR,
  QUIC_CONST,
  MAX_BACKEND_NODE_SERVICES,
  MAX_BACKEND_SERVICES,
  MAX_DECAP_ADDRS,
  MAX_REALS,
  MAX_VIPS,
  NO_REAL_ID,
  REASONS,
  RING_SIZE,
  TRACE_COUNTERS,
  TRACE_MAX_RULES,
  TRACE_RING_BYTES,
} from './consts.js';
import {
  AddrCodec,
  type CtlConfig,
  CtlConfigCodec,
  FlowKeyLayout,
  FlowValueLayout,
  IcmpBudgetLayout,
  NoCodec,
  opaqueCodec,
  type QuicServerKey,
  QuicServerKeyCodec,
  type RealStats,
  RealSlotCodec,
  RealStatsCodec,
  U32Codec,
  U64Codec,
  type VipKey,
  VipKeyCodec,
  type VipMeta,
  VipMetaCodec,
  type VipStats,
  VipStatsCodec,
} from './structs.js';
import { TraceBudgetLayout, TraceConfigLayout } from './trace-structs.js';
import {
  type BackendFlow, BackendFlowCodec, type BackendNodeSvc, type ClientFlow, ClientFlowCodec, BackendNodeSvcCodec, type BackendSvcKey, BackendSvcKeyCodec, type Endpoint, EndpointCodec,
} from './backend-structs.js';

/** enum bpf_map_type values of the types xdplb uses. */
export const MapType = { HASH: 1, ARRAY: 2, PERCPU_ARRAY: 6, LRU_HASH: 9, RINGBUF: 27 } as const;
export type MapType = (typeof MapType)[keyof typeof MapType];
export const BPF_F_NO_COMMON_LRU = 1 << 1;
export const BPF_F_MMAPABLE = 1 << 10;

/** The capacities chosen at load time; each map's size follows one of them, or is fixed. */
export interface MapCapacities {
  vips: number;
  /** Real id slots, including the reserved id 0. */
  reals: number;
  connectionTable: number;
}

/** The backend program's capacities (a node hosting backend pods), chosen at load time like the balancer's. */
export interface BackendCapacities {
  /** backend_flows entries: flows to the node's pods whose replies are rewritten. */
  backendFlows: number;
}
export const DEFAULT_BACKEND_CAPACITIES: BackendCapacities = { backendFlows: BACKEND_FLOW_TABLE_SIZE };

/** Every capacity a map's size can follow. */
export type Capacities = MapCapacities & BackendCapacities;
/** A map's size: a capacity times `times`, divided by `divisor` (rounded up), or fixed. */
export type Scale = { with: keyof Capacities; times?: number; divisor?: number } | { fixed: number };

export interface MapSchema<K, V> {
  /** Name in the object (the kernel keeps 15 characters). */
  name: string;
  type: MapType;
  flags: number;
  key: Codec<K>;
  value: Codec<V>;
  scale: Scale;
}

function map<K, V>(name: string, type: MapType, key: Codec<K>, value: Codec<V>, scale: Scale, flags = 0): MapSchema<K, V> {
  return { name, type, flags, key, value, scale };
}

export const isPerCpu = (m: MapSchema<unknown, unknown>): boolean => m.type === MapType.PERCPU_ARRAY;

// ---- Real ids: id 0 is reserved ("no real"). ----
/** The first id a real can have. */
export const FIRST_REAL_ID = NO_REAL_ID + 1;
/** Reals a reals map of this many slots holds. */
export const usableRealIds = (slots: number): number => slots - FIRST_REAL_ID;
/** Slots a reals map needs to hold this many reals. */
export const realSlotsFor = (reals: number): number => reals + FIRST_REAL_ID;

export const DEFAULT_CAPACITIES: MapCapacities = { vips: MAX_VIPS, reals: MAX_REALS, connectionTable: CONNECTION_TABLE_SIZE };

const perVip: Scale = { with: 'vips' };
const perRealId: Scale = { with: 'reals' };

export const BALANCER_MAPS = {
  vips: map<VipKey, VipMeta>('vip_map', MapType.HASH, VipKeyCodec, VipMetaCodec, perVip),
  /** Every VIP address -> VIP_ADDR_F_* flags: what the program does for it beyond its VIPs' ports (answer echo requests). */
  vipAddrs: map<IpAddress, number>('vip_addrs', MapType.HASH, AddrCodec, U32Codec, perVip),
  /** L2 mode: address -> L2_F_* flags (L2_F_ANSWER: answer ARP and neighbor solicitations for it). */
  l2Addrs: map<IpAddress, number>('l2_addrs', MapType.HASH, AddrCodec, U32Codec, perVip),
  reals: map<number, IpAddress | null>('reals', MapType.ARRAY, U32Codec, RealSlotCodec, perRealId),
  ring: map<number, number>('ring', MapType.ARRAY, U32Codec, U32Codec, { with: 'vips', times: RING_SIZE }, BPF_F_MMAPABLE),
  connTable: map<Buffer, Buffer>('conn_table', MapType.LRU_HASH, opaqueCodec(FlowKeyLayout), opaqueCodec(FlowValueLayout),
    { with: 'connectionTable' }, BPF_F_NO_COMMON_LRU),
  /** Flows whose SYN was balanced and nothing else yet: flow -> the SYN's real (a SYN flood churns only this). */
  halfOpen: map<Buffer, Buffer>('half_open', MapType.LRU_HASH, opaqueCodec(FlowKeyLayout), opaqueCodec(FlowValueLayout),
    { with: 'connectionTable', divisor: HALF_OPEN_TABLE_DIVISOR }, BPF_F_NO_COMMON_LRU),
  /** (vip_num, QUIC server id) -> real id: a connection ID names a real of its own VIP only. */
  quicServers: map<QuicServerKey, number>('quic_servers', MapType.HASH, QuicServerKeyCodec, U32Codec,
    { with: 'reals', times: QUIC_CONST.QUIC_SERVERS_PER_REAL }),
  ctl: map<number, CtlConfig>('ctl', MapType.ARRAY, U32Codec, CtlConfigCodec, { fixed: 1 }),
  vipStats: map<number, VipStats>('vip_stats', MapType.PERCPU_ARRAY, U32Codec, VipStatsCodec, perVip),
  realStats: map<number, RealStats>('real_stats', MapType.PERCPU_ARRAY, U32Codec, RealStatsCodec, perRealId),
  reasonStats: map<number, bigint>('reason_stats', MapType.PERCPU_ARRAY, U32Codec, U64Codec, { fixed: REASONS.length }),
  icmpBudget: map<number, Buffer>('icmp_budget', MapType.PERCPU_ARRAY, U32Codec, opaqueCodec(IcmpBudgetLayout), { fixed: 1 }),
  traceCtl: map<number, Buffer>('trace_ctl', MapType.ARRAY, U32Codec, opaqueCodec(TraceConfigLayout), { fixed: 1 }),
  traceBudget: map<number, Buffer>('trace_budget', MapType.PERCPU_ARRAY, U32Codec, opaqueCodec(TraceBudgetLayout), { fixed: TRACE_MAX_RULES }),
  traceStats: map<number, bigint>('trace_stats', MapType.PERCPU_ARRAY, U32Codec, U64Codec, { fixed: TRACE_COUNTERS.length }),
  traceRing: map<never, never>('trace_ring', MapType.RINGBUF, NoCodec, NoCodec, { fixed: TRACE_RING_BYTES }),
} as const;

export const DECAP_MAPS = {
  addrs: map<IpAddress, number>('decap_addrs', MapType.HASH, AddrCodec, U32Codec, { fixed: MAX_DECAP_ADDRS }),
  stats: map<number, bigint>('decap_stats', MapType.PERCPU_ARRAY, U32Codec, U64Codec, { fixed: DECAP_REASONS.length }),
} as const;

/** The backend program's maps (bpf/backend.bpf.c): pod-address mode on a node hosting backend pods. */
export const BACKEND_MAPS = {
  /** (pod address as tunnelled to, VIP, VIP port, protocol) -> (pod address, target port, protocol). */
  services: map<BackendSvcKey, Endpoint>('backend_svcs', MapType.HASH, BackendSvcKeyCodec, EndpointCodec, { fixed: MAX_BACKEND_SERVICES }),
  /** (client, client port, pod, target port, protocol) as the pod sees the request -> (VIP, VIP port, protocol). */
  flows: map<BackendFlow, Endpoint>('backend_flows', MapType.LRU_HASH, BackendFlowCodec, EndpointCodec, { with: 'backendFlows' }),
  stats: map<number, bigint>('backend_stats', MapType.PERCPU_ARRAY, U32Codec, U64Codec, { fixed: BACKEND_REASONS.length }),
  /** Node addressing: (node address as tunnelled to, VIP, VIP port, protocol) -> the local pods, as slots. */
  nodeServices: map<BackendSvcKey, BackendNodeSvc>('backend_node_svcs', MapType.HASH, BackendSvcKeyCodec, BackendNodeSvcCodec,
    { fixed: MAX_BACKEND_NODE_SERVICES }),
  /** Node addressing: the client's tuple (to VIP:port) -> the pod the node gave the flow; as many as backend_flows. */
  nodeFlows: map<ClientFlow, IpAddress>('backend_node_flows', MapType.LRU_HASH, ClientFlowCodec, AddrCodec, { with: 'backendFlows' }),
} as const;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a schema holds maps of every key and value type
export type Schema = Readonly<Record<string, MapSchema<any, any>>>;
export type RawMapSet<S extends Schema> = { [K in keyof S]: RawMap };

/** max_entries of a map under these capacities (a capacity not given: its default). */
export function entriesOf(m: MapSchema<unknown, unknown>, c: MapCapacities & Partial<BackendCapacities>): number {
  if ('fixed' in m.scale) return m.scale.fixed;
  const all: Capacities = { ...DEFAULT_BACKEND_CAPACITIES, ...c };
  return Math.ceil((all[m.scale.with] * (m.scale.times ?? 1)) / (m.scale.divisor ?? 1));
}

/** vip_num * RING_SIZE must stay a u32 ring index. */
export const MAX_VIP_CAPACITY = Math.floor(0xffffffff / RING_SIZE);

/** Checks capacities chosen by an operator; throws saying which is out of range. */
export function checkCapacities(c: Partial<Capacities>): void {
  if (c.vips !== undefined && (!Number.isInteger(c.vips) || c.vips < 1 || c.vips > MAX_VIP_CAPACITY)) {
    throw new Error(`VIP capacity ${c.vips} is not an integer in 1..${MAX_VIP_CAPACITY}`);
  }
  const minRealSlots = realSlotsFor(1);
  if (c.reals !== undefined && (!Number.isInteger(c.reals) || c.reals < minRealSlots)) {
    throw new Error(`real capacity ${c.reals} is not an integer >= ${minRealSlots}`);
  }
  if (c.connectionTable !== undefined && (!Number.isInteger(c.connectionTable) || c.connectionTable < 1)) {
    throw new Error(`connection table size ${c.connectionTable} is not a positive integer`);
  }
  if (c.backendFlows !== undefined && (!Number.isInteger(c.backendFlows) || c.backendFlows < 1)) {
    throw new Error(`backend flow table size ${c.backendFlows} is not a positive integer`);
  }
}

/** max_entries overrides, by map name, for the capacities given (absent: the compiled size). */
export function maxEntriesFor(schema: Schema, c: Partial<Capacities>): Record<string, number> {
  checkCapacities(c);
  const out: Record<string, number> = {};
  for (const m of Object.values(schema)) {
    if ('with' in m.scale && c[m.scale.with] !== undefined) out[m.name] = entriesOf(m, { ...DEFAULT_CAPACITIES, ...c });
  }
  return out;
}

/** A map with its schema's codecs. */
export const typedMap = <K, V>(schema: MapSchema<K, V>, raw: RawMap): TypedMap<K, V> => new TypedMap(raw, schema.key, schema.value);

/** The balancer's maps with their codecs: `maps.vips.set(key, meta)`, `maps.ring.write(vipNum, slots)`. */
export type BalancerHandles = {
  [K in Exclude<keyof typeof BALANCER_MAPS, 'ring'>]: (typeof BALANCER_MAPS)[K] extends MapSchema<infer Key, infer Value>
    ? TypedMap<Key, Value>
    : never;
} & { ring: U32Windows };

export function balancerHandles(raw: RawMapSet<typeof BALANCER_MAPS>): BalancerHandles {
  const typed = Object.fromEntries(Object.entries(BALANCER_MAPS).map(([k, m]) => [
    k, typedMap<unknown, unknown>(m, raw[k as keyof typeof BALANCER_MAPS]),
  ]));
  return { ...typed, ring: new U32Windows(raw.ring, RING_SIZE) } as BalancerHandles;
}

export interface MemoryMapOptions {
  /** CPUs of per-CPU values (default 2). */
  cpus?: number;
  /** Records every write in order ("update vip_map", "slots ring", ...). */
  journal?: string[];
}
const DEFAULT_MEMORY_CPUS = 2;

/** In-memory maps of a program, sized as loading it with these capacities would. */
export function memoryMaps<S extends Schema>(schema: S, capacities: Partial<MapCapacities> = {}, opts: MemoryMapOptions = {}): RawMapSet<S> {
  checkCapacities(capacities);
  const c = { ...DEFAULT_CAPACITIES, ...capacities };
  return Object.fromEntries(Object.entries(schema).map(([k, m]) => {
    // A ring buffer has no elements: its stand-in is an empty hash nothing writes.
    const kind = m.type === MapType.ARRAY || m.type === MapType.PERCPU_ARRAY ? 'array' : 'hash';
    return [k, new MemoryMap({ name: m.name, kind, keySize: m.key.size, valueSize: m.value.size, maxEntries: entriesOf(m, c),
      perCpu: isPerCpu(m), cpus: opts.cpus ?? DEFAULT_MEMORY_CPUS, journal: opts.journal })];
  })) as unknown as RawMapSet<S>;
}
