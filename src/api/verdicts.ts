/**
 * What the balancer program decides for a packet, by name: the same names are
 * metric labels, trace fields and README rows, so the agent, the CLI and the
 * dashboard agree. The C enums in bpf/include/xdplb_consts.h define the
 * numbers; src/bpf/consts.ts re-exports these lists, and test/bpf/layout.test.ts
 * checks them against the object's BTF.
 */

/** enum xdplb_reason, by its C name without the XDPLB_ prefix, in enum order. */
export const REASONS = [
  'TX_ENCAP',
  'TX_ARP_REPLY',
  'TX_NDP_ADVERT',
  'TX_ICMP_ECHO_REPLY',
  'TX_ICMP_ERROR',
  'TX_ICMP_TOO_BIG',
  'PASS_NOT_IP',
  'PASS_NOT_VIP',
  'PASS_MALFORMED',
  'PASS_VIP_NOT_TCP_UDP',
  'PASS_NDP_NO_ROOM',
  'DROP_MALFORMED',
  'DROP_FRAGMENT',
  'DROP_NO_REAL',
  'DROP_TOO_BIG',
  'DROP_UNSUPPORTED_ENCAP',
  'DROP_NOT_CONFIGURED',
  'DROP_ENCAP_FAILED',
  'DROP_VIP_NO_PORT',
  'DROP_ICMP_ECHO_OFF',
  'DROP_TOO_BIG_ICMP_LIMITED',
] as const;
export type Reason = (typeof REASONS)[number];

export type Verdict = 'tx' | 'pass' | 'drop';

/** A reason's verdict is its prefix. */
export function verdictOf(reason: Reason): Verdict {
  return reason.startsWith('TX') ? 'tx' : reason.startsWith('PASS') ? 'pass' : 'drop';
}

/** enum xdplb_trace_path, by its C name without the XDPLB_PATH_ prefix: how a real was chosen. */
export const TRACE_PATHS = ['NONE', 'LRU_HIT', 'RING_NEW_FLOW', 'RING_SYN', 'RING_STALE', 'RING_LRU_BYPASS', 'HALF_OPEN_HIT', 'RING_UDP_IDLE', 'QUIC_SERVER_ID'] as const;
export type TracePath = (typeof TRACE_PATHS)[number];

/** Bytes of each frame a trace record carries (XDPLB_TRACE_SNAPLEN): the pcap snap length. */
export const TRACE_SNAPLEN = 256;
