/** The LoadBalancerVip custom resource (crds/ holds its schema). */
import type { V1Condition, V1LabelSelector, V1ObjectMeta } from '@kubernetes/client-node';
import type { HashingOptions, VipPort } from './types.js';

export const GROUP = 'xdplb.dev';
export const VERSION = 'v1alpha1';
export const LBVIP_PLURAL = 'loadbalancervips';
export const LBVIP_KIND = 'LoadBalancerVip';
export const DEFAULT_BALANCER = 'default';

/** The most entries status.backends may hold: the CRD's maxItems (test/unit/crds.test.ts checks they agree). */
export const MAX_STATUS_BACKENDS = 4096;

/** Annotation on a backend pod: its relative weight (non-negative integer). */
export const WEIGHT_ANNOTATION = 'xdplb.dev/weight';

export interface LoadBalancerVipSpec {
  /** The XdpBalancer that serves this VIP. */
  balancer?: string;
  address: string;
  ports: VipPort[];
  /** Pods in the VIP's namespace. */
  backendSelector: V1LabelSelector;
  hashing?: HashingOptions;
  lruBypass?: boolean;
}

export interface BackendStatus {
  ip: string;
  weight: number;
  pod: string;
  node?: string;
  /** No new flows; established ones continue until the drain period ends. */
  draining?: boolean;
  /** When the backend started draining (RFC 3339). */
  drainingSince?: string;
}

export interface NodeStatus {
  node: string;
  /** The metadata.generation this node's maps hold. */
  programmedGeneration?: number;
  reals?: number;
  lastError?: string;
}

export interface LoadBalancerVipStatus {
  observedGeneration?: number;
  /** Summaries for `kubectl get lbvip`. */
  ports?: string;
  readyBackends?: number;
  /** Ready backends left out of `backends` because it holds MAX_STATUS_BACKENDS at most: they get no traffic. */
  unlistedBackends?: number;
  programmedNodes?: string;
  conditions?: V1Condition[];
  backends?: BackendStatus[];
  nodes?: NodeStatus[];
}

export interface LoadBalancerVip {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  spec: LoadBalancerVipSpec;
  status?: LoadBalancerVipStatus;
}

/** "80/TCP,443/TCP": the Ports column (a printer column shows only the first element of a list). */
export function portsSummary(spec: Pick<LoadBalancerVipSpec, 'ports'>): string {
  return spec.ports.map((p) => `${p.port}/${p.protocol ?? 'TCP'}`).join(',');
}

export const ConditionType = {
  BackendsAvailable: 'BackendsAvailable',
  Programmed: 'Programmed',
  Ready: 'Ready',
  Conflict: 'Conflict',
} as const;
