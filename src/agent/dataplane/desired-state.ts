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
} from '../../bpf/consts.js';
import { parseMac } from '../../bpf/structs.js';

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

interface VipResult {
  vip: NormalizedVip | null;
  /** Paths relative to the VIP (".port: ..."), so a cached result fits any position. */
  problems: string[];
}

/**
 * Validated VIPs by their input: an apply re-validates only VIPs whose input
 * changed (1000 VIPs x 100 reals take ~90 ms to validate from scratch).
 */
const vipCache = new Map<string, VipResult>();
const VIP_CACHE_MAX = 65536;

function vipInputKey(v: VipSpec, hasSrcV4: boolean, hasSrcV6: boolean): string {
  let key = `${+hasSrcV4}${+hasSrcV6}|${v.address}|${v.port}|${v.protocol}|${+!!v.hashNoSrcPort}${+!!v.lruBypass}|`;
  for (const r of v.reals) key += `${r.address}=${r.weight};`;
  return key;
}

function normalizeVipCached(v: VipSpec, hasSrcV4: boolean, hasSrcV6: boolean): VipResult {
  const key = vipInputKey(v, hasSrcV4, hasSrcV6);
  let result = vipCache.get(key);
  if (!result) {
    result = normalizeVip(v, hasSrcV4, hasSrcV6);
    if (vipCache.size >= VIP_CACHE_MAX) vipCache.clear();
    vipCache.set(key, result);
  }
  return result;
}

function normalizeVip(v: VipSpec, hasSrcV4: boolean, hasSrcV6: boolean): VipResult {
  const problems: string[] = [];
  const address = tryParse(v.address, '.address', problems);
  if (!Number.isInteger(v.port) || v.port < 0 || v.port > MAX_PORT) {
    problems.push(`.port: ${v.port} is not an integer in 0..${MAX_PORT} (0 = all ports)`);
  }
  if (v.protocol !== 'TCP' && v.protocol !== 'UDP') {
    problems.push(`.protocol: ${JSON.stringify(v.protocol)} is not TCP or UDP`);
  }
  if (!address) return { vip: null, problems };
  const id = vipId(address, v.port, v.protocol);
  const reals: NormalizedReal[] = [];
  const realSeen = new Set<string>();
  v.reals.forEach((r, j) => {
    const rw = `.reals[${j}]`;
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
    if (ra.family === 4 && !hasSrcV4) problems.push(`${rw}: IPv4 real ${ra.text} needs encap.srcV4`);
    if (ra.family === 6 && !hasSrcV6) problems.push(`${rw}: IPv6 real ${ra.text} needs encap.srcV6`);
    reals.push({ address: ra, weight: r.weight });
  });
  const flags = (v.hashNoSrcPort ? VIP_F_HASH_NO_SRC_PORT : 0) | (v.lruBypass ? VIP_F_LRU_BYPASS : 0);
  const proto = v.protocol === 'TCP' ? IPPROTO_TCP : IPPROTO_UDP;
  return { vip: problems.length ? null : { id, address, port: v.port, proto, flags, reals }, problems };
}

/**
 * Parsed addresses are shared objects, so counting by identity is fast; the
 * parse cache may have been refilled in between, so a count over capacity is
 * confirmed by text before it becomes an error.
 */
function distinctReals(vips: NormalizedVip[], byText = false): number {
  const seen = new Set<IpAddress | string>();
  for (const v of vips) for (const r of v.reals) seen.add(byText ? r.address.text : r.address);
  return seen.size;
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
    const { vip, problems: own } = normalizeVipCached(v, !!srcV4, !!srcV6);
    for (const p of own) problems.push(`vips[${i}]${p}`);
    if (!vip) return;
    if (seen.has(vip.id)) problems.push(`vips[${i}]: VIP ${vip.id} is listed twice`);
    seen.add(vip.id);
    vips.push(vip);
  });

  if (vips.length > capacity.vips) problems.push(`${vips.length} VIPs exceed the capacity of ${capacity.vips}`);
  if (distinctReals(vips) > capacity.reals) {
    const exact = distinctReals(vips, true);
    if (exact > capacity.reals) problems.push(`${exact} distinct reals exceed the capacity of ${capacity.reals}`);
  }
  if (problems.length) throw new InvalidStateError(problems);
  vips.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { encap, vips };
}
