/**
 * Building test frames and taking encapsulated ones apart, independently of
 * the code under test (its own checksum and header arithmetic).
 */
import { parseIp, formatIp } from '../../src/lib/ip.js';

export const ETH_HLEN = 14;
export const IPV4_HLEN = 20;
export const IPV6_HLEN = 40;
export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_ARP = 0x0806;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMP = 1;
export const PROTO_IPIP = 4;
export const PROTO_IPV6 = 41;
export const PROTO_HOPOPTS = 0;
export const PROTO_FRAGMENT = 44;

const TCP_HLEN = 20;
const UDP_HLEN = 8;
const TCP_FLAG_SYN = 0x02;
const TCP_FLAG_ACK = 0x10;
const TCP_FLAG_RST = 0x04;

export interface PacketSpec {
  src: string;
  dst: string;
  proto: 'tcp' | 'udp' | number;
  sport?: number;
  dport?: number;
  syn?: boolean;
  ack?: boolean;
  rst?: boolean;
  /** TCP sequence and acknowledgement numbers (default 1000, and 2000 with ack). */
  seq?: number;
  ackNumber?: number;
  payload?: Buffer;
  ttl?: number;
  tos?: number;
  df?: boolean;
  /** IPv4: MF bit and fragment offset (8-byte units). IPv6: adds a fragment header. */
  fragment?: { more: boolean; offset: number };
  /** IPv6 only: a hop-by-hop options header before the transport header. */
  hopByHop?: boolean;
  srcMac?: string;
  dstMac?: string;
}

export function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

export function checksum(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function l4(spec: PacketSpec, pseudo: (len: number, proto: number) => Buffer): { proto: number; bytes: Buffer } {
  const payload = spec.payload ?? Buffer.alloc(0);
  if (spec.proto === 'tcp') {
    const h = Buffer.alloc(TCP_HLEN);
    h.writeUInt16BE(spec.sport ?? 0, 0);
    h.writeUInt16BE(spec.dport ?? 0, 2);
    h.writeUInt32BE(spec.seq ?? 1000, 4);
    h.writeUInt32BE(spec.ack ? (spec.ackNumber ?? 2000) : 0, 8);
    h.writeUInt8((TCP_HLEN / 4) << 4, 12);
    h.writeUInt8((spec.syn ? TCP_FLAG_SYN : 0) | (spec.ack ? TCP_FLAG_ACK : 0) | (spec.rst ? TCP_FLAG_RST : 0), 13);
    h.writeUInt16BE(65535, 14);
    const seg = Buffer.concat([h, payload]);
    seg.writeUInt16BE(checksum(Buffer.concat([pseudo(seg.length, PROTO_TCP), seg])), 16);
    return { proto: PROTO_TCP, bytes: seg };
  }
  if (spec.proto === 'udp') {
    const h = Buffer.alloc(UDP_HLEN);
    h.writeUInt16BE(spec.sport ?? 0, 0);
    h.writeUInt16BE(spec.dport ?? 0, 2);
    h.writeUInt16BE(UDP_HLEN + payload.length, 4);
    const seg = Buffer.concat([h, payload]);
    seg.writeUInt16BE(checksum(Buffer.concat([pseudo(seg.length, PROTO_UDP), seg])) || 0xffff, 6);
    return { proto: PROTO_UDP, bytes: seg };
  }
  return { proto: spec.proto, bytes: payload };
}

export function buildPacket(spec: PacketSpec): Buffer {
  const src = parseIp(spec.src);
  const dst = parseIp(spec.dst);
  if (src.family !== dst.family) throw new Error('source and destination families differ');
  const eth = Buffer.alloc(ETH_HLEN);
  macBytes(spec.dstMac ?? '02:00:00:00:00:01').copy(eth, 0);
  macBytes(spec.srcMac ?? '02:00:00:00:00:aa').copy(eth, 6);
  if (src.family === 4) {
    eth.writeUInt16BE(ETH_P_IP, 12);
    const pseudo = (len: number, proto: number) => {
      const p = Buffer.alloc(12);
      src.bytes.copy(p, 0, 0, 4);
      dst.bytes.copy(p, 4, 0, 4);
      p.writeUInt8(proto, 9);
      p.writeUInt16BE(len, 10);
      return p;
    };
    const seg = l4(spec, pseudo);
    const ip = Buffer.alloc(IPV4_HLEN);
    ip.writeUInt8(0x45, 0);
    ip.writeUInt8(spec.tos ?? 0, 1);
    ip.writeUInt16BE(IPV4_HLEN + seg.bytes.length, 2);
    ip.writeUInt16BE(0x1234, 4);
    const frag = spec.fragment ? (spec.fragment.more ? 0x2000 : 0) | spec.fragment.offset : 0;
    ip.writeUInt16BE((spec.df ? 0x4000 : 0) | frag, 6);
    ip.writeUInt8(spec.ttl ?? 64, 8);
    ip.writeUInt8(seg.proto, 9);
    src.bytes.copy(ip, 12, 0, 4);
    dst.bytes.copy(ip, 16, 0, 4);
    ip.writeUInt16BE(checksum(ip), 10);
    return Buffer.concat([eth, ip, seg.bytes]);
  }
  eth.writeUInt16BE(ETH_P_IPV6, 12);
  const pseudo = (len: number, proto: number) => {
    const p = Buffer.alloc(40);
    src.bytes.copy(p, 0);
    dst.bytes.copy(p, 16);
    p.writeUInt32BE(len, 32);
    p.writeUInt8(proto, 39);
    return p;
  };
  const seg = l4(spec, pseudo);
  const ext: Buffer[] = [];
  let next = seg.proto;
  if (spec.fragment) {
    const f = Buffer.alloc(8);
    f.writeUInt8(next, 0);
    f.writeUInt16BE((spec.fragment.offset << 3) | (spec.fragment.more ? 1 : 0), 2);
    f.writeUInt32BE(0xabcd, 4);
    ext.unshift(f);
    next = PROTO_FRAGMENT;
  }
  if (spec.hopByHop) {
    const h = Buffer.alloc(8);
    h.writeUInt8(next, 0);
    h.writeUInt8(0, 1); // 8 bytes; PadN option fills it
    h.writeUInt8(1, 2);
    h.writeUInt8(4, 3);
    ext.unshift(h);
    next = PROTO_HOPOPTS;
  }
  const body = Buffer.concat([...ext, seg.bytes]);
  const ip = Buffer.alloc(IPV6_HLEN);
  const tc = spec.tos ?? 0;
  ip.writeUInt32BE(((6 << 28) | (tc << 20) | 0x12345) >>> 0, 0);
  ip.writeUInt16BE(body.length, 4);
  ip.writeUInt8(next, 6);
  ip.writeUInt8(spec.ttl ?? 64, 7);
  src.bytes.copy(ip, 8);
  dst.bytes.copy(ip, 24);
  return Buffer.concat([eth, ip, body]);
}

export interface Encapsulated {
  dstMac: string;
  srcMac: string;
  outerFamily: 4 | 6;
  outerSrc: string;
  outerDst: string;
  /** IPv4 protocol or IPv6 next header of the outer header. */
  outerProto: number;
  ttl: number;
  tos: number;
  /** Outer L3 length as its header states it. */
  outerLen: number;
  checksumOk: boolean;
  df: boolean;
  flowLabel: number;
  /** Everything after the outer header. */
  inner: Buffer;
}

const mac = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

export function parseEncapsulated(frame: Buffer): Encapsulated {
  const proto = frame.readUInt16BE(12);
  const l3 = frame.subarray(ETH_HLEN);
  if (proto === ETH_P_IP) {
    const ihl = (l3[0]! & 0x0f) * 4;
    if (l3[0]! >> 4 !== 4 || ihl !== IPV4_HLEN) throw new Error(`outer IPv4 header malformed: ${l3.subarray(0, 20).toString('hex')}`);
    return {
      dstMac: mac(frame.subarray(0, 6)),
      srcMac: mac(frame.subarray(6, 12)),
      outerFamily: 4,
      outerSrc: formatIp({ family: 4, bytes: Buffer.concat([l3.subarray(12, 16), Buffer.alloc(12)]) }),
      outerDst: formatIp({ family: 4, bytes: Buffer.concat([l3.subarray(16, 20), Buffer.alloc(12)]) }),
      outerProto: l3[9]!,
      ttl: l3[8]!,
      tos: l3[1]!,
      outerLen: l3.readUInt16BE(2),
      checksumOk: checksum(l3.subarray(0, IPV4_HLEN)) === 0,
      df: (l3.readUInt16BE(6) & 0x4000) !== 0,
      flowLabel: 0,
      inner: l3.subarray(IPV4_HLEN),
    };
  }
  if (proto === ETH_P_IPV6) {
    const w = l3.readUInt32BE(0);
    if (w >>> 28 !== 6) throw new Error('outer IPv6 header malformed');
    return {
      dstMac: mac(frame.subarray(0, 6)),
      srcMac: mac(frame.subarray(6, 12)),
      outerFamily: 6,
      outerSrc: formatIp({ family: 6, bytes: Buffer.from(l3.subarray(8, 24)) }),
      outerDst: formatIp({ family: 6, bytes: Buffer.from(l3.subarray(24, 40)) }),
      outerProto: l3[6]!,
      ttl: l3[7]!,
      tos: (w >>> 20) & 0xff,
      outerLen: IPV6_HLEN + l3.readUInt16BE(4),
      checksumOk: true,
      df: false,
      flowLabel: w & 0xfffff,
      inner: l3.subarray(IPV6_HLEN),
    };
  }
  throw new Error(`frame is not IP (ethertype 0x${proto.toString(16)})`);
}

export interface InnerFlow {
  family: 4 | 6;
  src: string;
  dst: string;
  proto: number;
  sport: number;
  dport: number;
  l3Len: number;
}

/** Reads the 5-tuple of an option-less IP packet (the inner packet of a TX). */
export function innerFlow(l3: Buffer): InnerFlow {
  const version = l3[0]! >> 4;
  if (version === 4) {
    const ihl = (l3[0]! & 0x0f) * 4;
    return {
      family: 4,
      src: formatIp({ family: 4, bytes: Buffer.concat([l3.subarray(12, 16), Buffer.alloc(12)]) }),
      dst: formatIp({ family: 4, bytes: Buffer.concat([l3.subarray(16, 20), Buffer.alloc(12)]) }),
      proto: l3[9]!,
      sport: l3.readUInt16BE(ihl),
      dport: l3.readUInt16BE(ihl + 2),
      l3Len: l3.readUInt16BE(2),
    };
  }
  let next = l3[6]!;
  let off = IPV6_HLEN;
  while (next === PROTO_HOPOPTS || next === 43 || next === 60) {
    next = l3[off]!;
    off += (l3[off + 1]! + 1) * 8;
  }
  return {
    family: 6,
    src: formatIp({ family: 6, bytes: Buffer.from(l3.subarray(8, 24)) }),
    dst: formatIp({ family: 6, bytes: Buffer.from(l3.subarray(24, 40)) }),
    proto: next,
    sport: l3.readUInt16BE(off),
    dport: l3.readUInt16BE(off + 2),
    l3Len: IPV6_HLEN + l3.readUInt16BE(4),
  };
}

/**
 * Wraps a frame's IP packet in an outer header from outerSrc to outerDst, as
 * the balancer does (IPv4: protocol 4 or 41; IPv6: next header 4 or 41),
 * keeping the MACs. Built here, not by the balancer, for the backend's tests.
 */
export function encapsulate(frame: Buffer, outerSrc: string, outerDst: string): Buffer {
  const src = parseIp(outerSrc);
  const dst = parseIp(outerDst);
  if (src.family !== dst.family) throw new Error('outer source and destination families differ');
  const inner = frame.subarray(ETH_HLEN);
  const proto = frame.readUInt16BE(12) === ETH_P_IP ? PROTO_IPIP : PROTO_IPV6;
  const eth = Buffer.from(frame.subarray(0, ETH_HLEN));
  let outer: Buffer;
  if (src.family === 4) {
    eth.writeUInt16BE(ETH_P_IP, 12);
    outer = Buffer.alloc(IPV4_HLEN);
    outer.writeUInt8(0x45, 0);
    outer.writeUInt16BE(IPV4_HLEN + inner.length, 2);
    outer.writeUInt8(64, 8);
    outer.writeUInt8(proto, 9);
    src.bytes.copy(outer, 12, 0, 4);
    dst.bytes.copy(outer, 16, 0, 4);
    outer.writeUInt16BE(checksum(outer), 10);
  } else {
    eth.writeUInt16BE(ETH_P_IPV6, 12);
    outer = Buffer.alloc(IPV6_HLEN);
    outer.writeUInt32BE((6 << 28) >>> 0, 0);
    outer.writeUInt16BE(inner.length, 4);
    outer.writeUInt8(proto, 6);
    outer.writeUInt8(64, 7);
    src.bytes.copy(outer, 8);
    dst.bytes.copy(outer, 24);
  }
  return Buffer.concat([eth, outer, inner]);
}

/** The TCP/UDP pseudo-header of an option-less IPv4 or extension-less IPv6 packet, and where its segment starts. */
export function pseudoHeader(l3: Buffer): { pseudo: Buffer; hlen: number; proto: number; len: number } {
  const v4 = l3[0]! >> 4 === 4;
  const hlen = v4 ? (l3[0]! & 0x0f) * 4 : IPV6_HLEN;
  const proto = v4 ? l3[9]! : l3[6]!;
  const len = (v4 ? l3.readUInt16BE(2) : IPV6_HLEN + l3.readUInt16BE(4)) - hlen;
  let pseudo: Buffer;
  if (v4) {
    pseudo = Buffer.alloc(12);
    l3.copy(pseudo, 0, 12, 20);
    pseudo.writeUInt8(proto, 9);
    pseudo.writeUInt16BE(len, 10);
  } else {
    pseudo = Buffer.alloc(40);
    l3.copy(pseudo, 0, 8, 40);
    pseudo.writeUInt32BE(len, 32);
    pseudo.writeUInt8(proto, 39);
  }
  return { pseudo, hlen, proto, len };
}

/**
 * Whether an option-less IPv4 or extension-less IPv6 packet's checksums add
 * up: the IPv4 header's, and the TCP/UDP one over the pseudo-header (an IPv4
 * UDP checksum of 0, "none", counts as valid).
 */
export function checksumsValid(l3: Buffer): { ip: boolean; l4: boolean } {
  const { pseudo, hlen, proto, len } = pseudoHeader(l3);
  const v4 = l3[0]! >> 4 === 4;
  const segment = l3.subarray(hlen, hlen + len);
  const udpNone = v4 && proto === PROTO_UDP && segment.readUInt16BE(6) === 0;
  return {
    ip: !v4 || checksum(l3.subarray(0, hlen)) === 0,
    l4: udpNone || checksum(Buffer.concat([pseudo, segment])) === 0,
  };
}
