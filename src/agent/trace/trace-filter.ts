/**
 * What a trace session asks for, parsed from user input, compiled into the
 * program's trace rules, and re-checked on each record so that concurrent
 * sessions each get only their own packets.
 */
import { isIP } from 'node:net';
import { type IpAddress, parseIp } from '../../lib/ip.js';
import { IPPROTO_TCP, IPPROTO_UDP, type Family } from '../../bpf/consts.js';
import { prefixMask, type TraceRule, type RawTraceRecord } from '../../bpf/trace-structs.js';
import type { InstalledVipRef } from '../dataplane/dataplane.js';

const PROTOCOLS: Record<string, number> = { TCP: IPPROTO_TCP, UDP: IPPROTO_UDP };
const MAX_PORT = 65535;

/** A VIP selector: an address, optionally narrowed to a port and protocol. */
export interface VipSelector {
  text: string;
  address: IpAddress;
  port?: number;
  proto?: number;
}

export interface ClientPrefix {
  text: string;
  address: IpAddress;
  prefixLength: number;
  mask: Buffer;
}

export interface TraceFilter {
  /** Packets of these VIPs; empty: any packet, VIP or not. */
  vips: VipSelector[];
  client?: ClientPrefix;
  /** Source or destination port. */
  port?: number;
}

export class TraceFilterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TraceFilterError';
  }
}

/** A positive integer request parameter (rate, count, seconds); absent: undefined. */
export function parsePositiveInt(name: string, raw: string | null | undefined): number | undefined {
  if (raw === null || raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1) throw new TraceFilterError(`${name}: "${raw}" is not a positive integer`);
  return n;
}

function portNumber(what: string, raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > MAX_PORT) throw new TraceFilterError(`${what}: "${raw}" is not a port in 1..${MAX_PORT}`);
  return n;
}

/** "ADDRESS", "ADDRESS:PORT", "ADDRESS:PORT/PROTO"; IPv6 with a port in brackets ("[2001:db8::1]:80/TCP"). */
export function parseVipSelector(text: string): VipSelector {
  const m = isIP(text) ? [text, text] : /^(?:\[([^\]]+)\]|([^:/[\]]+))(?::(\d+)(?:\/(\w+))?)?$/.exec(text);
  const addr = m ? (m[1] ?? m[2]) : undefined;
  if (!m || !addr || !isIP(addr)) {
    throw new TraceFilterError(`vip: "${text}" is not ADDRESS, ADDRESS:PORT or ADDRESS:PORT/PROTO (IPv6 with a port in brackets)`);
  }
  const sel: VipSelector = { text, address: parseIp(addr) };
  if (m[3] !== undefined) sel.port = portNumber(`vip ${text}`, m[3]);
  if (m[4] !== undefined) {
    const proto = PROTOCOLS[m[4].toUpperCase()];
    if (proto === undefined) throw new TraceFilterError(`vip ${text}: protocol "${m[4]}" is not TCP or UDP`);
    sel.proto = proto;
  }
  return sel;
}

/** "ADDRESS" or "ADDRESS/LENGTH". */
export function parseClientPrefix(text: string): ClientPrefix {
  const [addr = '', len, extra] = text.split('/');
  if (extra !== undefined || !isIP(addr)) throw new TraceFilterError(`client: "${text}" is not an address or ADDRESS/PREFIX-LENGTH`);
  const address = parseIp(addr);
  const bits = address.family === 4 ? 32 : 128;
  const prefixLength = len === undefined ? bits : Number(len);
  if (!/^\d+$/.test(len ?? String(bits)) || prefixLength > bits) {
    throw new TraceFilterError(`client ${text}: prefix length "${len}" is not in 0..${bits}`);
  }
  return { text, address, prefixLength, mask: prefixMask(prefixLength, address.family) };
}

export function parseTraceFilter(input: { vip?: readonly string[]; client?: string; port?: string }): TraceFilter {
  const filter: TraceFilter = { vips: (input.vip ?? []).map(parseVipSelector) };
  if (input.client !== undefined) filter.client = parseClientPrefix(input.client);
  if (input.port !== undefined) filter.port = portNumber('port', input.port);
  return filter;
}

function selects(sel: VipSelector, vip: InstalledVipRef): boolean {
  return sel.address.text === vip.address && (sel.port === undefined || sel.port === vip.port) &&
    (sel.proto === undefined || sel.proto === vip.proto);
}

/** The installed VIPs a filter names (none when it names no VIP). */
export function selectedVips(filter: TraceFilter, installed: readonly InstalledVipRef[]): InstalledVipRef[] {
  return installed.filter((v) => filter.vips.some((s) => selects(s, v)));
}

/**
 * The program's rules for a filter: one per selected VIP, or one for all
 * packets. A filter whose VIPs are not installed compiles to no rule.
 */
export function compileRules(filter: TraceFilter, installed: readonly InstalledVipRef[]): TraceRule[] {
  const base: TraceRule = {};
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

/** The same test as the program's: (client & mask) == (prefix & mask). */
function inPrefix(family: number, addr: Buffer, prefix: ClientPrefix): boolean {
  if (family !== prefix.address.family) return false;
  return prefix.mask.every((m, i) => (addr[i]! & m) === (prefix.address.bytes[i]! & m));
}

/** Whether a record is this filter's (the program's rules are shared by every session). */
export function recordMatches(filter: TraceFilter, rec: RawTraceRecord, vip: InstalledVipRef | undefined): boolean {
  if (filter.vips.length && !(vip && filter.vips.some((s) => selects(s, vip)))) return false;
  if (filter.port !== undefined && rec.flow.sport !== filter.port && rec.flow.dport !== filter.port) return false;
  if (filter.client && !inPrefix(rec.flow.family, rec.flow.srcBytes, filter.client)) return false;
  return true;
}
