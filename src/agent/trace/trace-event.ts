/**
 * A trace record as the agent serves it (one JSON line each) and the CLI
 * prints it: names instead of numbers, wall-clock time, frames in base64.
 */
import { IPPROTO_TCP, IPPROTO_UDP, type Reason, type TracePath } from '../../bpf/consts.js';
import type { RawTraceRecord } from '../../bpf/trace-structs.js';
import type { InstalledVipRef } from '../dataplane/dataplane.js';
import { verdictOf } from '../../api/verdicts.js';

export interface TraceEvent {
  type: 'packet';
  /** Wall-clock time, ISO 8601 with microseconds. */
  time: string;
  /** Nanoseconds since the epoch (for pcap and ordering). */
  timeNs: string;
  cpu: number;
  family: number;
  proto: string;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  /** The VIP's id ("address:port/protocol"), null when the packet matched no VIP. */
  vip: string | null;
  real: string | null;
  realId: number;
  path: Lowercase<TracePath>;
  verdict: 'tx' | 'pass' | 'drop';
  /** The reason label of xdplb_packets_total (see the README's reason table). */
  reason: Lowercase<Reason>;
  frameLen: number;
  outLen: number;
  /** The frame as received, up to the snap length. */
  frameIn: string;
  /** The frame as transmitted (verdict tx), up to the snap length. */
  frameOut: string;
}

const PROTO_NAMES: Record<number, string> = { [IPPROTO_TCP]: 'TCP', [IPPROTO_UDP]: 'UDP', 1: 'ICMP', 58: 'ICMPv6' };
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
    proto: rec.flow.family ? protoName(rec.flow.proto) : '',
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
