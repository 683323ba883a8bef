/**
 * Byte codecs of the tracing structs in bpf/include/xdplb_structs.h
 * (trace_rule, trace_config, trace_record), checked against BTF by
 * test/bpf/layout.test.ts like structs.ts.
 */
import { formatIp, IP_BYTES } from '../lib/ip.js';
import { AddrLayout, decodeAddr, FlowKeyLayout, type StructLayout } from './structs.js';
import { type Family, type Reason, REASONS, TRACE_MAX_RULES, TRACE_PATHS, type TracePath, VIP_NUM_NONE } from './consts.js';

export const TraceRuleLayout = {
  cName: 'trace_rule',
  size: 44,
  offsets: { client: 0, mask: 16, family: 32, pad: 33, port: 34, vip_num: 36, cpu_rate: 40 },
} as const satisfies StructLayout;

export const TraceConfigLayout = {
  cName: 'trace_config',
  size: 4 + TRACE_MAX_RULES * TraceRuleLayout.size,
  offsets: { rule_count: 0, rules: 4 },
} as const satisfies StructLayout;

export const TraceBudgetLayout = {
  cName: 'trace_budget',
  size: 24,
  offsets: { window_start_ns: 0, used: 8, limited: 16 },
} as const satisfies StructLayout;

export const TraceRecordLayout = {
  cName: 'trace_record',
  size: 608,
  offsets: {
    timestamp_ns: 0, flow: 8, cpu: 48, vip_num: 52, real_id: 56, real: 60, frame_len: 80, out_len: 84,
    in_cap: 88, out_cap: 90, reason: 92, path: 93, pad: 94, pkt_in: 96, pkt_out: 352,
  },
} as const satisfies StructLayout;

/** trace_budget.limited of one rule summed over the CPUs, from a per-CPU lookup (one value per CPU, each 8-byte aligned). */
export function sumTraceLimited(perCpu: Buffer): bigint {
  const stride = Math.ceil(TraceBudgetLayout.size / 8) * 8;
  let sum = 0n;
  for (let at = 0; at + TraceBudgetLayout.size <= perCpu.length; at += stride) {
    sum += perCpu.readBigUInt64LE(at + TraceBudgetLayout.offsets.limited);
  }
  return sum;
}

export const TRACE_LAYOUTS: readonly StructLayout[] = [TraceRuleLayout, TraceConfigLayout, TraceBudgetLayout, TraceRecordLayout];

/** A rule's match as the program evaluates it; absent fields match anything. */
export interface TraceMatch {
  client?: { family: Family; bytes: Buffer; prefixLength: number };
  port?: number;
  vipNum?: number;
}

/** A rule: its match and its own budget (trace_budget[its index]). */
export interface TraceRule extends TraceMatch {
  /** Records per second per CPU this rule may write. */
  cpuRate: number;
}

/** The 16-byte mask of a prefix length, as trace_rule.mask holds it. */
export function prefixMask(prefixLength: number, family: Family): Buffer {
  const bits = family === 4 ? 32 : 128;
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > bits) {
    throw new Error(`prefix length ${prefixLength} is not in 0..${bits} for IPv${family}`);
  }
  const mask = Buffer.alloc(IP_BYTES);
  for (let i = 0; i < prefixLength; i++) mask[i >> 3]! |= 0x80 >> (i & 7);
  return mask;
}

export function encodeTraceRule(r: TraceRule, buf: Buffer, at: number): void {
  const o = TraceRuleLayout.offsets;
  if (r.client) {
    const mask = prefixMask(r.client.prefixLength, r.client.family);
    for (let i = 0; i < IP_BYTES; i++) buf[at + o.client + i] = r.client.bytes[i]! & mask[i]!;
    mask.copy(buf, at + o.mask);
    buf.writeUInt8(r.client.family, at + o.family);
  }
  buf.writeUInt16BE(r.port ?? 0, at + o.port);
  buf.writeUInt32LE(r.vipNum ?? VIP_NUM_NONE, at + o.vip_num);
  buf.writeUInt32LE(r.cpuRate, at + o.cpu_rate);
}

/** No rules turns tracing off. */
export function encodeTraceConfig(rules: readonly TraceRule[]): Buffer {
  if (rules.length > TRACE_MAX_RULES) {
    throw new Error(`${rules.length} trace rules given, the program evaluates at most ${TRACE_MAX_RULES}`);
  }
  const o = TraceConfigLayout.offsets;
  const buf = Buffer.alloc(TraceConfigLayout.size);
  buf.writeUInt32LE(rules.length, o.rule_count);
  rules.forEach((r, i) => encodeTraceRule(r, buf, o.rules + i * TraceRuleLayout.size));
  return buf;
}

export interface TracedFlow {
  family: number;
  src: string;
  /** src as trace_record holds it (16 bytes, IPv4 in the first four). */
  srcBytes: Buffer;
  dst: string;
  sport: number;
  dport: number;
  proto: number;
}

/** One decoded trace_record. */
export interface RawTraceRecord {
  /** CLOCK_MONOTONIC nanoseconds. */
  timestampNs: bigint;
  cpu: number;
  flow: TracedFlow;
  vipNum: number | null;
  realId: number;
  real: string | null;
  frameLen: number;
  outLen: number;
  reason: Reason;
  path: TracePath;
  frameIn: Buffer;
  frameOut: Buffer;
}

function addrText(family: number, bytes: Buffer): string {
  return family === 4 || family === 6 ? formatIp({ family, bytes }) : '';
}

export function decodeTraceRecord(buf: Buffer): RawTraceRecord {
  if (buf.length < TraceRecordLayout.size) {
    throw new Error(`trace record is ${buf.length} bytes, expected ${TraceRecordLayout.size}: agent and BPF object differ`);
  }
  const o = TraceRecordLayout.offsets;
  const f = FlowKeyLayout.offsets;
  const flowAt = o.flow;
  const family = buf.readUInt8(flowAt + f.family);
  const vipNum = buf.readUInt32LE(o.vip_num);
  const real = decodeAddr(buf.subarray(o.real, o.real + AddrLayout.size));
  const inCap = buf.readUInt16LE(o.in_cap);
  const outCap = buf.readUInt16LE(o.out_cap);
  return {
    timestampNs: buf.readBigUInt64LE(o.timestamp_ns),
    cpu: buf.readUInt32LE(o.cpu),
    flow: {
      family,
      src: addrText(family, buf.subarray(flowAt + f.src, flowAt + f.src + IP_BYTES)),
      srcBytes: buf.subarray(flowAt + f.src, flowAt + f.src + IP_BYTES),
      dst: addrText(family, buf.subarray(flowAt + f.dst, flowAt + f.dst + IP_BYTES)),
      sport: buf.readUInt16BE(flowAt + f.sport),
      dport: buf.readUInt16BE(flowAt + f.dport),
      proto: buf.readUInt8(flowAt + f.proto),
    },
    vipNum: vipNum === VIP_NUM_NONE ? null : vipNum,
    realId: buf.readUInt32LE(o.real_id),
    real: addrText(real.family, real.bytes) || null,
    frameLen: buf.readUInt32LE(o.frame_len),
    outLen: buf.readUInt32LE(o.out_len),
    reason: REASONS[buf.readUInt8(o.reason)] ?? ('UNKNOWN' as Reason),
    path: TRACE_PATHS[buf.readUInt8(o.path)] ?? 'NONE',
    frameIn: Buffer.from(buf.subarray(o.pkt_in, o.pkt_in + inCap)),
    frameOut: Buffer.from(buf.subarray(o.pkt_out, o.pkt_out + outCap)),
  };
}
