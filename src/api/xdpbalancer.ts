/** The XdpBalancer custom resource (crds/xdpbalancers.yaml holds its schema and defaults). */
import type { V1Condition, V1ObjectMeta, V1Toleration } from '@kubernetes/client-node';

export const XDPB_PLURAL = 'xdpbalancers';
export const XDPB_KIND = 'XdpBalancer';

export type XdpModeSetting = 'auto' | 'native' | 'generic';

export interface XdpBalancerCapacities {
  vips?: number;
  reals?: number;
  connectionTable?: number;
}

export interface XdpBalancerSpec {
  nodeSelector?: Record<string, string>;
  tolerations?: V1Toleration[];
  /** Empty: the NIC of the node's default route. */
  nic?: string;
  xdpMode?: XdpModeSetting;
  image: string;
  capacities?: XdpBalancerCapacities;
  metricsPort?: number;
  /** How long a backend that stopped being Ready keeps its established flows. */
  drainSeconds?: number;
}

export interface XdpBalancerStatus {
  observedGeneration?: number;
  desiredAgents?: number;
  readyAgents?: number;
  conditions?: V1Condition[];
}

export interface XdpBalancer {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  spec: XdpBalancerSpec;
  status?: XdpBalancerStatus;
}

export const DEFAULT_METRICS_PORT = 9641;
/** The agent's trace endpoint listens on loopback at the metrics port + this. */
export const TRACE_PORT_OFFSET = 1;
export const tracePortFor = (metricsPort: number): number => metricsPort + TRACE_PORT_OFFSET;
export const DEFAULT_DRAIN_SECONDS = 60;

export const BalancerConditionType = {
  /** Every node the DaemonSet should run on has a ready agent. */
  AgentsReady: 'AgentsReady',
  /** True while an agent of another balancer runs on one of its nodes (the two would fight over the NIC). */
  NodeOverlap: 'NodeOverlap',
  /**
   * True while nodes it selects are kept for an older balancer that selects
   * them too: its DaemonSet stays off them (one balancer per node).
   */
  NodesExcluded: 'NodesExcluded',
} as const;
