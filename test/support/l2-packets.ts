/**
 * ARP and NDP frames for tests, built from the RFCs' byte layouts with this
 * file's own numbers and checksum, independently of the code under test
 * (bpf/include/l2.h, src/agent/announce/l2-frames.ts).
 */
import { parseIp } from '../../src/lib/ip.js';
import { checksum, ETH_HLEN, ETH_P_ARP, ETH_P_IPV6, IPV6_HLEN, macBytes } from './packets.js';

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
export const ICMPV6_NS = 135;
export const ICMPV6_NA = 136;
export const ND_OPT_SLLA = 1;
export const ND_OPT_TLLA = 2;
export const NA_SOLICITED = 0x40;
export const NA_OVERRIDE = 0x20;
export const PROTO_ICMPV6 = 58;
const ND_MSG_LEN = 24;
const ARP_LEN = 28;

function eth(dstMac: string, srcMac: string, proto: number): Buffer {
  const b = Buffer.alloc(ETH_HLEN);
  macBytes(dstMac).copy(b, 0);
  macBytes(srcMac).copy(b, 6);
  b.writeUInt16BE(proto, 12);
  return b;
}

export interface ArpSpec {
  op: number;
  sha: string;
  spa: string;
  tha?: string;
  tpa: string;
  /** Ethernet addresses: broadcast from sha unless given. */
  dstMac?: string;
  srcMac?: string;
}

/** An Ethernet/IPv4 ARP frame (RFC 826), unpadded: 42 bytes. */
export function buildArp(s: ArpSpec): Buffer {
  const a = Buffer.alloc(ARP_LEN);
  a.writeUInt16BE(1, 0); // Ethernet
  a.writeUInt16BE(0x0800, 2); // IPv4
  a.writeUInt8(6, 4);
  a.writeUInt8(4, 5);
  a.writeUInt16BE(s.op, 6);
  macBytes(s.sha).copy(a, 8);
  parseIp(s.spa).bytes.copy(a, 14, 0, 4);
  macBytes(s.tha ?? '00:00:00:00:00:00').copy(a, 18);
  parseIp(s.tpa).bytes.copy(a, 24, 0, 4);
  return Buffer.concat([eth(s.dstMac ?? 'ff:ff:ff:ff:ff:ff', s.srcMac ?? s.sha, ETH_P_ARP), a]);
}

export interface NdpSpec {
  type: number;
  src: string;
  dst: string;
  target: string;
  flags?: number;
  /** Options as [type, MAC] (one 8-byte unit each), or raw bytes. */
  options?: ([number, string] | Buffer)[];
  hopLimit?: number;
  code?: number;
  dstMac: string;
  srcMac: string;
}

/** The ICMPv6 checksum over the pseudo-header (RFC 8200 8.1) of a message whose checksum field holds `existing`. */
export function icmpv6Sum(src: Buffer, dst: Buffer, msg: Buffer): number {
  const pseudo = Buffer.alloc(40);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 16);
  pseudo.writeUInt32BE(msg.length, 32);
  pseudo.writeUInt8(PROTO_ICMPV6, 39);
  return checksum(Buffer.concat([pseudo, msg]));
}

/** A neighbor solicitation or advertisement (RFC 4861 4.3, 4.4) with its options, checksum computed. */
export function buildNdp(s: NdpSpec): Buffer {
  const opts = (s.options ?? []).map((o) => {
    if (Buffer.isBuffer(o)) return o;
    const b = Buffer.alloc(8);
    b.writeUInt8(o[0], 0);
    b.writeUInt8(1, 1);
    macBytes(o[1]).copy(b, 2);
    return b;
  });
  const msg = Buffer.concat([Buffer.alloc(ND_MSG_LEN), ...opts]);
  msg.writeUInt8(s.type, 0);
  msg.writeUInt8(s.code ?? 0, 1);
  msg.writeUInt8(s.flags ?? 0, 4);
  parseIp(s.target).bytes.copy(msg, 8);
  const src = parseIp(s.src).bytes;
  const dst = parseIp(s.dst).bytes;
  msg.writeUInt16BE(icmpv6Sum(src, dst, msg), 2);
  const ip = Buffer.alloc(IPV6_HLEN);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(msg.length, 4);
  ip.writeUInt8(PROTO_ICMPV6, 6);
  ip.writeUInt8(s.hopLimit ?? 255, 7);
  src.copy(ip, 8);
  dst.copy(ip, 24);
  return Buffer.concat([eth(s.dstMac, s.srcMac, ETH_P_IPV6), ip, msg]);
}

/** Whether an IPv6 frame's ICMPv6 checksum verifies (the sum with the field in place is 0). */
export function icmpv6ChecksumOk(frame: Buffer): boolean {
  const ip = frame.subarray(ETH_HLEN);
  const msg = ip.subarray(IPV6_HLEN, IPV6_HLEN + ip.readUInt16BE(4));
  return icmpv6Sum(ip.subarray(8, 24), ip.subarray(24, 40), msg) === 0;
}

/** The solicited-node multicast address and MAC of an IPv6 address (RFC 4291 2.7.1, RFC 2464 7). */
export function solicitedNodeOf(addr: string): { ip: string; mac: string } {
  const last3 = parseIp(addr).bytes.subarray(13);
  const hex = [...last3].map((b) => b.toString(16).padStart(2, '0'));
  return { ip: parseIp(`ff02::1:ff${hex[0]}:${hex[1]}${hex[2]}`).text, mac: `33:33:ff:${hex.join(':')}` };
}
