/**
 * Mirror of bpf/include/xdplb_consts.h. The C header is the definition;
 * test/bpf/layout.test.ts fails when this file disagrees with the object's BTF
 * and map definitions.
 */
export const MAX_VIPS = 512;
export const MAX_REALS = 4096;
/** Real id 0 means "no real"; usable ids are 1..MAX_REALS-1. */
export const NO_REAL_ID = 0;
export const RING_SIZE = 65537;
export const CONNECTION_TABLE_SIZE = 1048576;
/** half_open (handshakes in flight) holds connection table / this many entries. */
export const HALF_OPEN_TABLE_DIVISOR = 8;
/** A UDP flow idle this long takes the ring again (enum xdplb_flow_const). */
export const UDP_IDLE_TIMEOUT_S = 30;
export const MAX_DECAP_ADDRS = 64;
export const MAX_EXT_HDRS = 4;
export const MAX_ND_OPTS = 4;
/** Reads past the L4 header's start only where it is at most this far into the IP packet (a bound for the verifier). */
export const MAX_L4_OFF = 1024;
export const MAX_BACKEND_SERVICES = 16384;
/** The backend program's flow table: its default size; the agent may load another (BackendCapacities). */
export const BACKEND_FLOW_TABLE_SIZE = 262144;
/** Node addressing: (node address, VIP, port) entries on one node, and the pod slots of each. */
export const MAX_BACKEND_NODE_SERVICES = 4096;
export const NODE_SVC_SLOTS = 64;

export const TRACE_MAX_RULES = 8;
export const TRACE_RING_BYTES = 1 << 22;
/** Trace record vip_num of a packet that matched no VIP; in a rule, "any". */
export const VIP_NUM_NONE = 0xffffffff;


/** enum xdplb_trace_counter, without the XDPLB_TRACE_ prefix. */
export const TRACE_COUNTERS = ['EMITTED', 'RATE_LIMITED', 'RING_FULL'] as const;

export const FAMILY_V4 = 4;
export const FAMILY_V6 = 6;
export type Family = typeof FAMILY_V4 | typeof FAMILY_V6;

export const VIP_F_HASH_NO_SRC_PORT = 1 << 0;
export const VIP_F_LRU_BYPASS = 1 << 1;
/** The VIP's address answers no echo requests (the dataplane folds it into the address's vip_addrs flags). */
export const VIP_F_NO_ICMP_ECHO = 1 << 2;
/** UDP: short-header QUIC packets go to the real whose server id their connection ID carries. */
export const VIP_F_QUIC = 1 << 3;

/** enum xdplb_quic_const: our QUIC connection-ID layout (bpf/include/xdplb_consts.h documents it). */
export const QUIC_CONST = {
  QUIC_LONG_HEADER: 0x80,
  QUIC_FIXED_BIT: 0x40,
  QUIC_CID_LAYOUT_SHIFT: 6,
  QUIC_CID_LAYOUT_V1: 1,
  QUIC_SERVER_ID_HIGH_MASK: 0x3f,
  QUIC_SERVER_ID_BYTES: 3,
  QUIC_MAX_SERVER_IDS: 1 << 14,
  QUIC_SERVERS_PER_REAL: 2,
} as const;
/** The server ids a real may have: 1..QUIC_MAX_SERVER_IDS-1 (0 is "none"). */
export const QUIC_MIN_SERVER_ID = 1;
export const QUIC_MAX_SERVER_ID = QUIC_CONST.QUIC_MAX_SERVER_IDS - 1;
/** Whether a value is a server id a real may have (the file, the annotation and the dataplane all check with this). */
export const isQuicServerId = (v: unknown): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= QUIC_MIN_SERVER_ID && v <= QUIC_MAX_SERVER_ID;

/** vip_addrs values (enum xdplb_vip_addr_flag). */
export const VIP_ADDR_F_ICMP_ECHO = 1 << 0;

/** enum xdplb_icmp_const without the XDPLB_ prefix: the ICMP the program answers or forwards for VIP addresses. */
export const ICMP_PROTO = {
  IPPROTO_ICMP: 1,
  ICMP_ECHO_REPLY: 0,
  ICMP_ECHO_REQUEST: 8,
  ICMP_DEST_UNREACH: 3,
  ICMP_TIME_EXCEEDED: 11,
  ICMP_PARAMETERPROB: 12,
  ICMPV6_DEST_UNREACH: 1,
  ICMPV6_PKT_TOOBIG: 2,
  ICMPV6_TIME_EXCEED: 3,
  ICMPV6_PARAMPROB: 4,
  ICMPV6_ECHO_REQUEST: 128,
  ICMPV6_ECHO_REPLY: 129,
  ICMP_REPLY_TTL: 64,
  ICMP_FRAG_NEEDED: 4,
  ICMP_TOO_BIG_QUOTE_V4: 64,
  ICMP_TOO_BIG_QUOTE_V6: 128,
  ICMP_TOO_BIG_PER_CPU_RATE: 100,
} as const;

/** l2_addrs values (enum xdplb_l2_flag). */
export const L2_F_ANSWER = 1 << 0;

/**
 * enum xdplb_l2_const without the XDPLB_ prefix: the protocol numbers of the
 * ARP and NDP answers the program gives and the announcements the agent sends.
 */
export const L2_PROTO = {
  ETH_P_IP: 0x0800,
  ETH_P_ARP: 0x0806,
  ETH_P_IPV6: 0x86dd,
  ARPHRD_ETHER: 1,
  ARPOP_REQUEST: 1,
  ARPOP_REPLY: 2,
  IPPROTO_ICMPV6: 58,
  NDISC_NEIGHBOUR_SOLICITATION: 135,
  NDISC_NEIGHBOUR_ADVERTISEMENT: 136,
  ND_OPT_TARGET_LL_ADDR: 2,
  ND_OPT_UNIT: 8,
  NA_F_SOLICITED: 0x40,
  NA_F_OVERRIDE: 0x20,
  NDP_HOP_LIMIT: 255,
} as const;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

import { REASONS, type Reason } from '../api/verdicts.js';

// Shared with the CLI and the dashboard as plain data (src/api); numbered here like the C enums.
export { REASONS, type Reason, TRACE_PATHS, type TracePath, TRACE_SNAPLEN } from '../api/verdicts.js';

export const reasonIndex = (r: Reason): number => REASONS.indexOf(r);

/** enum xdplb_decap_reason, by its C name without the XDPLB_ prefix. */
export const DECAP_REASONS = [
  'DECAP_V4_IN_V4',
  'DECAP_V4_IN_V6',
  'DECAP_V6_IN_V6',
  'DECAP_PASS_NOT_ENCAP',
  'DECAP_DROP_MALFORMED',
] as const;
export type DecapReason = (typeof DECAP_REASONS)[number];

/** enum xdplb_backend_reason, by its C name without the XDPLB_BACKEND_ prefix. */
export const BACKEND_REASONS = [
  'TO_POD_V4_IN_V4',
  'TO_POD_V4_IN_V6',
  'TO_POD_V6_IN_V6',
  'NODE_TO_POD_V4_IN_V4',
  'NODE_TO_POD_V4_IN_V6',
  'NODE_TO_POD_V6_IN_V6',
  'REPLY_REWRITTEN',
  'REPLY_TO_STACK_NO_ROUTE',
  'REPLY_TO_STACK_NOT_FORWARDED',
  'REPLY_TO_STACK_FRAG_NEEDED',
  'REPLY_TO_STACK_TTL_EXPIRED',
  'NODE_TO_STACK_NO_ROUTE',
  'NODE_TO_STACK_NOT_FORWARDED',
  'NODE_TO_STACK_FRAG_NEEDED',
  'PASS_NOT_ENCAP',
  'PASS_NO_SERVICE',
  'PASS_FRAGMENT',
  'PASS_NOT_REPLY',
  'PASS_NO_FLOW',
  'PASS_OWN_SYN',
  'NODE_PASS_NOT_ENCAP',
  'NODE_PASS_NO_SERVICE',
  'NODE_PASS_FRAGMENT',
  'DROP_HAIRPIN',
  'DROP_DECAP_FAILED',
  'DROP_REWRITE_FAILED',
  'NODE_DROP_NO_POD',
  'NODE_DROP_HAIRPIN',
  'NODE_DROP_NOT_LOCAL',
] as const;
export type BackendReason = (typeof BACKEND_REASONS)[number];

export const BALANCER_PROGRAM = 'xdplb_balancer';
export const DECAP_PROGRAM = 'xdplb_decap';
/** The backend object's tc programs: host-side veth egress (toward the pod) and ingress (from it). */
export const BACKEND_TO_POD_PROGRAM = 'xdplb_backend_to_pod';
export const BACKEND_FROM_POD_PROGRAM = 'xdplb_backend_from_pod';
/** Node addressing: on the node's NIC (tcx ingress), tunnel packets to the node's address toward a local pod. */
export const BACKEND_FROM_NIC_PROGRAM = 'xdplb_backend_from_nic';
