/** Reading the per-CPU counters of the balancer, decap and backend programs. */
import { type RealStats, sumCounters, type VipStats } from '../../bpf/structs.js';
import { BACKEND_REASONS, type BackendReason, DECAP_REASONS, type DecapReason, REASONS, type Reason, TRACE_COUNTERS } from '../../bpf/consts.js';
import { BACKEND_MAPS, BALANCER_MAPS, DECAP_MAPS, type MapSchema, type RawMapSet, typedMap } from '../../bpf/maps.js';
import type { RawMap } from '../../libbpf/raw-map.js';

type Balancer = RawMapSet<typeof BALANCER_MAPS>;

/** A per-CPU array of u64 counters, one per name, summed over the CPUs. */
function readU64Counters<N extends string>(schema: MapSchema<number, bigint>, map: RawMap, names: readonly N[]): Record<N, bigint> {
  const counters = typedMap(schema, map);
  const out = {} as Record<N, bigint>;
  names.forEach((name, i) => {
    out[name] = (counters.getPerCpu(i) ?? []).reduce((acc, n) => acc + n, 0n);
  });
  return out;
}

export function readReasons(maps: Balancer): Record<Reason, bigint> {
  return readU64Counters(BALANCER_MAPS.reasonStats, maps.reasonStats, REASONS);
}

export function readDecapReasons(maps: RawMapSet<typeof DECAP_MAPS>): Record<DecapReason, bigint> {
  return readU64Counters(DECAP_MAPS.stats, maps.stats, DECAP_REASONS);
}

export function readBackendReasons(maps: RawMapSet<typeof BACKEND_MAPS>): Record<BackendReason, bigint> {
  return readU64Counters(BACKEND_MAPS.stats, maps.stats, BACKEND_REASONS);
}

export function readTraceCounters(maps: Balancer): Record<(typeof TRACE_COUNTERS)[number], bigint> {
  return readU64Counters(BALANCER_MAPS.traceStats, maps.traceStats, TRACE_COUNTERS);
}

const ZERO_VIP_STATS: VipStats = { packets: 0n, bytes: 0n, lruMisses: 0n };
const ZERO_REAL_STATS: RealStats = { packets: 0n, bytes: 0n };

export function readVipStats(maps: Balancer, vipNum: number): VipStats {
  return sumCounters(typedMap(BALANCER_MAPS.vipStats, maps.vipStats).getPerCpu(vipNum) ?? [], ZERO_VIP_STATS);
}

export function readRealStats(maps: Balancer, realId: number): RealStats {
  return sumCounters(typedMap(BALANCER_MAPS.realStats, maps.realStats).getPerCpu(realId) ?? [], ZERO_REAL_STATS);
}
