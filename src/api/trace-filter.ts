/**
 * The trace filter syntax that `xdplb trace` and the agent's /trace endpoint
 * share: what a VIP selector, a client prefix and a port mean, parsed and
 * checked the same way on both sides, so the CLI refuses (with its own flag
 * names) what the agent would refuse. What the agent makes of a filter, the
 * program's rules, is src/agent/trace/trace-rules.ts.
 */
import { isIP } from 'node:net';
import { type IpAddress, parseIp } from '../lib/ip.js';
import { MAX_PORT, MIN_PORT, type Protocol } from './types.js';

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP'];
const ADDRESS_BITS = { 4: 32, 6: 128 } as const;

/** A VIP selector: an address, optionally narrowed to a port and protocol. */
export interface VipSelector {
  text: string;
  address: IpAddress;
  port?: number;
  protocol?: Protocol;
}

/** Client (source) addresses: the first prefixLength bits of address. */
export interface ClientPrefix {
  text: string;
  address: IpAddress;
  prefixLength: number;
}

/** What a trace session asks for; every field given must match. */
export interface TraceFilter {
  /** Packets of these VIPs; empty: any packet, VIP or not. */
  vips: VipSelector[];
  client?: ClientPrefix;
  /** Source or destination port. */
  port?: number;
}

/** The user's input was wrong: the message says which part and what is allowed. */
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
  if (!/^\d+$/.test(raw) || n < MIN_PORT || n > MAX_PORT) {
    throw new TraceFilterError(`${what}: "${raw}" is not a port in ${MIN_PORT}..${MAX_PORT}`);
  }
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
    const protocol = PROTOCOLS.find((p) => p === m[4]!.toUpperCase());
    if (protocol === undefined) throw new TraceFilterError(`vip ${text}: protocol "${m[4]}" is not TCP or UDP`);
    sel.protocol = protocol;
  }
  return sel;
}

/** "ADDRESS" or "ADDRESS/LENGTH". */
export function parseClientPrefix(text: string): ClientPrefix {
  const [addr = '', len, extra] = text.split('/');
  if (extra !== undefined || !isIP(addr)) throw new TraceFilterError(`client: "${text}" is not an address or ADDRESS/PREFIX-LENGTH`);
  const address = parseIp(addr);
  const bits = ADDRESS_BITS[address.family];
  const prefixLength = len === undefined ? bits : Number(len);
  if (!/^\d+$/.test(len ?? String(bits)) || prefixLength > bits) {
    throw new TraceFilterError(`client ${text}: prefix length "${len}" is not in 0..${bits}`);
  }
  return { text, address, prefixLength };
}

/** The filter of --vip (repeatable), --client and --port, or of the same /trace parameters. */
export function parseTraceFilter(input: { vip?: readonly string[]; client?: string; port?: string }): TraceFilter {
  const filter: TraceFilter = { vips: (input.vip ?? []).map(parseVipSelector) };
  if (input.client !== undefined) filter.client = parseClientPrefix(input.client);
  if (input.port !== undefined) filter.port = portNumber('port', input.port);
  return filter;
}
