/**
 * What the agent makes of trace filters (src/api/trace-filter.ts): the
 * program's trace rules, and the same test again on each record, so that
 * concurrent sessions, whose rules the program evaluates together, each get
 * only their own packets.
 */
import type { Protocol } from '../../api/types.js';
import type { ClientPrefix, TraceFilter, VipSelector } from '../../api/trace-filter.js';
import { IPPROTO_TCP, IPPROTO_UDP, TRACE_MAX_RULES, type Family } from '../../bpf/consts.js';
import { prefixMask, type RawTraceRecord, type TraceMatch, type TraceRule } from '../../bpf/trace-structs.js';
import type { InstalledVipRef } from '../dataplane/dataplane.js';

const PROTOCOL_NUMBERS: Record<Protocol, number> = { TCP: IPPROTO_TCP, UDP: IPPROTO_UDP };

/** A session the program cannot serve as asked (too many rules, a rate out of range). */
export class TraceLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TraceLimitError';
  }
}

function selects(sel: VipSelector, vip: InstalledVipRef): boolean {
  return sel.address.text === vip.address && (sel.port === undefined || sel.port === vip.port) &&
    (sel.protocol === undefined || PROTOCOL_NUMBERS[sel.protocol] === vip.proto);
}

/** The installed VIPs a filter names (none when it names no VIP). */
export function selectedVips(filter: TraceFilter, installed: readonly InstalledVipRef[]): InstalledVipRef[] {
  return installed.filter((v) => filter.vips.some((s) => selects(s, v)));
}

/**
 * The program's matches for a filter: one per selected VIP, or one for all
 * packets. A filter whose VIPs are not installed compiles to no rule.
 */
export function compileRules(filter: TraceFilter, installed: readonly InstalledVipRef[]): TraceMatch[] {
  const base: TraceMatch = {};
  if (filter.client) {
    base.client = {
      family: filter.client.address.family as Family,
      bytes: filter.client.address.bytes,
      prefixLength: filter.client.prefixLength,
    };
  }
  if (filter.port !== undefined) base.port = filter.port;
  if (!filter.vips.length) return [base];
  return selectedVips(filter, installed).map((v) => ({ ...base, vipNum: v.num }));
}

/** What compileSessionRules needs of a session: its filter and its records per second on this node. */
export interface RuleSession {
  filter: TraceFilter;
  rate: number;
}

/**
 * The rules of all open sessions together, and whose each is (owners[i] is
 * rule i's session). Each rule has its own budget in the program: a
 * session's rate, split over the CPUs and its rules, so that one session's
 * matches never use up another's. Throws TraceLimitError beyond what the
 * program evaluates.
 */
export function compileSessionRules<S extends RuleSession>(sessions: readonly S[], installed: readonly InstalledVipRef[],
  onlineCpus: number): { rules: TraceRule[]; owners: S[] } {
  const rules: TraceRule[] = [];
  const owners: S[] = [];
  for (const s of sessions) {
    const matches = compileRules(s.filter, installed);
    const cpuRate = Math.max(1, Math.ceil(s.rate / (onlineCpus * matches.length)));
    for (const m of matches) {
      rules.push({ ...m, cpuRate });
      owners.push(s);
    }
  }
  if (rules.length > TRACE_MAX_RULES) {
    throw new TraceLimitError(`the open trace sessions need ${rules.length} rules, the program has ${TRACE_MAX_RULES}: ` +
      'close other traces or name fewer VIPs');
  }
  return { rules, owners };
}

/** Whether a record (and the installed VIP it names, if any) is a session's. */
export type RecordMatch = (rec: RawTraceRecord, vip: InstalledVipRef | undefined) => boolean;

/** The same test as the program's, (client & mask) == (prefix & mask), with the program's mask. */
function prefixTest(prefix: ClientPrefix): (family: number, addr: Buffer) => boolean {
  const { family, bytes } = prefix.address;
  const mask = prefixMask(prefix.prefixLength, family);
  return (f, addr) => f === family && mask.every((m, i) => (addr[i]! & m) === (bytes[i]! & m));
}

/** A filter's re-check of records: the program's rules are shared by every session. */
export function recordMatcher(filter: TraceFilter): RecordMatch {
  const inClient = filter.client ? prefixTest(filter.client) : undefined;
  return (rec, vip) => {
    if (filter.vips.length && !(vip && filter.vips.some((s) => selects(s, vip)))) return false;
    if (filter.port !== undefined && rec.flow.sport !== filter.port && rec.flow.dport !== filter.port) return false;
    if (inClient && !inClient(rec.flow.family, rec.flow.srcBytes)) return false;
    return true;
  };
}
