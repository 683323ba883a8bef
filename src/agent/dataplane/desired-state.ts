/**
 * What the dataplane should hold, and its validation. Everything wrong with a
 * desired state is found here, before any map is written, as data: which VIP,
 * which field, why.
 */
import { type IpAddress, parseIp } from '../../lib/ip.js';
import { LruCache, type LruCacheStats } from '../../lib/lru-cache.js';
import {
  IPPROTO_TCP, IPPROTO_UDP, isQuicServerId, MAX_REALS, MAX_VIPS, QUIC_MAX_SERVER_ID, QUIC_MIN_SERVER_ID, VIP_F_HASH_NO_SRC_PORT, VIP_F_LRU_BYPASS, VIP_F_NO_ICMP_ECHO,
  VIP_F_QUIC,
} from '../../bpf/consts.js';
import { usableRealIds } from '../../bpf/maps.js';
import { type EncapConfig, parseMac } from '../../bpf/structs.js';

import type { Protocol } from '../../api/types.js';
import { componentLog } from '../../lib/log.js';

const log = componentLog('dataplane');

export type { EncapConfig, Protocol };

/**
 * Something wrong with a desired state. A VIP's problems have paths relative
 * to the VIP (".reals[1].address"; "" for the VIP as a whole); general ones,
 * absolute ("encap.srcV4").
 */
export interface Problem {
  path: string;
  reason: string;
}

/** How a desired state splits into what the dataplane would program and what not. */
export interface Acceptance {
  /** Indexes into the given vips, ascending, that the dataplane would program together. */
  accepted: number[];
  /** Index -> why it is not programmed. */
  refused: Map<number, Problem[]>;
  /** Problems of no VIP (encap): when non-empty, nothing is accepted. */
  general: Problem[];
}

export interface RealSpec {
  address: string;
  /** Relative share of new flows. 0: draining (kept for its flows, out of the ring). */
  weight: number;
  /** QUIC connection-ID routing: the server id the real puts in the connection IDs it issues (one per real on a node). */
  quicServerId?: number;
}

export interface VipSpec {
  address: string;
  /** 0 balances every port of the address. */
  port: number;
  protocol: Protocol;
  hashNoSrcPort?: boolean;
  lruBypass?: boolean;
  /** Echo requests to the address answered by the balancer (default true); false on any VIP of the address turns it off. */
  icmpEcho?: boolean;
  /** UDP only: short-header QUIC packets go to the real whose server id their connection ID carries. */
  quicConnectionIdRouting?: boolean;
  reals: RealSpec[];
}

export interface DesiredState {
  encap: EncapConfig;
  vips: VipSpec[];
  /**
   * Addresses configured on this node, any interface. A VIP may not be one:
   * XDP sees a packet before the host does, so such a VIP would capture the
   * node's own traffic (kubelet, SSH, BGP, VXLAN).
   */
  nodeAddresses?: readonly string[];
}

export interface NormalizedReal {
  address: IpAddress;
  weight: number;
  quicServerId?: number;
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
export const MAX_USABLE_REALS = usableRealIds(MAX_REALS);

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

export const tooManyVips = (n: number, c: Capacity) => `${n} VIPs exceed the capacity of ${c.vips}`;
export const tooManyReals = (n: number, c: Capacity) => `${n} distinct reals exceed the capacity of ${c.reals}`;
/** Reals of a changed VIP are added before its old ones are released: for a moment both are installed. */
export const peakOverCapacity = (n: number, c: Capacity) =>
  `the change needs ${n} reals installed at once (old and new reals of changed VIPs), over the capacity of ${c.reals}: apply it in two steps`;

/** Where a VIP's problem is, as the standalone file and the apply error name it. */
export const problemText = (p: Problem, prefix = ''): string => `${prefix}${p.path}: ${p.reason}`;

function tryParse(text: unknown, path: string, problems: Problem[]): IpAddress | null {
  try {
    if (typeof text !== 'string') throw new Error(`${JSON.stringify(text)} is not a string`);
    return parseIp(text);
  } catch (err) {
    problems.push({ path, reason: (err as Error).message });
    return null;
  }
}

interface VipResult {
  vip: NormalizedVip | null;
  /** Paths relative to the VIP, so a cached result fits any position. */
  problems: Problem[];
}

/**
 * The validated-VIP cache's budget. It must hold every VIP of an apply at the
 * scale aimed at (1000 VIPs x 100 reals: about 42 MB by the estimate below),
 * or, being LRU, each apply would miss on every VIP; the rest keeps earlier
 * versions of changed VIPs, for specs that flip back.
 */
export const VIP_CACHE_BUDGET_BYTES = 64 * 2 ** 20;
/**
 * Estimated heap of one cached real beside its key text, measured on Node 26
 * (64-bit): its NormalizedReal and array slot (~50 B) and its parsed address
 * (~300 B), counted because the entry may be the address's last holder once
 * the parse cache has dropped it. A problem of an invalid VIP (object, path,
 * reason) weighs less, and is counted as one real.
 */
export const ESTIMATED_BYTES_PER_REAL = 384;
/** Estimated heap of one cached VIP beside its reals: result, VIP, its address, problems array, map slot. */
export const ESTIMATED_BYTES_PER_VIP = 1024;
/** A string's characters take one byte or, if any is outside Latin-1, two: count the worst. */
const BYTES_PER_KEY_CHAR = 2;

/**
 * Validated VIPs by their input: an apply re-validates only VIPs whose input
 * changed (1000 VIPs x 100 reals take ~90 ms to validate from scratch).
 * Bounded by estimated bytes, not entries: a VIP of 1000 reals weighs a
 * thousand of one real, and churn through large VIPs filled hundreds of MB.
 */
const vipCache = new LruCache<string, VipResult>({ budget: VIP_CACHE_BUDGET_BYTES, weigh: estimatedBytes });

/** How the validated-VIP cache is doing: entries, estimated bytes (weight), hits, misses (each a validation). */
export function vipCacheStats(): LruCacheStats {
  return vipCache.stats();
}

/** An upper estimate of the heap a cached VIP holds; see the constants' notes. */
function estimatedBytes(key: string, result: VipResult): number {
  // A valid VIP holds its reals; an invalid one, only its problems.
  const items = result.vip ? result.vip.reals.length : result.problems.length;
  return key.length * BYTES_PER_KEY_CHAR + ESTIMATED_BYTES_PER_VIP + items * ESTIMATED_BYTES_PER_REAL;
}

/** Keys by spec object: an unchanged VIP's spec is the same object sync after sync (cluster-vips.ts specsOf). */
const inputKeys = new WeakMap<VipSpec, { sources: number; key: string }>();

function vipInputKey(v: VipSpec, hasSrcV4: boolean, hasSrcV6: boolean): string {
  const sources = +hasSrcV4 * 2 + +hasSrcV6;
  const known = inputKeys.get(v);
  if (known?.sources === sources) return known.key;
  const key = vipInputKeyUncached(v, hasSrcV4, hasSrcV6);
  inputKeys.set(v, { sources, key });
  return key;
}

function vipInputKeyUncached(v: VipSpec, hasSrcV4: boolean, hasSrcV6: boolean): string {
  let key = `${+hasSrcV4}${+hasSrcV6}|${v.address}|${v.port}|${v.protocol}|${+!!v.hashNoSrcPort}${+!!v.lruBypass}${+(v.icmpEcho === false)}` +
    `${+!!v.quicConnectionIdRouting}|`;
  for (const r of v.reals) key += r.quicServerId === undefined ? `${r.address}=${r.weight};` : `${r.address}=${r.weight}#${r.quicServerId};`;
  return key;
}

function normalizeVipCached(v: VipSpec, hasSrcV4: boolean, hasSrcV6: boolean): VipResult {
  const key = vipInputKey(v, hasSrcV4, hasSrcV6);
  let result = vipCache.get(key);
  if (!result) {
    result = normalizeVip(v, hasSrcV4, hasSrcV6);
    vipCache.set(key, result);
  }
  return result;
}

/**
 * The server ids of a QUIC VIP's reals, in place. An id out of range, or one
 * that two reals of the VIP claim, is left out (those reals' packets follow
 * the ring) and logged: refusing the VIP would take every port of it down for
 * one bad pod annotation, and a repeated id cannot say which real it means.
 */
function assignServerIds(vip: string, given: readonly RealSpec[], reals: NormalizedReal[]): void {
  const holders = new Map<number, number>();
  for (const r of given) if (isQuicServerId(r.quicServerId)) holders.set(r.quicServerId, (holders.get(r.quicServerId) ?? 0) + 1);
  const left: string[] = [];
  given.forEach((r, i) => {
    const sid = r.quicServerId;
    if (sid === undefined) return;
    if (!isQuicServerId(sid)) left.push(`${r.address}: ${sid} is not an integer in ${QUIC_MIN_SERVER_ID}..${QUIC_MAX_SERVER_ID}`);
    else if (holders.get(sid)! > 1) left.push(`${r.address}: server id ${sid} is claimed by ${holders.get(sid)} reals`);
    else reals[i]!.quicServerId = sid;
  });
  if (left.length) log.warn({ vip, ignored: left }, 'QUIC server ids left out: packets naming them follow the ring');
}

function normalizeVip(v: VipSpec, hasSrcV4: boolean, hasSrcV6: boolean): VipResult {
  const problems: Problem[] = [];
  const address = tryParse(v.address, '.address', problems);
  if (!Number.isInteger(v.port) || v.port < 0 || v.port > MAX_PORT) {
    problems.push({ path: '.port', reason: `${v.port} is not an integer in 0..${MAX_PORT} (0 = all ports)` });
  }
  if (v.protocol !== 'TCP' && v.protocol !== 'UDP') {
    problems.push({ path: '.protocol', reason: `${JSON.stringify(v.protocol)} is not TCP or UDP` });
  }
  if (!address) return { vip: null, problems };
  const id = vipId(address, v.port, v.protocol);
  const reals: NormalizedReal[] = [];
  const realSeen = new Set<string>();
  v.reals.forEach((r, j) => {
    const path = `.reals[${j}]`;
    const ra = tryParse(r.address, `${path}.address`, problems);
    if (!Number.isFinite(r.weight) || r.weight < 0) {
      problems.push({ path: `${path}.weight`, reason: `${r.weight} is not a number >= 0` });
    }
    if (!ra) return;
    if (realSeen.has(ra.text)) problems.push({ path, reason: `real ${ra.text} is listed twice for VIP ${id}` });
    realSeen.add(ra.text);
    if (address.family === 6 && ra.family === 4) {
      problems.push({ path, reason: `IPv6 VIP ${id} cannot use IPv4 real ${ra.text} (IPv6-in-IPv4 is not supported)` });
    }
    if (ra.family === 4 && !hasSrcV4) problems.push({ path, reason: `IPv4 real ${ra.text} needs encap.srcV4` });
    if (ra.family === 6 && !hasSrcV6) problems.push({ path, reason: `IPv6 real ${ra.text} needs encap.srcV6` });
    reals.push({ address: ra, weight: r.weight });
  });
  if (v.quicConnectionIdRouting && v.protocol !== 'UDP') {
    problems.push({ path: '.quicConnectionIdRouting', reason: `QUIC runs over UDP: VIP ${id} is ${v.protocol}` });
  }
  if (v.quicConnectionIdRouting && !problems.length) assignServerIds(id, v.reals, reals);
  if (v.icmpEcho !== undefined && typeof v.icmpEcho !== 'boolean') {
    problems.push({ path: '.icmpEcho', reason: `${JSON.stringify(v.icmpEcho)} is not true or false` });
  }
  const flags = (v.hashNoSrcPort ? VIP_F_HASH_NO_SRC_PORT : 0) | (v.lruBypass ? VIP_F_LRU_BYPASS : 0) |
    (v.icmpEcho === false ? VIP_F_NO_ICMP_ECHO : 0) | (v.quicConnectionIdRouting ? VIP_F_QUIC : 0);
  const proto = v.protocol === 'TCP' ? IPPROTO_TCP : IPPROTO_UDP;
  return { vip: problems.length ? null : { id, address, port: v.port, proto, flags, reals }, problems };
}

/** A desired state checked VIP by VIP; capacity is not looked at. */
export interface ValidatedState {
  encap: EncapConfig;
  /** Problems of the encapsulation settings (absolute paths). */
  general: Problem[];
  /** Per input VIP: the VIP canonicalised, or what is wrong with it (paths relative to it). */
  vips: (NormalizedVip | Problem[])[];
}

export function validate(state: DesiredState): ValidatedState {
  const general: Problem[] = [];
  const { encap } = state;
  for (const field of ['nextHopMac', 'srcMac'] as const) {
    try {
      parseMac(encap[field]);
    } catch (err) {
      general.push({ path: `encap.${field}`, reason: (err as Error).message });
    }
  }
  const srcV4 = encap.srcV4 === undefined ? null : tryParse(encap.srcV4, 'encap.srcV4', general);
  const srcV6 = encap.srcV6 === undefined ? null : tryParse(encap.srcV6, 'encap.srcV6', general);
  if (srcV4 && srcV4.family !== 4) general.push({ path: 'encap.srcV4', reason: `${srcV4.text} is not IPv4` });
  if (srcV6 && srcV6.family !== 6) general.push({ path: 'encap.srcV6', reason: `${srcV6.text} is not IPv6` });
  if (!Number.isInteger(encap.maxPktSize) || encap.maxPktSize < 0) {
    general.push({ path: 'encap.maxPktSize', reason: `${encap.maxPktSize} is not a non-negative integer` });
  }

  const own = new Set<string>();
  for (const a of state.nodeAddresses ?? []) {
    const parsed = tryParse(a, 'nodeAddresses', general);
    if (parsed) own.add(parsed.text);
  }
  const seen = new Set<string>();
  const vips = state.vips.map((v): NormalizedVip | Problem[] => {
    const { vip, problems } = normalizeVipCached(v, !!srcV4, !!srcV6);
    if (!vip) return problems;
    if (own.has(vip.address.text)) return [nodeAddressProblem(vip.address.text)];
    if (seen.has(vip.id)) return [{ path: '', reason: `VIP ${vip.id} is listed twice` }];
    seen.add(vip.id);
    return vip;
  });
  return { encap, general, vips };
}

export const isValid = (v: NormalizedVip | Problem[]): v is NormalizedVip => !Array.isArray(v);

/** The QUIC server ids of a VIP's reals, if it routes by them, with the address of the real each names. */
export function quicServersOf(v: NormalizedVip): { serverId: number; address: string }[] {
  if (!(v.flags & VIP_F_QUIC)) return [];
  return v.reals.flatMap((r) => (r.quicServerId === undefined ? [] : [{ serverId: r.quicServerId, address: r.address.text }]));
}

function nodeAddressProblem(address: string): Problem {
  return {
    path: '.address',
    reason: `${address} is an address of this node: XDP sees packets before the host, so the VIP would capture the node's own traffic; use an address no node has`,
  };
}

/**
 * Parsed addresses are shared objects, so counting by identity is fast; the
 * parse cache may have dropped and re-parsed an address in between, so a
 * count over capacity is confirmed by text before it becomes an error.
 */
function distinctReals(vips: NormalizedVip[], byText = false): number {
  const seen = new Set<IpAddress | string>();
  for (const v of vips) for (const r of v.reals) seen.add(byText ? r.address.text : r.address);
  return seen.size;
}

/**
 * Validates and canonicalises a state to be programmed whole; throws
 * InvalidStateError listing every problem ("vips[3].port: ...").
 */
export function normalize(state: DesiredState, capacity: Capacity = DEFAULT_CAPACITY): NormalizedState {
  const validated = validate(state);
  const problems = validated.general.map((p) => problemText(p));
  validated.vips.forEach((v, i) => {
    if (!isValid(v)) for (const p of v) problems.push(problemText(p, `vips[${i}]`));
  });
  const vips = validated.vips.filter(isValid);
  if (vips.length > capacity.vips) problems.push(tooManyVips(vips.length, capacity));
  // Each VIP's count summed first (O(VIPs)): only a sum over capacity needs the distinct count, O(all reals).
  if (vips.reduce((n, v) => n + v.reals.length, 0) > capacity.reals && distinctReals(vips) > capacity.reals) {
    const exact = distinctReals(vips, true);
    if (exact > capacity.reals) problems.push(tooManyReals(exact, capacity));
  }
  if (problems.length) throw new InvalidStateError(problems);
  vips.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { encap: state.encap, vips };
}
