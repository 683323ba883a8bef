/**
 * Addresses no VIP may have, whatever the pools say: XDP sees a node's packets
 * before its kernel does, so a VIP on any of these would take their traffic.
 *
 * - every Node's addresses (status.addresses that are IP addresses);
 * - every Node's pod CIDRs (spec.podCIDRs, spec.podCIDR);
 * - the Service range. kube-apiserver's --service-cluster-ip-range is not
 *   visible to clients. Since Kubernetes 1.33 the range is served as
 *   networking.k8s.io/v1 ServiceCIDR objects (the one named "kubernetes" is
 *   the flag's): pass them when the API has them. Without them the best a
 *   client can do is the ClusterIPs it sees: pass the Services (at least
 *   default/kubernetes, whose ClusterIP is the range's first address); each
 *   ClusterIP is then forbidden on its own, the rest of the range is not.
 */
import type { V1Node, V1Service, V1ServiceCIDR } from '@kubernetes/client-node';
import { type Family, type IpRange, type NumericIp, parseCidr, singleAddress, toNumeric } from './cidr.js';

export interface ForbiddenRange extends IpRange {
  /** Completes "198.19.0.7 ...": "is node worker-1's address (InternalIP)". */
  readonly reason: string;
}

export interface ForbiddenSources {
  nodes: readonly V1Node[];
  /** ServiceCIDR objects, where the API serves them (1.33+). */
  serviceCIDRs?: readonly V1ServiceCIDR[];
  /** Services whose ClusterIPs are forbidden one by one (at least default/kubernetes without ServiceCIDRs). */
  services?: readonly V1Service[];
}

export interface Forbidden {
  /** Why the address may not be a VIP ("is in node worker-1's pod CIDR 10.244.1.0/24"), or undefined. */
  reasonFor(ip: NumericIp): string | undefined;
  /** The last address of the forbidden ranges that hold ip (the first allowed one after it is this + 1), or undefined. */
  coveringEnd(ip: NumericIp): bigint | undefined;
  readonly ranges: readonly ForbiddenRange[];
}

export function forbiddenRanges(src: ForbiddenSources): ForbiddenRange[] {
  const out: ForbiddenRange[] = [];
  const addCidr = (text: string, reason: (canonical: string) => string) => {
    try {
      const c = parseCidr(text, false);
      out.push({ family: c.family, first: c.first, last: c.last, reason: reason(c.text) });
    } catch {
      // not a CIDR: the API server validated it; nothing to forbid
    }
  };
  const addIp = (text: string, reason: string) => {
    try {
      out.push({ ...singleAddress(toNumeric(text)), reason });
    } catch {
      // "None" (headless Services), hostnames
    }
  };
  for (const node of src.nodes) {
    const name = node.metadata?.name ?? '?';
    for (const a of node.status?.addresses ?? []) {
      addIp(a.address, `is node ${name}'s address (${a.type})`); // Hostname and DNS entries do not parse: skipped
    }
    const podCIDRs = new Set([...(node.spec?.podCIDRs ?? []), ...(node.spec?.podCIDR ? [node.spec.podCIDR] : [])]);
    for (const c of podCIDRs) addCidr(c, (t) => `is in node ${name}'s pod CIDR ${t}`);
  }
  for (const sc of src.serviceCIDRs ?? []) {
    for (const c of sc.spec?.cidrs ?? []) addCidr(c, (t) => `is in the Service range ${t} (ServiceCIDR ${sc.metadata?.name ?? '?'})`);
  }
  for (const svc of src.services ?? []) {
    const ips = new Set([...(svc.spec?.clusterIPs ?? []), ...(svc.spec?.clusterIP ? [svc.spec.clusterIP] : [])]);
    for (const ip of ips) addIp(ip, `is the ClusterIP of Service ${svc.metadata?.namespace ?? '?'}/${svc.metadata?.name ?? '?'}`);
  }
  return out;
}

/** Ranges of one family sorted by first address, with the running maximum of their last addresses. */
interface FamilyIndex {
  ranges: ForbiddenRange[];
  maxLast: bigint[];
}

function indexFamily(ranges: ForbiddenRange[], family: Family): FamilyIndex {
  const sorted = ranges.filter((r) => r.family === family).sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const maxLast: bigint[] = [];
  for (const [i, r] of sorted.entries()) maxLast.push(i === 0 || r.last > maxLast[i - 1]! ? r.last : maxLast[i - 1]!);
  return { ranges: sorted, maxLast };
}

/**
 * The forbidden ranges, indexed: a lookup is a binary search plus a walk back
 * over the ranges that could still hold the address (nested ones only).
 */
export function forbiddenAddresses(src: ForbiddenSources): Forbidden {
  const ranges = forbiddenRanges(src);
  const index = { 4: indexFamily(ranges, 4), 6: indexFamily(ranges, 6) };
  /** Every range holding ip, most specific (latest start) first. */
  function* holding(ip: NumericIp): Generator<ForbiddenRange> {
    const { ranges: sorted, maxLast } = index[ip.family];
    let lo = 0;
    let hi = sorted.length; // first range starting after ip
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]!.first <= ip.value) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo - 1; i >= 0 && maxLast[i]! >= ip.value; i--) if (sorted[i]!.last >= ip.value) yield sorted[i]!;
  }
  return {
    ranges,
    reasonFor(ip) {
      for (const r of holding(ip)) return r.reason;
      return undefined;
    },
    coveringEnd(ip) {
      let end: bigint | undefined;
      for (const r of holding(ip)) if (end === undefined || r.last > end) end = r.last;
      return end;
    },
  };
}

/** Nothing forbidden: for tests and for the standalone agent. */
export const NOTHING_FORBIDDEN: Forbidden = forbiddenAddresses({ nodes: [] });
