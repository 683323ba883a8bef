/**
 * What the dataplane should hold, and its validation. Everything wrong with a
 * desired state is found here, before any map is written.
 */
import { type IpAddress, parseIp } from '../../lib/ip.js';
import {
  IPPROTO_TCP,
  IPPROTO_UDP,
  MAX_REALS,
  MAX_VIPS,
  NO_REAL_ID,
  VIP_F_HASH_NO_SRC_PORT,
  VIP_F_LRU_BYPASS,
} from '../bpf/layout.js';
import { parseMac } from '../bpf/codecs.js';

import type { Protocol } from '../../api/types.js';

export type { Protocol };

export interface RealSpec {
  address: string;
  /** Relative share of new flows. 0: draining (kept for its flows, out of the ring). */
  weight: number;
}

export interface VipSpec {
  address: string;
  /** 0 balances every port of the address. */
  port: number;
  protocol: Protocol;
  hashNoSrcPort?: boolean;
  lruBypass?: boolean;
  reals: RealSpec[];
}

/** How encapsulated packets leave this node. */
export interface EncapConfig {
  nextHopMac: string;
  srcMac: string;
  /** Outer source for IPv4 outer headers (this node's address); needed by IPv4 reals. */
  srcV4?: string;
  /** Outer source for IPv6 outer headers; needed by IPv6 reals. */
  srcV6?: string;
  /** Largest outer IP packet the NIC may send (its MTU); 0 disables the check. */
  maxPktSize: number;
}

export interface DesiredState {
  encap: EncapConfig;
  vips: VipSpec[];
}

export interface NormalizedReal {
  address: IpAddress;
  weight: number;
}

export interface NormalizedVip {
  /** Canonical "address:port/protocol", the VIP's identity. */
  id: string;
  address: IpAddress;
  port: number;
  proto: number;
  flags: number;
  reals: NormalizedReal[];
}

export interface NormalizedState {
  encap: EncapConfig;
  vips: NormalizedVip[];
}

const MAX_PORT = 65535;
export const MAX_USABLE_REALS = MAX_REALS - 1 - NO_REAL_ID;

/** How many VIPs and (usable) reals the loaded maps hold. */
export interface Capacity {
  vips: number;
  reals: number;
}

export const DEFAULT_CAPACITY: Capacity = { vips: MAX_VIPS, reals: MAX_USABLE_REALS };

export function vipId(address: IpAddress, port: number, protocol: Protocol): string {
  const a = address.family === 6 ? `[${address.text}]` : address.text;
  return `${a}:${port}/${protocol}`;
}

export class InvalidStateError extends Error {
  constructor(readonly problems: string[]) {
    super(`desired state rejected: ${problems.join('; ')}`);
    this.name = 'InvalidStateError';
  }
}

function tryParse(text: unknown, what: string, problems: string[]): IpAddress | null {
  try {
    if (typeof text !== 'string') throw new Error(`${JSON.stringify(text)} is not a string`);
    return parseIp(text);
  } catch (err) {
    problems.push(`${what}: ${(err as Error).message}`);
    return null;
  }
}

/** Validates and canonicalises; throws InvalidStateError listing every problem. */
export function normalize(state: DesiredState, capacity: Capacity = DEFAULT_CAPACITY): NormalizedState {
  const problems: string[] = [];
  const { encap } = state;
  for (const field of ['nextHopMac', 'srcMac'] as const) {
    try {
      parseMac(encap[field]);
    } catch (err) {
      problems.push(`encap.${field}: ${(err as Error).message}`);
    }
  }
  const srcV4 = encap.srcV4 === undefined ? null : tryParse(encap.srcV4, 'encap.srcV4', problems);
  const srcV6 = encap.srcV6 === undefined ? null : tryParse(encap.srcV6, 'encap.srcV6', problems);
  if (srcV4 && srcV4.family !== 4) problems.push(`encap.srcV4: ${srcV4.text} is not IPv4`);
  if (srcV6 && srcV6.family !== 6) problems.push(`encap.srcV6: ${srcV6.text} is not IPv6`);
  if (!Number.isInteger(encap.maxPktSize) || encap.maxPktSize < 0) {
    problems.push(`encap.maxPktSize: ${encap.maxPktSize} is not a non-negative integer`);
  }

  const vips: NormalizedVip[] = [];
  const seen = new Set<string>();
  state.vips.forEach((v, i) => {
    const where = `vips[${i}]`;
    const address = tryParse(v.address, `${where}.address`, problems);
    if (!Number.isInteger(v.port) || v.port < 0 || v.port > MAX_PORT) {
      problems.push(`${where}.port: ${v.port} is not an integer in 0..${MAX_PORT} (0 = all ports)`);
    }
    if (v.protocol !== 'TCP' && v.protocol !== 'UDP') {
      problems.push(`${where}.protocol: ${JSON.stringify(v.protocol)} is not TCP or UDP`);
    }
    if (!address) return;
    const id = vipId(address, v.port, v.protocol);
    if (seen.has(id)) problems.push(`${where}: VIP ${id} is listed twice`);
    seen.add(id);
    const reals: NormalizedReal[] = [];
    const realSeen = new Set<string>();
    v.reals.forEach((r, j) => {
      const rw = `${where}.reals[${j}]`;
      const ra = tryParse(r.address, `${rw}.address`, problems);
      if (!Number.isFinite(r.weight) || r.weight < 0) {
        problems.push(`${rw}.weight: ${r.weight} is not a number >= 0`);
      }
      if (!ra) return;
      if (realSeen.has(ra.text)) problems.push(`${rw}: real ${ra.text} is listed twice for VIP ${id}`);
      realSeen.add(ra.text);
      if (address.family === 6 && ra.family === 4) {
        problems.push(`${rw}: IPv6 VIP ${id} cannot use IPv4 real ${ra.text} (IPv6-in-IPv4 is not supported)`);
      }
      if (ra.family === 4 && !srcV4) problems.push(`${rw}: IPv4 real ${ra.text} needs encap.srcV4`);
      if (ra.family === 6 && !srcV6) problems.push(`${rw}: IPv6 real ${ra.text} needs encap.srcV6`);
      reals.push({ address: ra, weight: r.weight });
    });
    const flags = (v.hashNoSrcPort ? VIP_F_HASH_NO_SRC_PORT : 0) | (v.lruBypass ? VIP_F_LRU_BYPASS : 0);
    vips.push({ id, address, port: v.port, proto: v.protocol === 'TCP' ? IPPROTO_TCP : IPPROTO_UDP, flags, reals });
  });

  if (vips.length > capacity.vips) problems.push(`${vips.length} VIPs exceed the capacity of ${capacity.vips}`);
  const allReals = new Set(vips.flatMap((v) => v.reals.map((r) => r.address.text)));
  if (allReals.size > capacity.reals) {
    problems.push(`${allReals.size} distinct reals exceed the capacity of ${capacity.reals}`);
  }
  if (problems.length) throw new InvalidStateError(problems);
  vips.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { encap, vips };
}
