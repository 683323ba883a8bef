/**
 * A raw trace record as the agent serves it (src/api/trace.ts): names
 * instead of numbers, wall-clock time, frames in base64.
 */
import type { TraceEvent } from '../../api/trace.js';
import { type Reason, type TracePath, verdictOf } from '../../api/verdicts.js';
import { ICMP_PROTO, IPPROTO_TCP, IPPROTO_UDP, L2_PROTO } from '../../bpf/consts.js';
import type { RawTraceRecord } from '../../bpf/trace-structs.js';
import type { InstalledVipRef } from '../dataplane/dataplane.js';

const PROTO_NAMES: Record<number, string> = {
  [IPPROTO_TCP]: 'TCP', [IPPROTO_UDP]: 'UDP', [ICMP_PROTO.IPPROTO_ICMP]: 'ICMP', [L2_PROTO.IPPROTO_ICMPV6]: 'ICMPv6',
};
const NS_PER_MS = 1_000_000n;

export function protoName(proto: number): string {
  return PROTO_NAMES[proto] ?? `proto-${proto}`;
}

export function wallTime(timeNs: bigint): string {
  const iso = new Date(Number(timeNs / NS_PER_MS)).toISOString();
  const micros = String((timeNs % NS_PER_MS) / 1000n).padStart(3, '0');
  return iso.replace(/Z$/, `${micros}Z`);
}

export function toTraceEvent(rec: RawTraceRecord, vip: InstalledVipRef | undefined, wallOffsetNs: bigint): TraceEvent {
  const timeNs = rec.timestampNs + wallOffsetNs;
  return {
    type: 'packet',
    time: wallTime(timeNs),
    timeNs: String(timeNs),
    cpu: rec.cpu,
    family: rec.flow.family,
    // An answered ARP request carries its sender and target addresses as the flow: not an IP packet.
    proto: rec.reason === 'TX_ARP_REPLY' ? 'ARP' : rec.flow.family ? protoName(rec.flow.proto) : '',
    src: rec.flow.src,
    sport: rec.flow.sport,
    dst: rec.flow.dst,
    dport: rec.flow.dport,
    vip: rec.vipNum === null ? null : (vip?.id ?? `#${rec.vipNum}`),
    real: rec.real,
    realId: rec.realId,
    path: rec.path.toLowerCase() as Lowercase<TracePath>,
    verdict: verdictOf(rec.reason),
    reason: rec.reason.toLowerCase() as Lowercase<Reason>,
    frameLen: rec.frameLen,
    outLen: rec.outLen,
    frameIn: rec.frameIn.toString('base64'),
    frameOut: rec.frameOut.toString('base64'),
  };
}
