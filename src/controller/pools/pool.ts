/** An XdpAddressPool as the pool modules use it: CIDRs parsed, defaults applied. */
import type { V1LabelSelector } from '@kubernetes/client-node';
import type { XdpAddressPool } from '../../api/addresspool.js';
import { type Cidr, parseCidr } from './cidr.js';

export interface Pool {
  name: string;
  /** creationTimestamp in ms: of two overlapping pools the older wins. */
  createdAt: number;
  /** The CIDRs that parse, in spec order. */
  cidrs: Cidr[];
  namespaceSelector: V1LabelSelector;
  /** Empty: every balancer. */
  balancers: string[];
  autoAssign: boolean;
  /** Why the pool serves no VIP (it overlaps an older pool, a CIDR is bad); absent when accepted. */
  refused?: string;
}

export function parsePool(p: XdpAddressPool): Pool {
  const cidrs: Cidr[] = [];
  const bad: string[] = [];
  for (const text of p.spec.cidrs ?? []) {
    try {
      cidrs.push(parseCidr(text));
    } catch (err) {
      bad.push((err as Error).message);
    }
  }
  const pool: Pool = {
    name: p.metadata.name ?? '',
    createdAt: new Date(p.metadata.creationTimestamp ?? 0).getTime(),
    cidrs,
    // The CRD requires a selector; a pool without one (schema bypassed) selects no namespace.
    namespaceSelector: p.spec.namespaceSelector ?? { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: [] }] },
    balancers: [...(p.spec.balancers ?? [])],
    autoAssign: p.spec.autoAssign ?? true,
  };
  if (bad.length > 0) pool.refused = `spec.cidrs: ${bad.join('; ')}`;
  else if (cidrs.length === 0) pool.refused = 'spec.cidrs is empty';
  return pool;
}

/** Older first; the same second is ordered by name. */
export function olderFirst(a: Pool, b: Pool): number {
  return a.createdAt - b.createdAt || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** "a (198.19.0.0/24, 2001:db8:19::/64)" */
export const describePool = (p: Pool): string => `${p.name} (${p.cidrs.map((c) => c.text).join(', ')})`;
