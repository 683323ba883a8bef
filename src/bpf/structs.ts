/**
 * Byte codecs for every map key and value, mirroring bpf/include/xdplb_structs.h
 * field by field. `offsets` are what test/bpf/layout.test.ts checks against BTF.
 */
import { endianness } from 'node:os';
import { type IpAddress, IP_BYTES } from '../lib/ip.js';
import type { Family } from './consts.js';

// Host-order fields (flags, ids, counters) are written little-endian below.
if (endianness() !== 'LE') {
  throw new Error('xdplb supports little-endian hosts only (x86_64, arm64): map values would be written byte-swapped');
}

export interface StructLayout {
  readonly cName: string;
  readonly size: number;
  readonly offsets: Readonly<Record<string, number>>;
}

const MAC_BYTES = 6;

/** struct xdplb_addr: key of vip_addrs/decap_addrs, value of reals. */
export const AddrLayout = {
  cName: 'xdplb_addr',
  size: 20,
  offsets: { addr: 0, family: 16, pad: 17 },
} as const satisfies StructLayout;

export function encodeAddr(a: { family: Family; bytes: Buffer } | null): Buffer {
  const buf = Buffer.alloc(AddrLayout.size);
  if (a) {
    a.bytes.copy(buf, AddrLayout.offsets.addr, 0, IP_BYTES);
    buf.writeUInt8(a.family, AddrLayout.offsets.family);
  }
  return buf;
}

export function decodeAddr(buf: Buffer): { family: number; bytes: Buffer } {
  const o = AddrLayout.offsets;
  return { family: buf.readUInt8(o.family), bytes: Buffer.from(buf.subarray(o.addr, o.addr + IP_BYTES)) };
}

export interface VipKey {
  address: IpAddress;
  port: number; // 0: all ports
  proto: number;
}

export const VipKeyLayout = {
  cName: 'vip_key',
  size: 20,
  offsets: { addr: 0, port: 16, proto: 18, family: 19 },
} as const satisfies StructLayout;

export function encodeVipKey(k: VipKey): Buffer {
  const o = VipKeyLayout.offsets;
  const buf = Buffer.alloc(VipKeyLayout.size);
  k.address.bytes.copy(buf, o.addr, 0, IP_BYTES);
  buf.writeUInt16BE(k.port, o.port);
  buf.writeUInt8(k.proto, o.proto);
  buf.writeUInt8(k.address.family, o.family);
  return buf;
}

export function decodeVipKey(buf: Buffer): { family: number; bytes: Buffer; port: number; proto: number } {
  const o = VipKeyLayout.offsets;
  return {
    family: buf.readUInt8(o.family),
    bytes: Buffer.from(buf.subarray(o.addr, o.addr + IP_BYTES)),
    port: buf.readUInt16BE(o.port),
    proto: buf.readUInt8(o.proto),
  };
}

export interface VipMeta {
  flags: number;
  vipNum: number;
}

export const VipMetaLayout = {
  cName: 'vip_meta',
  size: 8,
  offsets: { flags: 0, vip_num: 4 },
} as const satisfies StructLayout;

export function encodeVipMeta(m: VipMeta): Buffer {
  const buf = Buffer.alloc(VipMetaLayout.size);
  buf.writeUInt32LE(m.flags, VipMetaLayout.offsets.flags);
  buf.writeUInt32LE(m.vipNum, VipMetaLayout.offsets.vip_num);
  return buf;
}

export function decodeVipMeta(buf: Buffer): VipMeta {
  return {
    flags: buf.readUInt32LE(VipMetaLayout.offsets.flags),
    vipNum: buf.readUInt32LE(VipMetaLayout.offsets.vip_num),
  };
}

export const FlowKeyLayout = {
  cName: 'flow_key',
  size: 40,
  offsets: { src: 0, dst: 16, sport: 32, dport: 34, proto: 36, family: 37, pad: 38 },
} as const satisfies StructLayout;

export const FlowValueLayout = {
  cName: 'flow_value',
  size: 4,
  offsets: { real_id: 0 },
} as const satisfies StructLayout;

export interface CtlConfig {
  nextHopMac: string;
  srcMac: string;
  srcV4?: IpAddress | undefined;
  srcV6?: IpAddress | undefined;
  maxPktSize: number;
}

export const CtlConfigLayout = {
  cName: 'ctl_config',
  size: 36,
  offsets: { next_hop_mac: 0, src_mac: 6, src_v4: 12, src_v6: 16, max_pkt_size: 32 },
} as const satisfies StructLayout;

export function parseMac(text: string): Buffer {
  const parts = text.split(':');
  if (parts.length !== MAC_BYTES || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new Error(`"${text}" is not a MAC address (expected six hex pairs like 02:00:00:00:00:01)`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function encodeCtlConfig(cfg: CtlConfig): Buffer {
  const o = CtlConfigLayout.offsets;
  const buf = Buffer.alloc(CtlConfigLayout.size);
  parseMac(cfg.nextHopMac).copy(buf, o.next_hop_mac);
  parseMac(cfg.srcMac).copy(buf, o.src_mac);
  if (cfg.srcV4) {
    if (cfg.srcV4.family !== 4) throw new Error(`outer IPv4 source ${cfg.srcV4.text} is not an IPv4 address`);
    cfg.srcV4.bytes.copy(buf, o.src_v4, 0, 4);
  }
  if (cfg.srcV6) {
    if (cfg.srcV6.family !== 6) throw new Error(`outer IPv6 source ${cfg.srcV6.text} is not an IPv6 address`);
    cfg.srcV6.bytes.copy(buf, o.src_v6, 0, IP_BYTES);
  }
  buf.writeUInt32LE(cfg.maxPktSize, o.max_pkt_size);
  return buf;
}

export interface VipStats {
  packets: bigint;
  bytes: bigint;
  lruMisses: bigint;
}

export const VipStatsLayout = {
  cName: 'vip_stats',
  size: 24,
  offsets: { packets: 0, bytes: 8, lru_misses: 16 },
} as const satisfies StructLayout;

export interface RealStats {
  packets: bigint;
  bytes: bigint;
}

export const RealStatsLayout = {
  cName: 'real_stats',
  size: 16,
  offsets: { packets: 0, bytes: 8 },
} as const satisfies StructLayout;

/** Sums a per-CPU value: each CPU's copy is 8-byte aligned. */
export function sumPerCpuU64(perCpu: Buffer[], offsets: readonly number[]): bigint[] {
  return offsets.map((off) => perCpu.reduce((acc, b) => acc + b.readBigUInt64LE(off), 0n));
}

export function decodeVipStats(perCpu: Buffer[]): VipStats {
  const o = VipStatsLayout.offsets;
  const [packets = 0n, bytes = 0n, lruMisses = 0n] = sumPerCpuU64(perCpu, [o.packets, o.bytes, o.lru_misses]);
  return { packets, bytes, lruMisses };
}

export function decodeRealStats(perCpu: Buffer[]): RealStats {
  const o = RealStatsLayout.offsets;
  const [packets = 0n, bytes = 0n] = sumPerCpuU64(perCpu, [o.packets, o.bytes]);
  return { packets, bytes };
}

export const U32_BYTES = 4;
export const U64_BYTES = 8;

export function u32Key(n: number): Buffer {
  const buf = Buffer.alloc(U32_BYTES);
  buf.writeUInt32LE(n);
  return buf;
}

export const ALL_LAYOUTS: readonly StructLayout[] = [
  AddrLayout,
  VipKeyLayout,
  VipMetaLayout,
  FlowKeyLayout,
  FlowValueLayout,
  CtlConfigLayout,
  VipStatsLayout,
  RealStatsLayout,
];
