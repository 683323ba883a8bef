/**
 * The ARP and NDP wire structs of bpf/include/l2.h: what the balancer program
 * answers with, and what src/agent/announce/l2-frames.ts builds from the same
 * offsets. test/bpf/layout.test.ts checks them against the object's BTF like
 * structs.ts. Fields are in network byte order on the wire.
 */
import type { StructLayout } from './structs.js';

/** struct xdplb_arp: an Ethernet/IPv4 ARP packet (RFC 826). */
export const ArpLayout = {
  cName: 'xdplb_arp',
  size: 28,
  offsets: { hrd: 0, pro: 2, hln: 4, pln: 5, op: 6, sha: 8, spa: 14, tha: 18, tpa: 24 },
} as const satisfies StructLayout;

/** struct xdplb_nd_msg: a neighbor solicitation or advertisement before its options (RFC 4861 4.3, 4.4). */
export const NdMsgLayout = {
  cName: 'xdplb_nd_msg',
  size: 24,
  offsets: { type: 0, code: 1, checksum: 2, flags: 4, reserved: 5, target: 8 },
} as const satisfies StructLayout;

/** struct xdplb_nd_opt_lla: a source or target link-layer address option for Ethernet (RFC 4861 4.6.1). */
export const NdOptLlaLayout = {
  cName: 'xdplb_nd_opt_lla',
  size: 8,
  offsets: { type: 0, len: 1, addr: 2 },
} as const satisfies StructLayout;

/** struct xdplb_na: an advertisement with its target link-layer address option. */
export const NaLayout = {
  cName: 'xdplb_na',
  size: NdMsgLayout.size + NdOptLlaLayout.size,
  offsets: { msg: 0, tlla: NdMsgLayout.size },
} as const satisfies StructLayout;

export const L2_LAYOUTS: readonly StructLayout[] = [ArpLayout, NdMsgLayout, NdOptLlaLayout, NaLayout];
