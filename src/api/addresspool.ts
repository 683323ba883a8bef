/** The XdpAddressPool custom resource (crds/xdpaddresspools.yaml holds its schema and defaults). */
import type { V1Condition, V1LabelSelector, V1ObjectMeta } from '@kubernetes/client-node';

export const XDPAP_PLURAL = 'xdpaddresspools';
export const XDPAP_KIND = 'XdpAddressPool';

export interface XdpAddressPoolSpec {
  /** IPv4 and/or IPv6 CIDRs, each its network address; no two overlap. */
  cidrs: string[];
  /** Namespaces whose VIPs may use the pool; required, {} selects every namespace. */
  namespaceSelector: V1LabelSelector;
  /** XdpBalancer names; absent or empty: every balancer. */
  balancers?: string[];
  /** Whether VIPs without spec.address may be given an address from here (default true). */
  autoAssign?: boolean;
}

export interface XdpAddressPoolStatus {
  observedGeneration?: number;
  /** Distinct VIP addresses in the pool. */
  addressesInUse?: number;
  conditions?: V1Condition[];
}

export interface XdpAddressPool {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  spec: XdpAddressPoolSpec;
  status?: XdpAddressPoolStatus;
}

export const PoolConditionType = {
  /** False while the pool overlaps an older pool: its addresses serve no VIP. */
  Accepted: 'Accepted',
} as const;

export const PoolConditionReason = {
  Accepted: 'Accepted',
  Overlaps: 'Overlaps',
  InvalidCidr: 'InvalidCidr',
} as const;
