/**
 * The frames a node sends when it takes an address over in L2 mode, so that
 * hosts and switches on the segment move to its MAC at once instead of when
 * their neighbor entries expire: a gratuitous ARP for IPv4 (RFC 5227 2.3, as
 * `arping -U` and MetalLB send) and an unsolicited neighbor advertisement for
 * IPv6 (RFC 4861 7.2.6, as the kernel sends for its own addresses). The
 * answers to ARP requests and solicitations are the balancer program's
 * (bpf/include/l2.h); both use the layouts of src/bpf/l2-structs.ts.
 */
import { formatIp, type IpAddress, parseIp } from '../../lib/ip.js';
import { L2_PROTO } from '../../bpf/consts.js';
import { ArpLayout, NaLayout, NdMsgLayout, NdOptLlaLayout } from '../../bpf/l2-structs.js';
import { formatMac, parseMac } from '../../bpf/structs.js';

const MAC_BYTES = 6;
const IPV4_BYTES = 4;
const IPV6_BYTES = 16;

/** struct ethhdr (linux/if_ether.h). */
const ETH = { dst: 0, src: MAC_BYTES, proto: 2 * MAC_BYTES, size: 2 * MAC_BYTES + 2 } as const;
/** struct ipv6hdr (RFC 8200 3). */
const IPV6 = { versionClassFlow: 0, payloadLen: 4, nextHeader: 6, hopLimit: 7, src: 8, dst: 24, size: 40 } as const;
const IPV6_VERSION_SHIFT = 28;
const IP_VERSION_6 = 6;

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
/** The all-nodes multicast address (RFC 4291 2.7.1): every host on the link. */
export const ALL_NODES = 'ff02::1';
/** RFC 2464 7: an IPv6 multicast address's MAC is 33:33 and its last four bytes. */
const IPV6_MULTICAST_MAC_PREFIX = [0x33, 0x33] as const;
/** RFC 4291 2.7.1: ff02::1:ff00:0/104 and the address's last three bytes. */
const SOLICITED_NODE_PREFIX = 'ff02::1:ff00:0';
const SOLICITED_NODE_KEPT_BYTES = 3;

export type ArpOp = 'request' | 'reply';

const address = (a: string | IpAddress): IpAddress => (typeof a === 'string' ? parseIp(a) : a);

function ethernet(dst: Buffer, src: Buffer, proto: number, payload: Buffer): Buffer {
  const eth = Buffer.alloc(ETH.size);
  dst.copy(eth, ETH.dst);
  src.copy(eth, ETH.src);
  eth.writeUInt16BE(proto, ETH.proto);
  return Buffer.concat([eth, payload]);
}

function ipv4(a: string | IpAddress): Buffer {
  const ip = address(a);
  if (ip.family !== 4) throw new Error(`gratuitous ARP is for IPv4 addresses: ${ip.text} is IPv6 (send an unsolicited neighbor advertisement)`);
  return ip.bytes.subarray(0, IPV4_BYTES);
}

function ipv6(a: string | IpAddress): IpAddress {
  const ip = address(a);
  if (ip.family !== 6) throw new Error(`neighbor advertisements are for IPv6 addresses: ${ip.text} is IPv4 (send a gratuitous ARP)`);
  return ip;
}

/**
 * A gratuitous ARP: broadcast, sender and target address both `addr`, sender
 * hardware address `mac`. A request has a zero target hardware address (RFC
 * 5227, the kernel's own); a reply repeats `mac` there, which Linux requires
 * of a gratuitous reply. Either moves an existing neighbor entry to `mac` at
 * once; hosts that accept unsolicited ARP (arp_accept) also create one.
 */
export function gratuitousArp(mac: string, addr: string | IpAddress, op: ArpOp = 'request'): Buffer {
  const ours = parseMac(mac);
  const ip = ipv4(addr);
  const o = ArpLayout.offsets;
  const arp = Buffer.alloc(ArpLayout.size);
  arp.writeUInt16BE(L2_PROTO.ARPHRD_ETHER, o.hrd);
  arp.writeUInt16BE(L2_PROTO.ETH_P_IP, o.pro);
  arp.writeUInt8(MAC_BYTES, o.hln);
  arp.writeUInt8(IPV4_BYTES, o.pln);
  arp.writeUInt16BE(op === 'request' ? L2_PROTO.ARPOP_REQUEST : L2_PROTO.ARPOP_REPLY, o.op);
  ours.copy(arp, o.sha);
  ip.copy(arp, o.spa);
  if (op === 'reply') ours.copy(arp, o.tha);
  ip.copy(arp, o.tpa);
  return ethernet(parseMac(BROADCAST_MAC), ours, L2_PROTO.ETH_P_ARP, arp);
}

/** The MAC an IPv6 multicast address is sent to. */
export function ipv6MulticastMac(group: string | IpAddress): string {
  return formatMac(Buffer.concat([Buffer.from(IPV6_MULTICAST_MAC_PREFIX), ipv6(group).bytes.subarray(IPV6_BYTES - IPV4_BYTES)]));
}

/**
 * The solicited-node multicast group of an address, and its MAC: where hosts
 * send their solicitations for it. A NIC filters multicast it has not joined,
 * so the node answering for `addr` must accept that MAC (`ip maddr add MAC dev NIC`).
 */
export function solicitedNode(addr: string | IpAddress): { group: string; mac: string } {
  const bytes = Buffer.from(parseIp(SOLICITED_NODE_PREFIX).bytes);
  ipv6(addr).bytes.copy(bytes, IPV6_BYTES - SOLICITED_NODE_KEPT_BYTES, IPV6_BYTES - SOLICITED_NODE_KEPT_BYTES);
  const group = parseIp(formatIp({ family: 6, bytes }));
  return { group: group.text, mac: ipv6MulticastMac(group) };
}

/** The ICMPv6 checksum of a message (its checksum field zero) from src to dst (RFC 8200 8.1). */
export function icmpv6Checksum(src: IpAddress, dst: IpAddress, message: Buffer): number {
  const pseudo = Buffer.alloc(2 * IPV6_BYTES + 8);
  src.bytes.copy(pseudo, 0);
  dst.bytes.copy(pseudo, IPV6_BYTES);
  pseudo.writeUInt32BE(message.length, 2 * IPV6_BYTES);
  pseudo.writeUInt8(L2_PROTO.IPPROTO_ICMPV6, pseudo.length - 1);
  const all = Buffer.concat([pseudo, message, Buffer.alloc(message.length % 2)]);
  let sum = 0;
  for (let i = 0; i < all.length; i += 2) sum += all.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * An unsolicited neighbor advertisement for `addr` at `mac`: from `addr` to
 * all nodes, Override set (replace whatever MAC a host had), Solicited and
 * Router clear, with a target link-layer address option. Hosts with an entry
 * for `addr` move it to `mac`; routers that accept untracked advertisements
 * (accept_untracked_na, RFC 9131) also create one.
 */
export function unsolicitedNeighborAdvert(mac: string, addr: string | IpAddress): Buffer {
  const ours = parseMac(mac);
  const target = ipv6(addr);
  const allNodes = parseIp(ALL_NODES);
  const na = Buffer.alloc(NaLayout.size);
  const m = NaLayout.offsets.msg;
  na.writeUInt8(L2_PROTO.NDISC_NEIGHBOUR_ADVERTISEMENT, m + NdMsgLayout.offsets.type);
  na.writeUInt8(L2_PROTO.NA_F_OVERRIDE, m + NdMsgLayout.offsets.flags);
  target.bytes.copy(na, m + NdMsgLayout.offsets.target);
  const t = NaLayout.offsets.tlla;
  na.writeUInt8(L2_PROTO.ND_OPT_TARGET_LL_ADDR, t + NdOptLlaLayout.offsets.type);
  na.writeUInt8(NdOptLlaLayout.size / L2_PROTO.ND_OPT_UNIT, t + NdOptLlaLayout.offsets.len);
  ours.copy(na, t + NdOptLlaLayout.offsets.addr);
  na.writeUInt16BE(icmpv6Checksum(target, allNodes, na), m + NdMsgLayout.offsets.checksum);

  const ip = Buffer.alloc(IPV6.size);
  ip.writeUInt32BE((IP_VERSION_6 << IPV6_VERSION_SHIFT) >>> 0, IPV6.versionClassFlow);
  ip.writeUInt16BE(na.length, IPV6.payloadLen);
  ip.writeUInt8(L2_PROTO.IPPROTO_ICMPV6, IPV6.nextHeader);
  ip.writeUInt8(L2_PROTO.NDP_HOP_LIMIT, IPV6.hopLimit);
  target.bytes.copy(ip, IPV6.src);
  allNodes.bytes.copy(ip, IPV6.dst);
  return ethernet(parseMac(ipv6MulticastMac(allNodes)), ours, L2_PROTO.ETH_P_IPV6, Buffer.concat([ip, na]));
}

/**
 * What a node sends when it takes `addr` over: for IPv4 a gratuitous ARP
 * request and reply (as MetalLB does: hosts differ in which they heed), for
 * IPv6 one unsolicited neighbor advertisement.
 */
export function takeoverFrames(mac: string, addr: string | IpAddress): Buffer[] {
  const ip = address(addr);
  return ip.family === 4
    ? [gratuitousArp(mac, ip, 'request'), gratuitousArp(mac, ip, 'reply')]
    : [unsolicitedNeighborAdvert(mac, ip)];
}
