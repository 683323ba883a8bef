/** Reading the per-CPU counters of the balancer and decap programs. */
import { decodeRealStats, decodeVipStats, type RealStats, type VipStats, u32Key } from '../../bpf/structs.js';
import { DECAP_REASONS, type DecapReason, REASONS, type Reason, TRACE_COUNTERS } from '../../bpf/consts.js';
import type { BpfMap } from '../../libbpf/bpf-map.js';
import type { BalancerMapSet, DecapMapSet } from '../../bpf/programs.js';

function readU64Counters<N extends string>(map: BpfMap, names: readonly N[]): Record<N, bigint> {
  const out = {} as Record<N, bigint>;
  names.forEach((name, i) => {
    const perCpu = map.lookupPerCpu(u32Key(i)) ?? [];
    out[name] = perCpu.reduce<bigint>((acc, b) => acc + b.readBigUInt64LE(0), 0n);
  });
  return out;
}

export function readReasons(maps: BalancerMapSet): Record<Reason, bigint> {
  return readU64Counters(maps.reasonStats, REASONS);
}

export function readDecapReasons(maps: DecapMapSet): Record<DecapReason, bigint> {
  return readU64Counters(maps.stats, DECAP_REASONS);
}

export function readVipStats(maps: BalancerMapSet, vipNum: number): VipStats {
  return decodeVipStats(maps.vipStats.lookupPerCpu(u32Key(vipNum)) ?? []);
}

export function readRealStats(maps: BalancerMapSet, realId: number): RealStats {
  return decodeRealStats(maps.realStats.lookupPerCpu(u32Key(realId)) ?? []);
}

export function readTraceCounters(maps: BalancerMapSet): Record<(typeof TRACE_COUNTERS)[number], bigint> {
  return readU64Counters(maps.traceStats, TRACE_COUNTERS);
}
