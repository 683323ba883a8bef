/**
 * Which pools a VIP may take its address from, and whether a given address is
 * allowed: it must lie in an accepted pool that selects the VIP's namespace and
 * serves its balancer, and be no node address, pod CIDR or Service address.
 * Addresses compare as numbers, so every spelling of an IPv6 address is one.
 */
import { AddressReason, type AddressReasonCode } from '../../api/loadbalancervip.js';
import { matchesSelector } from '../selector.js';
import { type Cidr, type NumericIp, rangeContains, toNumeric } from './cidr.js';
import type { Forbidden } from './forbidden.js';
import { describePool, type Pool } from './pool.js';

/** The VIP's namespace, as a pool's namespaceSelector sees it. */
export interface NamespaceInfo {
  name: string;
  labels: Record<string, string>;
}

export type AddressCheck = { ok: true; pool: Pool } | { ok: false; code: AddressReasonCode; reason: string };

export const poolSelects = (pool: Pool, ns: NamespaceInfo): boolean => matchesSelector(pool.namespaceSelector, ns.labels);

export const poolServes = (pool: Pool, balancer: string): boolean => pool.balancers.length === 0 || pool.balancers.includes(balancer);

/** Accepted pools that the namespace may use for the balancer, by name. */
export function allowedPools(ns: NamespaceInfo, balancer: string, pools: readonly Pool[]): Pool[] {
  return pools.filter((p) => !p.refused && poolSelects(p, ns) && poolServes(p, balancer)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** "pools for it: a (198.19.0.0/24), b (2001:db8:19::/64)" or "no pool allows it". */
export function describeAllowed(ns: NamespaceInfo, balancer: string, pools: readonly Pool[]): string {
  const allowed = allowedPools(ns, balancer, pools);
  return allowed.length === 0
    ? `no pool allows namespace ${ns.name} for balancer ${balancer}`
    : `pools namespace ${ns.name} may use for balancer ${balancer}: ${allowed.map(describePool).join(', ')}`;
}

/** The accepted pools' CIDRs (disjoint) sorted by address, per pool list: built once, searched by bisection. */
const acceptedIndex = new WeakMap<readonly Pool[], { cidr: Cidr; pool: Pool }[]>();

function acceptedCidrs(pools: readonly Pool[]): { cidr: Cidr; pool: Pool }[] {
  let index = acceptedIndex.get(pools);
  if (!index) {
    index = pools.filter((p) => !p.refused).flatMap((pool) => pool.cidrs.map((cidr) => ({ cidr, pool })));
    index.sort((a, b) => a.cidr.family - b.cidr.family || (a.cidr.first < b.cidr.first ? -1 : a.cidr.first > b.cidr.first ? 1 : 0));
    acceptedIndex.set(pools, index);
  }
  return index;
}

/** The accepted pool holding ip (accepted pools do not overlap, so at most one). */
export function acceptedPoolOf(ip: NumericIp, pools: readonly Pool[]): Pool | undefined {
  const index = acceptedCidrs(pools);
  let lo = 0;
  let hi = index.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const c = index[mid]!.cidr;
    if (c.family < ip.family || (c.family === ip.family && c.first <= ip.value)) lo = mid + 1;
    else hi = mid;
  }
  const hit = index[lo - 1];
  return hit && rangeContains(hit.cidr, ip) ? hit.pool : undefined;
}

/** Whether a VIP of namespace ns on balancer may have this address; if not, why, in one sentence. */
export function checkAddress(address: string, ns: NamespaceInfo, balancer: string, pools: readonly Pool[], forbidden: Forbidden): AddressCheck {
  let ip: NumericIp;
  try {
    ip = toNumeric(address);
  } catch {
    return { ok: false, code: AddressReason.NotAnAddress, reason: `"${address}" is not an IPv4 or IPv6 address` };
  }
  const never = forbidden.reasonFor(ip);
  if (never) return { ok: false, code: AddressReason.Forbidden, reason: `${address} ${never}: never allowed as a VIP, whatever the pools say` };
  const pool = acceptedPoolOf(ip, pools);
  if (!pool) {
    const refused = pools.find((p) => p.refused && p.cidrs.some((c) => rangeContains(c, ip)));
    const where = refused ? `${address} is only in pool ${refused.name}, which is refused (${refused.refused})` : `${address} is in no pool`;
    return { ok: false, code: refused ? AddressReason.PoolRefused : AddressReason.NotInPool, reason: `${where}; ${describeAllowed(ns, balancer, pools)}` };
  }
  if (!poolSelects(pool, ns)) {
    return { ok: false, code: AddressReason.NamespaceNotAllowed, reason: `${address} is in pool ${pool.name}, whose namespaceSelector does not select namespace ${ns.name}; ${describeAllowed(ns, balancer, pools)}` };
  }
  if (!poolServes(pool, balancer)) {
    return { ok: false, code: AddressReason.BalancerNotServed, reason: `${address} is in pool ${pool.name}, which serves balancers ${pool.balancers.join(', ')}, not ${balancer}; ${describeAllowed(ns, balancer, pools)}` };
  }
  return { ok: true, pool };
}
