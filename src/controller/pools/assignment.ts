/**
 * Automatic addresses: a VIP without spec.address gets the lowest free address
 * of the first (by name) accepted, auto-assigning pool that allows its
 * namespace and balancer. Pure: the caller persists the result in the VIP's
 * status (which makes it stable across controller restarts and leader changes),
 * passes it back as `previous` on the next reconcile, and adds it to the
 * UsedAddresses it keeps; deleting the VIP releases it (remove()).
 *
 * Never handed out: an address any VIP has (spec.address or an earlier
 * assignment: all go into UsedAddresses), a forbidden one (node addresses, pod
 * CIDRs, the Service range), and, in CIDRs wider than /31 (IPv4) or /127
 * (IPv6), the all-zeros address (the network, or IPv6's subnet-router anycast)
 * and the IPv4 all-ones address (the broadcast): VIPs are routed as /32 and
 * /128 so those would work, but some clients and routers mishandle them. A VIP
 * may still name them in spec.address.
 *
 * Cost: a search starts where the previous one in the same CIDR ended (a
 * hint: below it nothing is free), so a forbidden range is jumped once, not
 * once per assignment; a release, or other forbidden ranges, start over.
 * Assigning n addresses one by one is O(n log n) plus the sorted inserts
 * (memmove of n bigints) and one pass over the forbidden ranges.
 */
import { AddressReason, type AddressReasonCode } from '../../api/loadbalancervip.js';
import { canonicalIp } from '../../lib/ip.js';
import { type Cidr, type Family, fromNumeric, type NumericIp, toNumeric } from './cidr.js';
import type { Forbidden } from './forbidden.js';
import { allowedPools, checkAddress, type NamespaceInfo } from './pool-admission.js';
import { describePool, type Pool } from './pool.js';

/** Every address VIPs have, with which VIPs ("namespace/name") have it. */
export class UsedAddresses {
  private readonly holders = new Map<string, Set<string>>();
  /**
   * Per set of forbidden ranges and CIDR: an address below which every one is
   * used or forbidden. Adding keeps that true; removing may not, so it drops them.
   */
  private hints = new WeakMap<Forbidden, Map<string, bigint>>();
  /** Per family, the used addresses in ascending order. */
  private readonly sorted: Record<Family, bigint[]> = { 4: [], 6: [] };

  /** Records that vipKey has address; a text that is no address is ignored (the schema refuses those). */
  add(address: string, vipKey: string): void {
    const ip = tryNumeric(address);
    if (!ip) return;
    const key = keyOf(ip);
    const set = this.holders.get(key);
    if (set) {
      set.add(vipKey);
      return;
    }
    this.holders.set(key, new Set([vipKey]));
    const list = this.sorted[ip.family];
    list.splice(lowerBound(list, ip.value), 0, ip.value);
  }

  /** vipKey no longer has address (deleted, or its address changed). */
  remove(address: string, vipKey: string): void {
    const ip = tryNumeric(address);
    if (!ip) return;
    const key = keyOf(ip);
    const set = this.holders.get(key);
    if (!set?.delete(vipKey) || set.size > 0) return;
    this.holders.delete(key);
    const list = this.sorted[ip.family];
    list.splice(lowerBound(list, ip.value), 1);
    this.hints = new WeakMap();
  }

  /** Where a search of the CIDR may start under these forbidden ranges (see hints). */
  searchStart(forbidden: Forbidden, cidr: Cidr, first: bigint): bigint {
    const hint = this.hints.get(forbidden)?.get(cidr.text);
    return hint !== undefined && hint > first ? hint : first;
  }

  /** Nothing below `upTo` in the CIDR is free under these forbidden ranges. */
  searched(forbidden: Forbidden, cidr: Cidr, upTo: bigint): void {
    let m = this.hints.get(forbidden);
    if (!m) this.hints.set(forbidden, (m = new Map()));
    m.set(cidr.text, upTo);
  }

  /** The VIPs that have the address (any spelling). */
  holdersOf(address: string): ReadonlySet<string> {
    const ip = tryNumeric(address);
    return (ip && this.holders.get(keyOf(ip))) || new Set();
  }

  get size(): number {
    return this.holders.size;
  }

  /** How many distinct used addresses lie in first..last. */
  countIn(family: Family, first: bigint, last: bigint): number {
    const list = this.sorted[family];
    return lowerBound(list, last + 1n) - lowerBound(list, first);
  }

  /** The lowest address in from..last that no VIP has, or undefined. */
  firstFree(family: Family, from: bigint, last: bigint): bigint | undefined {
    const list = this.sorted[family];
    const s = lowerBound(list, from);
    // list[s..] are distinct and ascending, so list[j] - (j - s) never decreases:
    // bisect for the first j where the run of used addresses from `from` breaks.
    let lo = s;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid] === from + BigInt(mid - s)) lo = mid + 1;
      else hi = mid;
    }
    const free = from + BigInt(lo - s);
    return free <= last ? free : undefined;
  }
}

const keyOf = (ip: NumericIp) => `${ip.family}/${ip.value}`;

function tryNumeric(address: string): NumericIp | undefined {
  try {
    return toNumeric(address);
  } catch {
    return undefined;
  }
}

function lowerBound(list: readonly bigint[], value: bigint): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export interface AssignRequest {
  /** "namespace/name" of the VIP. */
  vipKey: string;
  namespace: NamespaceInfo;
  balancer: string;
  /** Only addresses of this family; absent: the first free of any family, in pool and CIDR order. */
  family?: Family;
  /** The address this VIP was given before (its status): kept while it is still allowed. */
  previous?: string;
}

export type Assignment =
  | { ok: true; address: string; pool: string }
  /** previousLost: the VIP's earlier address is no longer allowed; it is not replaced behind the user's back. */
  | { ok: false; code: AddressReasonCode; reason: string; previousLost?: boolean };

/** Addresses of a CIDR that assignment hands out: all but the all-zeros and IPv4 all-ones of wide CIDRs. */
function assignable(c: Cidr): { first: bigint; last: bigint } {
  const wide = c.prefix < (c.family === 4 ? 31 : 127);
  return { first: wide ? c.first + 1n : c.first, last: wide && c.family === 4 ? c.last - 1n : c.last };
}

function firstFreeIn(c: Cidr, used: UsedAddresses, forbidden: Forbidden): bigint | undefined {
  const { first, last } = assignable(c);
  let from = used.searchStart(forbidden, c, first);
  while (from <= last) {
    const free = used.firstFree(c.family, from, last);
    if (free === undefined) break;
    const end = forbidden.coveringEnd({ family: c.family, value: free });
    if (end === undefined) {
      used.searched(forbidden, c, free);
      return free;
    }
    from = end + 1n;
  }
  used.searched(forbidden, c, last + 1n);
  return undefined;
}

/** An address for the VIP, or why there is none. Does not change `used`. */
export function assignAddress(req: AssignRequest, pools: readonly Pool[], used: UsedAddresses, forbidden: Forbidden): Assignment {
  const { namespace: ns, balancer } = req;
  if (req.previous !== undefined) {
    const check = checkAddress(req.previous, ns, balancer, pools, forbidden);
    if (check.ok) return { ok: true, address: canonicalIp(req.previous), pool: check.pool.name };
    return { ok: false, code: AddressReason.AddressRevoked, previousLost: true, reason: `the address it was given, ${req.previous}, is no longer allowed: ${check.reason}. It is not replaced on its own: set spec.address, or re-create the VIP for a new one` };
  }
  const allowed = allowedPools(ns, balancer, pools);
  const auto = allowed.filter((p) => p.autoAssign);
  const familyName = req.family === undefined ? '' : `IPv${req.family} `;
  if (auto.length === 0) {
    const manual = allowed.length > 0 ? `; pools ${allowed.map((p) => p.name).join(', ')} allow it but do not assign automatically (autoAssign: false): set spec.address` : '';
    return { ok: false, code: AddressReason.NoPool, reason: `no pool assigns addresses to namespace ${ns.name} for balancer ${balancer}${manual}` };
  }
  for (const pool of auto) {
    for (const c of pool.cidrs) {
      if (req.family !== undefined && c.family !== req.family) continue;
      const free = firstFreeIn(c, used, forbidden);
      if (free !== undefined) return { ok: true, address: fromNumeric(c.family, free), pool: pool.name };
    }
  }
  return {
    ok: false,
    code: AddressReason.PoolExhausted,
    reason: `no free ${familyName}address for namespace ${ns.name} on balancer ${balancer}: every one of ${auto.map(describePool).join(', ')} is in use or never allowed`,
  };
}
