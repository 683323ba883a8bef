/**
 * ICMP and ICMPv6 echo messages (RFC 792, RFC 4443) in Ethernet frames, with
 * their checksums, and the checks of an answer's.
 */
import { ICMP_PROTO } from '../../src/bpf/consts.js';
import { buildPacket, checksum, ETH_HLEN, IPV4_HLEN, IPV6_HLEN, type PacketSpec } from './packets.js';
import { icmpv6Sum, PROTO_ICMPV6 } from './l2-packets.js';
import { parseIp } from '../../src/lib/ip.js';

const ECHO_HLEN = 8;

export interface EchoSpec extends Pick<PacketSpec, 'src' | 'dst' | 'ttl' | 'srcMac' | 'dstMac'> {
  /** Default: an echo request of the destination's family. */
  type?: number;
  id?: number;
  sequence?: number;
  payload?: Buffer;
}

/** An echo message (request by default) from src to dst, checksum computed. */
export function buildEcho(s: EchoSpec): Buffer {
  const v6 = parseIp(s.dst).family === 6;
  const msg = Buffer.concat([Buffer.alloc(ECHO_HLEN), s.payload ?? Buffer.from('xdplb echo payload')]);
  msg.writeUInt8(s.type ?? (v6 ? ICMP_PROTO.ICMPV6_ECHO_REQUEST : ICMP_PROTO.ICMP_ECHO_REQUEST), 0);
  msg.writeUInt16BE(s.id ?? 0x4242, 4);
  msg.writeUInt16BE(s.sequence ?? 7, 6);
  if (v6) msg.writeUInt16BE(icmpv6Sum(parseIp(s.src).bytes, parseIp(s.dst).bytes, msg), 2);
  else msg.writeUInt16BE(checksum(msg), 2);
  const { type: _type, id: _id, sequence: _seq, payload: _payload, ...rest } = s;
  return buildPacket({ ...rest, proto: v6 ? PROTO_ICMPV6 : ICMP_PROTO.IPPROTO_ICMP, payload: msg });
}

/** The ICMP message of an option-less IPv4 or extension-less IPv6 frame, and whether its checksums add up. */
export function parseIcmp(frame: Buffer): { family: 4 | 6; msg: Buffer; checksumOk: boolean; ipChecksumOk: boolean } {
  const ip = frame.subarray(ETH_HLEN);
  if (ip[0]! >> 4 === 4) {
    const msg = ip.subarray(IPV4_HLEN, ip.readUInt16BE(2));
    return { family: 4, msg, checksumOk: checksum(msg) === 0, ipChecksumOk: checksum(ip.subarray(0, IPV4_HLEN)) === 0 };
  }
  const msg = ip.subarray(IPV6_HLEN, IPV6_HLEN + ip.readUInt16BE(4));
  return { family: 6, msg, checksumOk: icmpv6Sum(ip.subarray(8, 24), ip.subarray(24, 40), msg) === 0, ipChecksumOk: true };
}

export interface IcmpErrorSpec extends Pick<PacketSpec, 'src' | 'dst'> {
  type: number;
  code?: number;
  /** The second word: unused (0), or the next-hop MTU (fragmentation needed, packet too big). */
  mtu?: number;
  /** The packet the error is about, from its IP header: as much as the router quotes. */
  quoted: Buffer;
}

/** An ICMP or ICMPv6 error (RFC 792, RFC 4443) from src (a router) to dst, quoting a packet, checksum computed. */
export function buildIcmpError(s: IcmpErrorSpec): Buffer {
  const v6 = parseIp(s.dst).family === 6;
  const msg = Buffer.concat([Buffer.alloc(ECHO_HLEN), s.quoted]);
  msg.writeUInt8(s.type, 0);
  msg.writeUInt8(s.code ?? 0, 1);
  if (v6) msg.writeUInt32BE(s.mtu ?? 0, 4);
  else msg.writeUInt16BE(s.mtu ?? 0, 6);
  if (v6) msg.writeUInt16BE(icmpv6Sum(parseIp(s.src).bytes, parseIp(s.dst).bytes, msg), 2);
  else msg.writeUInt16BE(checksum(msg), 2);
  return buildPacket({ src: s.src, dst: s.dst, proto: v6 ? PROTO_ICMPV6 : ICMP_PROTO.IPPROTO_ICMP, payload: msg });
}

/** What a router quotes of a packet it cannot deliver: the IPv4 header and 8 bytes (RFC 792); for IPv6 as much as fits, here the header and 20 bytes. */
export function quoteOf(frame: Buffer): Buffer {
  const l3 = frame.subarray(ETH_HLEN);
  return Buffer.from(l3.subarray(0, (l3[0]! >> 4 === 4 ? IPV4_HLEN + 8 : IPV6_HLEN + 20)));
}
