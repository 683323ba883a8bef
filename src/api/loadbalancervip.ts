/** The LoadBalancerVip custom resource (crds/ holds its schema). */
import type { V1Condition, V1LabelSelector, V1ObjectMeta } from '@kubernetes/client-node';
import type { HealthCheckSpec } from './health-check.js';
import { type HashingOptions, targetPortOf, type VipPort } from './types.js';
import type { NodeStatus } from './xdpnodereport.js';

export const GROUP = 'xdplb.dev';
export const VERSION = 'v1alpha1';
export const LBVIP_PLURAL = 'loadbalancervips';
export const LBVIP_KIND = 'LoadBalancerVip';
export const DEFAULT_BALANCER = 'default';

/** The most entries status.backends may hold: the CRD's maxItems (test/unit/crds.test.ts checks they agree). */
export const MAX_STATUS_BACKENDS = 4096;

/**
 * Who takes the tunnel off and hands the packet to the pod:
 * - Node: the backend node's datapath (the xdplb-backend DaemonSet) decapsulates
 *   and translates ports (targetPort); pods need nothing.
 * - InPod: the pod decapsulates itself (xdplb-decap, the VIP on its lo); ports
 *   arrive unchanged, so no targetPort may differ from its port.
 */
export type Delivery = 'Node' | 'InPod';
export const DELIVERIES: readonly Delivery[] = ['Node', 'InPod'];
/** The CRD's default: backends are ordinary pods; InPod is the choice for reals that decapsulate themselves. */
export const DEFAULT_DELIVERY: Delivery = 'Node';

/**
 * Where the balancers encapsulate a delivery Node VIP's packets to:
 * - Pod: the pod's address (backends[].ip); the network between the balancers
 *   and the nodes must route pod addresses (pod CIDRs announced or routed).
 * - Node: the address of the pod's node (backends[].nodeIP); the backend
 *   node picks one of its pods for the flow. Works with any CNI, overlays included.
 * An XdpBalancer's setting (spec.backendAddressing), resolved by the controller
 * into each VIP's status.addressing: InPod VIPs are always Pod.
 */
export type BackendAddressing = 'Pod' | 'Node';
export const BACKEND_ADDRESSINGS: readonly BackendAddressing[] = ['Pod', 'Node'];
/** The CRD's default: the one that needs nothing of the network (bpf/BACKEND.md says why there is no automatic choice). */
export const DEFAULT_BACKEND_ADDRESSING: BackendAddressing = 'Node';

/** Annotation on a backend pod: its relative weight (non-negative integer). */
export const WEIGHT_ANNOTATION = 'xdplb.dev/weight';
/** Annotation on a backend pod: the server id its QUIC connection IDs carry (QUIC_MIN_SERVER_ID..QUIC_MAX_SERVER_ID). */
export const QUIC_SERVER_ID_ANNOTATION = 'xdplb.dev/quic-server-id';

export interface LoadBalancerVipSpec {
  /** The XdpBalancer that serves this VIP. */
  balancer?: string;
  /** Absent: the controller assigns one from a pool that allows the namespace (status.address). */
  address?: string;
  /** The family of an assigned address; absent: the first free address of any family. */
  addressFamily?: AddressFamily;
  ports: VipPort[];
  /** Pods in the VIP's namespace; exactly one of backendSelector and backendService is set. */
  backendSelector?: V1LabelSelector;
  /** A Service in the VIP's namespace: its EndpointSlices' endpoints are the backends. */
  backendService?: string;
  hashing?: HashingOptions;
  lruBypass?: boolean;
  /** The balancer answers echo requests (ping) to the address; default true. False on any VIP of an address turns it off. */
  icmpEcho?: boolean;
  /** UDP ports: QUIC short-header packets go to the backend whose server id their connection ID carries. */
  quicConnectionIdRouting?: boolean;
  /** Who decapsulates (and translates ports): the backend node, or the pod itself. Default Node. */
  delivery?: Delivery;
  /** Probes of each backend along the real path (health-check.ts); absent: the defaults. */
  healthCheck?: HealthCheckSpec;
}

export interface BackendStatus {
  ip: string;
  weight: number;
  pod: string;
  node?: string;
  /**
   * Node addressing (status.addressing Node): the address of the pod's node
   * the balancers encapsulate to: its InternalIP of the VIP's family, or its
   * IPv6 one for an IPv4 VIP on a node without IPv4. Absent: none usable (no
   * traffic reaches the pod in Node addressing).
   */
  nodeIP?: string;
  /** The server id in the QUIC connection IDs the pod issues (QUIC_SERVER_ID_ANNOTATION). */
  quicServerId?: number;
  /** No new flows; established ones continue until the drain period ends. */
  draining?: boolean;
  /** When the backend started draining (RFC 3339). */
  drainingSince?: string;
  /** False while its health checks fail: agents give it weight 0 (it drains). Absent: healthy or not probed. */
  healthy?: boolean;
  unhealthySince?: string;
  /** The last failed probe and the node that judged it. */
  unhealthyReason?: string;
}

/** status.healthCheck: whether the backends are probed, and why not. */
export interface HealthCheckStatus {
  probed: boolean;
  port?: number;
  reason?: string;
  message?: string;
  unhealthyBackends?: number;
}

export interface L2Status {
  node: string;
  /** When that node took the address over (RFC 3339). */
  since: string;
}

export interface LoadBalancerVipStatus {
  observedGeneration?: number;
  /** The VIP's address (spec.address, or the one assigned): agents program it only while AddressAllowed is True. */
  address?: string;
  /** The XdpAddressPool the address lies in. */
  addressPool?: string;
  /** Summaries for `kubectl get lbvip`. */
  ports?: string;
  readyBackends?: number;
  /** Ready backends left out of `backends` because it holds MAX_STATUS_BACKENDS at most: they get no traffic. */
  unlistedBackends?: number;
  programmedNodes?: string;
  conditions?: V1Condition[];
  backends?: BackendStatus[];
  /**
   * A digest of what agents program from this status (backends-revision.ts),
   * written with the backends: Programmed waits for every node to report it.
   */
  backendsRevision?: string;
  /**
   * Deprecated: what agents of earlier versions wrote, one entry per node.
   * This version's agents write XdpNodeReports instead; the controller reads
   * an entry only for a node that has no report yet (an upgrade in progress).
   */
  nodes?: NodeStatus[];
  /** L2 mode: the node answering ARP/NDP for the address, chosen by the controller. */
  l2?: L2Status;
  healthCheck?: HealthCheckStatus;
  /** Where the balancers encapsulate to (its balancer's spec.backendAddressing, for delivery Node); absent: Pod. */
  addressing?: BackendAddressing;
}

export type AddressFamily = 'IPv4' | 'IPv6';

export interface LoadBalancerVip {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  spec: LoadBalancerVipSpec;
  status?: LoadBalancerVipStatus;
}

/** "80/TCP,443->8443/TCP": the Ports column (a printer column shows only the first element of a list). */
export function portsSummary(spec: Pick<LoadBalancerVipSpec, 'ports'>): string {
  return spec.ports.map((p) => `${p.port}${targetPortOf(p) === p.port ? '' : `->${p.targetPort}`}/${p.protocol ?? 'TCP'}`).join(',');
}

export const ConditionType = {
  BackendsAvailable: 'BackendsAvailable',
  Programmed: 'Programmed',
  Ready: 'Ready',
  Conflict: 'Conflict',
  /** Whether the address lies in a pool that allows the VIP's namespace and balancer and is never-forbidden-free. */
  AddressAllowed: 'AddressAllowed',
} as const;

/** AddressAllowed reasons: why a VIP may, or may not, have its address. */
export const AddressReason = {
  /** Allowed: in a pool that selects the namespace and serves the balancer. */
  InPool: 'InPool',
  /** Allowed: assigned by the controller from a pool. */
  Assigned: 'Assigned',
  NotAnAddress: 'NotAnAddress',
  /** A node address, a pod CIDR or the Service range: never allowed. */
  Forbidden: 'Forbidden',
  NotInPool: 'NotInPool',
  /** Only in a pool that is refused (it overlaps an older one). */
  PoolRefused: 'PoolRefused',
  NamespaceNotAllowed: 'NamespaceNotAllowed',
  BalancerNotServed: 'BalancerNotServed',
  /** No address given and no pool assigns one for the namespace and balancer. */
  NoPool: 'NoPool',
  /** Every address of the pools that would assign one is taken. */
  PoolExhausted: 'PoolExhausted',
  /** The address the controller assigned is no longer allowed (a pool changed): reported, not replaced. */
  AddressRevoked: 'AddressRevoked',
} as const;
export type AddressReasonCode = (typeof AddressReason)[keyof typeof AddressReason];

/** Programmed reasons that say the spec cannot be served as written (no agent programs it). */
export const SpecReason = {
  /** A port's targetPort differs from it, and delivery is InPod: nothing would translate the port. */
  TargetPortNeedsNodeDelivery: 'TargetPortNeedsNodeDelivery',
} as const;

/**
 * Why no agent may program this VIP as written, or undefined: a targetPort
 * that differs from its port needs delivery Node (a pod that decapsulates
 * itself receives the VIP port unchanged).
 */
export function specProblem(spec: Pick<LoadBalancerVipSpec, 'ports' | 'delivery'>): { reason: string; message: string } | undefined {
  if ((spec.delivery ?? DEFAULT_DELIVERY) === 'Node') return undefined;
  const differ = spec.ports.filter((p) => targetPortOf(p) !== p.port);
  if (!differ.length) return undefined;
  return {
    reason: SpecReason.TargetPortNeedsNodeDelivery,
    message: `${differ.map((p) => `port ${p.port}/${p.protocol ?? 'TCP'} has targetPort ${p.targetPort}`).join(', ')}: `
      + 'with delivery InPod the pod receives the VIP port unchanged; set spec.delivery: Node so the backend node translates it, or drop targetPort',
  };
}

/** The address a VIP has: spec.address, or else the one the controller assigned. */
export const vipAddress = (v: Pick<LoadBalancerVip, 'spec' | 'status'>): string | undefined => v.spec.address ?? v.status?.address;
