/**
 * Byte codecs for every map key and value, mirroring bpf/include/xdplb_structs.h
 * field by field. `offsets` are what test/bpf/layout.test.ts checks against BTF;
 * the `*Codec` objects are what src/bpf/maps.ts names for each map.
 */
import { endianness } from 'node:os';
import { formatIp, type IpAddress, IP_BYTES, parseIp } from '../lib/ip.js';
import type { Codec } from '../libbpf/typed-map.js';
import { FAMILY_V4, FAMILY_V6, type Family } from './consts.js';

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
  size: 8,
  offsets: { real_id: 0, atime_s: 4 },
} as const satisfies StructLayout;

/**
 * How encapsulated packets leave this node, as an operator or the next-hop
 * discovery gives it (text); CtlConfig is the same parsed, as ctl[0] holds it.
 */
export interface EncapConfig {
  nextHopMac: string;
  srcMac: string;
  /** Outer source for IPv4 outer headers (this node's address); needed by IPv4 reals. */
  srcV4?: string;
  /** Outer source for IPv6 outer headers; needed by IPv6 reals. */
  srcV6?: string;
  /** Largest outer IP packet the NIC may send (its MTU); 0 disables the check. */
  maxPktSize: number;
}

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

export const formatMac = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

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

/** Adds up counters field by field (the CPUs' copies of a per-CPU value). */
export function sumCounters<T extends { [K in keyof T]: bigint }>(copies: readonly T[], zero: T): T {
  const out = { ...zero };
  for (const c of copies) for (const k of Object.keys(out) as (keyof T)[]) out[k] = (out[k] + c[k]) as T[keyof T];
  return out;
}

export const U32_BYTES = 4;
export const U64_BYTES = 8;

export function u32Key(n: number): Buffer {
  const buf = Buffer.alloc(U32_BYTES);
  buf.writeUInt32LE(n);
  return buf;
}

export function addressOf(family: number, bytes: Buffer): IpAddress {
  if (family !== FAMILY_V4 && family !== FAMILY_V6) throw new Error(`address family ${family} is neither 4 nor 6`);
  return parseIp(formatIp({ family, bytes }));
}

export function structCodec<T>(layout: StructLayout, encode: (v: T) => Buffer, decode: (b: Buffer) => T): Codec<T> {
  return { cType: `struct ${layout.cName}`, size: layout.size, encode, decode };
}

/** A struct this side does not take apart (its owner reads the bytes). */
export const opaqueCodec = (layout: StructLayout): Codec<Buffer> => structCodec(layout, (b) => {
  if (b.length !== layout.size) throw new Error(`struct ${layout.cName} is ${layout.size} bytes, not ${b.length}`);
  return b;
}, (b) => Buffer.from(b));

/** quic_servers key: a QUIC server id within one VIP. */
export interface QuicServerKey {
  vipNum: number;
  serverId: number;
}
export const QuicServerKeyLayout = {
  cName: 'quic_server_key',
  size: 8,
  offsets: { vip_num: 0, server_id: 4 },
} as const satisfies StructLayout;
export const QuicServerKeyCodec = structCodec<QuicServerKey>(QuicServerKeyLayout, (k) => {
  const b = Buffer.alloc(QuicServerKeyLayout.size);
  b.writeUInt32LE(k.vipNum, QuicServerKeyLayout.offsets.vip_num);
  b.writeUInt32LE(k.serverId, QuicServerKeyLayout.offsets.server_id);
  return b;
}, (b) => ({ vipNum: b.readUInt32LE(QuicServerKeyLayout.offsets.vip_num), serverId: b.readUInt32LE(QuicServerKeyLayout.offsets.server_id) }));

export const U32Codec: Codec<number> = { cType: '__u32', size: U32_BYTES, encode: u32Key, decode: (b) => b.readUInt32LE(0) };

export const U64Codec: Codec<bigint> = {
  cType: '__u64',
  size: U64_BYTES,
  encode: (n) => {
    const b = Buffer.alloc(U64_BYTES);
    b.writeBigUInt64LE(n);
    return b;
  },
  decode: (b) => b.readBigUInt64LE(0),
};

/** No key or value (a ring buffer map). */
export const NoCodec: Codec<never> = {
  cType: '',
  size: 0,
  encode: () => {
    throw new Error('this map has no keys or values');
  },
  decode: () => {
    throw new Error('this map has no keys or values');
  },
};

export const VipKeyCodec = structCodec<VipKey>(VipKeyLayout, encodeVipKey, (b) => {
  const k = decodeVipKey(b);
  return { address: addressOf(k.family, k.bytes), port: k.port, proto: k.proto };
});

export const VipMetaCodec = structCodec<VipMeta>(VipMetaLayout, encodeVipMeta, decodeVipMeta);

export const AddrCodec = structCodec<IpAddress>(AddrLayout, (a) => encodeAddr({ family: a.family as Family, bytes: a.bytes }),
  (b) => {
    const a = decodeAddr(b);
    return addressOf(a.family, a.bytes);
  });

/** A reals slot: an address, or null for an unused slot (family 0). */
export const RealSlotCodec = structCodec<IpAddress | null>(AddrLayout,
  (a) => encodeAddr(a && { family: a.family as Family, bytes: a.bytes }),
  (b) => {
    const a = decodeAddr(b);
    return a.family ? addressOf(a.family, a.bytes) : null;
  });

const isZero = (b: Buffer): boolean => b.every((x) => x === 0);

export const CtlConfigCodec = structCodec<CtlConfig>(CtlConfigLayout, encodeCtlConfig, (b) => {
  const o = CtlConfigLayout.offsets;
  const v4 = b.subarray(o.src_v4, o.src_v4 + 4);
  const v6 = b.subarray(o.src_v6, o.src_v6 + IP_BYTES);
  return {
    nextHopMac: formatMac(b.subarray(o.next_hop_mac, o.next_hop_mac + MAC_BYTES)),
    srcMac: formatMac(b.subarray(o.src_mac, o.src_mac + MAC_BYTES)),
    srcV4: isZero(v4) ? undefined : addressOf(FAMILY_V4, Buffer.concat([v4, Buffer.alloc(IP_BYTES - v4.length)])),
    srcV6: isZero(v6) ? undefined : addressOf(FAMILY_V6, v6),
    maxPktSize: b.readUInt32LE(o.max_pkt_size),
  };
});

export const VipStatsCodec = structCodec<VipStats>(VipStatsLayout, (s) => {
  const o = VipStatsLayout.offsets;
  const b = Buffer.alloc(VipStatsLayout.size);
  b.writeBigUInt64LE(s.packets, o.packets);
  b.writeBigUInt64LE(s.bytes, o.bytes);
  b.writeBigUInt64LE(s.lruMisses, o.lru_misses);
  return b;
}, (b) => {
  const o = VipStatsLayout.offsets;
  return { packets: b.readBigUInt64LE(o.packets), bytes: b.readBigUInt64LE(o.bytes), lruMisses: b.readBigUInt64LE(o.lru_misses) };
});

export const RealStatsCodec = structCodec<RealStats>(RealStatsLayout, (s) => {
  const o = RealStatsLayout.offsets;
  const b = Buffer.alloc(RealStatsLayout.size);
  b.writeBigUInt64LE(s.packets, o.packets);
  b.writeBigUInt64LE(s.bytes, o.bytes);
  return b;
}, (b) => {
  const o = RealStatsLayout.offsets;
  return { packets: b.readBigUInt64LE(o.packets), bytes: b.readBigUInt64LE(o.bytes) };
});

/** struct icmp_budget: a CPU's too-big answers in the current second (only the program writes it). */
export const IcmpBudgetLayout = {
  cName: 'icmp_budget',
  size: 16,
  offsets: { window_start_ns: 0, sent: 8 },
} as const satisfies StructLayout;

export const ALL_LAYOUTS: readonly StructLayout[] = [
  IcmpBudgetLayout,
  AddrLayout,
  VipKeyLayout,
  VipMetaLayout,
  FlowKeyLayout,
  FlowValueLayout,
  QuicServerKeyLayout,
  CtlConfigLayout,
  VipStatsLayout,
  RealStatsLayout,
];
