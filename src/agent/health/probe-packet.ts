/**
 * The probe's frames, byte for byte what the balancer program would send for
 * the same real (bpf/include/encap.h): an Ethernet header to the next hop,
 * the outer header (IPv4 in IPv4, IPv6 in IPv6 or IPv4 in IPv6, from the
 * node's encapsulation source of the real's family), and inside it a TCP
 * segment from a node address of the VIP's family to VIP:port. The real
 * answers that node address directly (DSR), so the SYN-ACK comes back to this
 * node as an ordinary packet, which parseReply reads. Pure: no socket here.
 */
import { parseIp, type IpAddress, formatIp } from '../../lib/ip.js';

export const ETH_HLEN = 14;
const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const IPV4_HLEN = 20;
const IPV6_HLEN = 40;
const PROTO_IPIP = 4;
const PROTO_TCP = 6;
const PROTO_IPV6 = 41;
const IPV4_DF = 0x4000;
const IPV4_VERSION_IHL = 0x45;
const IPV6_VERSION_WORD = 0x6000_0000;
const IPV6_FLOW_LABEL_MASK = 0xfffff;
/** What the probe's inner packet starts with, as a client's would. */
const INNER_TTL = 64;
/** TCP header with one option, MSS (kind 2, length 4). */
const TCP_HLEN_SYN = 24;
const TCP_HLEN = 20;
const TCP_OPT_MSS = 2;
const TCP_OPT_MSS_LEN = 4;
/** Small enough for any tunnel over a 1280-byte path; a probe sends no data anyway. */
const PROBE_MSS = 1200;
const PROBE_WINDOW = 64240;
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

/** How the node sends toward a real: what encap.h reads from its control entry. */
export interface ProbeEncap {
  srcMac: string;
  nextHopMac: string;
  /** The outer source of each family (the node's encapsulation sources). */
  srcV4?: string;
  srcV6?: string;
}

export interface ProbeSegment {
  /** Inner source: a node address of the VIP's family, so the answer comes back here. */
  src: string;
  srcPort: number;
  vip: string;
  vipPort: number;
  /** The real the frame is encapsulated to (outer destination). */
  real: string;
  flags: number;
  seq: number;
  ack?: number;
}

const macBytes = (mac: string) => Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));

/** The Internet checksum (RFC 1071) of buf, folded, complemented; `initial` carries a pseudo-header's sum. */
export function internetChecksum(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The unfolded sum of the pseudo-header (RFC 793, RFC 8200 8.1). */
function pseudoSum(src: IpAddress, dst: IpAddress, proto: number, len: number): number {
  const n = src.family === 4 ? 4 : 16;
  let sum = proto + len;
  for (const a of [src, dst]) for (let i = 0; i < n; i += 2) sum += a.bytes.readUInt16BE(i);
  return sum;
}

function tcpSegment(s: ProbeSegment, src: IpAddress, dst: IpAddress): Buffer {
  const syn = (s.flags & TCP_SYN) !== 0;
  const h = Buffer.alloc(syn ? TCP_HLEN_SYN : TCP_HLEN);
  h.writeUInt16BE(s.srcPort, 0);
  h.writeUInt16BE(s.vipPort, 2);
  h.writeUInt32BE(s.seq >>> 0, 4);
  h.writeUInt32BE((s.ack ?? 0) >>> 0, 8);
  h.writeUInt8((h.length / 4) << 4, 12);
  h.writeUInt8(s.flags, 13);
  h.writeUInt16BE(syn ? PROBE_WINDOW : 0, 14);
  if (syn) {
    h.writeUInt8(TCP_OPT_MSS, TCP_HLEN);
    h.writeUInt8(TCP_OPT_MSS_LEN, TCP_HLEN + 1);
    h.writeUInt16BE(PROBE_MSS, TCP_HLEN + 2);
  }
  h.writeUInt16BE(internetChecksum(h, pseudoSum(src, dst, PROTO_TCP, h.length)), 16);
  return h;
}

function ipv4Header(src: IpAddress, dst: IpAddress, proto: number, payloadLen: number, df: boolean, tos: number, ttl: number): Buffer {
  const h = Buffer.alloc(IPV4_HLEN);
  h.writeUInt8(IPV4_VERSION_IHL, 0);
  h.writeUInt8(tos, 1);
  h.writeUInt16BE(IPV4_HLEN + payloadLen, 2);
  h.writeUInt16BE(0, 4); // id 0, as encap.h writes the outer one
  h.writeUInt16BE(df ? IPV4_DF : 0, 6);
  h.writeUInt8(ttl, 8);
  h.writeUInt8(proto, 9);
  src.bytes.copy(h, 12, 0, 4);
  dst.bytes.copy(h, 16, 0, 4);
  h.writeUInt16BE(internetChecksum(h), 10);
  return h;
}

function ipv6Header(src: IpAddress, dst: IpAddress, nextHeader: number, payloadLen: number, tos: number, flowLabel: number, hopLimit: number): Buffer {
  const h = Buffer.alloc(IPV6_HLEN);
  h.writeUInt32BE((IPV6_VERSION_WORD | (tos << 20) | (flowLabel & IPV6_FLOW_LABEL_MASK)) >>> 0, 0);
  h.writeUInt16BE(payloadLen, 4);
  h.writeUInt8(nextHeader, 6);
  h.writeUInt8(hopLimit, 7);
  src.bytes.copy(h, 8, 0, 16);
  dst.bytes.copy(h, 24, 0, 16);
  return h;
}

/** Which tunnel a VIP's family and its real's family make, or why the dataplane would not send it. */
export function tunnelOf(vip: string, real: string): 'IPv4 in IPv4' | 'IPv6 in IPv6' | 'IPv4 in IPv6' | null {
  const v = parseIp(vip).family;
  const r = parseIp(real).family;
  if (v === 4) return r === 4 ? 'IPv4 in IPv4' : 'IPv4 in IPv6';
  return r === 6 ? 'IPv6 in IPv6' : null; // IPv6 in IPv4: the balancer drops it (DROP_UNSUPPORTED_ENCAP)
}

/**
 * The whole frame: Ethernet, outer IP, inner IP, TCP. The outer header copies
 * the inner TOS and TTL and, for IPv4, its DF bit, as encap.h does; an IPv6
 * outer flow label comes from `flowLabel` (the program uses its flow hash).
 */
export function buildProbeFrame(s: ProbeSegment, encap: ProbeEncap, flowLabel = 0): Buffer {
  const src = parseIp(s.src);
  const vip = parseIp(s.vip);
  const real = parseIp(s.real);
  if (src.family !== vip.family) throw new Error(`probe source ${s.src} is not of VIP ${s.vip}'s family`);
  if (tunnelOf(s.vip, s.real) === null) throw new Error(`VIP ${s.vip} cannot be encapsulated to ${s.real}: IPv6 in IPv4 is not sent`);
  const outerSrcText = real.family === 4 ? encap.srcV4 : encap.srcV6;
  if (outerSrcText === undefined) throw new Error(`no encapsulation source address of ${real.text}'s family`);
  const outerSrc = parseIp(outerSrcText);
  const tcp = tcpSegment(s, src, vip);
  const tos = 0;
  const inner = vip.family === 4
    ? Buffer.concat([ipv4Header(src, vip, PROTO_TCP, tcp.length, true, tos, INNER_TTL), tcp])
    : Buffer.concat([ipv6Header(src, vip, PROTO_TCP, tcp.length, tos, 0, INNER_TTL), tcp]);
  const outer = real.family === 4
    ? ipv4Header(outerSrc, real, PROTO_IPIP, inner.length, vip.family === 4, tos, INNER_TTL)
    : ipv6Header(outerSrc, real, vip.family === 6 ? PROTO_IPV6 : PROTO_IPIP, inner.length, tos, flowLabel, INNER_TTL);
  const eth = Buffer.alloc(ETH_HLEN);
  macBytes(encap.nextHopMac).copy(eth, 0);
  macBytes(encap.srcMac).copy(eth, 6);
  eth.writeUInt16BE(real.family === 4 ? ETH_P_IP : ETH_P_IPV6, 12);
  return Buffer.concat([eth, outer, inner]);
}

/** A TCP segment as it arrived, its addresses canonical. */
export interface ReceivedSegment {
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  flags: number;
  seq: number;
  ack: number;
}

/**
 * Reads a TCP segment from an IP packet (no link header: what a datagram
 * packet socket receives). Null for anything else: not TCP, a fragment, an
 * IPv6 packet with extension headers before TCP, a cut header.
 */
export function parseSegment(l3: Buffer): ReceivedSegment | null {
  if (l3.length < 1) return null;
  const version = l3[0]! >> 4;
  let off: number;
  let src: string;
  let dst: string;
  if (version === 4) {
    if (l3.length < IPV4_HLEN) return null;
    const ihl = (l3[0]! & 0xf) * 4;
    const fragment = l3.readUInt16BE(6) & 0x3fff; // MF or an offset
    if (l3[9] !== PROTO_TCP || fragment || ihl < IPV4_HLEN) return null;
    off = ihl;
    src = formatIp({ family: 4, bytes: l3.subarray(12, 16) });
    dst = formatIp({ family: 4, bytes: l3.subarray(16, 20) });
  } else if (version === 6) {
    if (l3.length < IPV6_HLEN || l3[6] !== PROTO_TCP) return null;
    off = IPV6_HLEN;
    src = formatIp({ family: 6, bytes: l3.subarray(8, 24) });
    dst = formatIp({ family: 6, bytes: l3.subarray(24, 40) });
  } else {
    return null;
  }
  if (l3.length < off + TCP_HLEN) return null;
  return {
    src,
    dst,
    srcPort: l3.readUInt16BE(off),
    dstPort: l3.readUInt16BE(off + 2),
    seq: l3.readUInt32BE(off + 4),
    ack: l3.readUInt32BE(off + 8),
    flags: l3[off + 13]!,
  };
}
