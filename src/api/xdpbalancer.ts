/** The XdpBalancer custom resource (crds/xdpbalancers.yaml holds its schema and defaults). */
import type { V1Condition, V1ObjectMeta, V1Toleration } from '@kubernetes/client-node';
import { stableHashHex } from '../lib/stable-hash.js';
import type { BackendAddressing } from './loadbalancervip.js';

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
  /** Announce the VIPs by BGP (a BIRD sidecar per agent); absent: routes to the nodes are someone else's job. */
  bgp?: XdpBalancerBgp;
  /** Announce the VIPs on the nodes' LAN (ARP/NDP from one elected node per VIP); not with bgp. */
  l2?: XdpBalancerL2;
  /** Where its delivery Node VIPs' packets are encapsulated to: the pod's address, or its node's. Default Node. */
  backendAddressing?: BackendAddressing;
  /**
   * How the agents are allowed BPF: CAP_BPF + CAP_PERFMON (BPF, the default),
   * or CAP_SYS_ADMIN in their place where the container runtime does not know
   * CAP_BPF (SYS_ADMIN).
   */
  bpfCapability?: BpfCapability;
}

export type BpfCapability = 'BPF' | 'SYS_ADMIN';

/** spec.l2: one node per VIP, chosen by the controller, answers ARP/NDP for it. */
export interface XdpBalancerL2 {
  /** How long after an agent stops renewing its Lease its VIPs move to another node. */
  leaseSeconds?: number;
}

export const DEFAULT_L2_LEASE_SECONDS = 10;
/** An agent renews its Lease this many times per lease duration: one lost renewal does not cost the node its VIPs. */
export const L2_RENEWALS_PER_LEASE = 3;
/** The label every agent's L2 Lease carries, valued with its balancer's name: what the controller watches. */
export const L2_LEASE_BALANCER_LABEL = 'xdplb.dev/l2-balancer';
/** The label naming the node whose agent holds the Lease. */
export const L2_LEASE_NODE_LABEL = 'xdplb.dev/l2-node';

/**
 * The name of the Lease a balancer's agent holds for its node, in the agents'
 * namespace. A node name may be up to 253 characters: a longer pair ends in a
 * hash so the name stays a valid, distinct object name.
 */
export function l2LeaseName(balancer: string, node: string): string {
  const name = `xdplb-l2-${balancer}.${node}`;
  if (name.length <= MAX_OBJECT_NAME) return name;
  const suffix = stableHashHex(name);
  return `${name.slice(0, MAX_OBJECT_NAME - suffix.length - 1)}-${suffix}`;
}

const MAX_OBJECT_NAME = 253;

export interface XdpBalancerStatus {
  observedGeneration?: number;
  desiredAgents?: number;
  readyAgents?: number;
  conditions?: V1Condition[];
  /** One entry per node, written by its agent: how it announces the VIPs. */
  nodes?: BalancerNodeStatus[];
  /** Nodes whose agent is Ready (the controller's word): they divide the health checks among themselves. */
  probingNodes?: string[];
  /** The backend addressing its delivery Node VIPs use (spec.backendAddressing or its default). */
  backendAddressing?: BackendAddressing;
}

/** One backend a node judged unhealthy, in its entry of status.nodes. */
export interface UnhealthyBackend {
  /** The LoadBalancerVip, namespace/name. */
  vip: string;
  ip: string;
  since: string;
  reason?: string;
}

/** The most unhealthy backends one node's entry lists (the CRD's maxItems): the entry stays well inside an object's size. */
export const MAX_REPORTED_UNHEALTHY = 1000;

/** A BGP session of a node, as its BIRD reports it. */
export interface BalancerNodeBgpSession {
  peer: string;
  /** BGP's state: Idle, Connect, Active, OpenSent, OpenConfirm, Established. */
  state: string;
  established: boolean;
  /** VIP routes sent to the peer. */
  routesSent: number;
  /** The BFD session's state, with spec.bgp.bfd. */
  bfd?: string;
  /** BIRD's last error for the session. */
  info?: string;
}

/** Where a node's agent serves its HTTPS endpoints, as it reports them. */
export interface AgentEndpointsStatus {
  /** The address clients connect to (the node's). */
  address: string;
  metricsPort?: number;
  tracePort?: number;
  /** SHA-256 fingerprint of the certificate it serves, as X509Certificate.fingerprint256 (AA:BB:...). */
  certificateSHA256: string;
}

export interface BalancerNodeStatus {
  node: string;
  /** Its agent's HTTPS endpoints; clients pin the certificate by its fingerprint. */
  endpoints?: AgentEndpointsStatus;
  bgp?: {
    /** VIP addresses the node announces. */
    announced: number;
    /** Why it withdrew every route (stopping, or what is unhealthy); absent while it announces. */
    withdrawn?: string;
    sessions: BalancerNodeBgpSession[];
  };
  l2?: {
    /** VIP addresses the node answers ARP/NDP for. */
    answering: number;
  };
  /** The backends this node probes, and those it judged unhealthy. */
  health?: {
    /** The digest of the probingNodes list the node divided the backends by. */
    probingNodes: string;
    probing?: number;
    unhealthy: UnhealthyBackend[];
  };
  /** When the agent wrote this entry (it writes on change only). */
  updated: string;
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

/** An address family a BGP session carries VIP routes of. */
export type BgpAddressFamily = 'IPv4' | 'IPv6';

/** A key of a Secret in the agents' namespace. */
export interface SecretKeyRef {
  name: string;
  key: string;
}

/** A router a balancer node announces its VIPs to. */
export interface BgpPeer {
  /** The router's address, in one of the node's own subnets (single-hop BGP). */
  address: string;
  asn: number;
  /** Default 179. */
  port?: number;
  /** TCP MD5 password (RFC 2385): a Secret in the agents' namespace, mounted into the agent pods. */
  passwordSecretRef?: SecretKeyRef;
  /** Which VIP routes the session carries; default: the family of `address`. */
  addressFamilies?: BgpAddressFamily[];
}

/** spec.bgp: announce each VIP a node serves, as a /32 or /128, through BIRD beside the agent. */
export interface XdpBalancerBgp {
  localASN: number;
  /** Default: the node's IPv4 source address on the balancer NIC. */
  routerID?: string;
  peers: BgpPeer[];
  /** Added to every announced route: standard "ASN:VALUE" or large "ASN:DATA1:DATA2". */
  communities?: string[];
  /** Present: BFD (RFC 5880) on every session, so a router notices a dead node within intervals, not at its hold timer. */
  bfd?: BgpBfd;
}

/**
 * spec.bgp.bfd: the node's side of each peer's BFD session. A router ends the
 * BGP session (and drops the node's routes) when it has heard no BFD packet
 * for `multiplier` times the interval both ends agreed on (the larger of the
 * one it asks for and the one the node offers). A peer that runs no BFD is
 * unaffected: the session stays down and BGP goes on by its hold timer.
 */
export interface BgpBfd {
  /** The interval the node sends at and asks its peers to send at, in ms. Default 300. */
  minIntervalMilliseconds?: number;
  /** Packets missed in a row before the session is declared down. Default 3. */
  multiplier?: number;
}

export const DEFAULT_BFD_MIN_INTERVAL_MS = 300;
export const DEFAULT_BFD_MULTIPLIER = 3;
/** Bounds of spec.bgp.bfd (the CRD says the same): under 10 ms a busy node drops sessions for nothing; 8 bits of multiplier on the wire. */
export const BFD_MIN_INTERVAL_MS = { min: 10, max: 10_000 } as const;
export const BFD_MULTIPLIER = { min: 1, max: 255 } as const;

/**
 * The agent's --bgp value (JSON): spec.bgp as the agent needs it, with each
 * peer's password as a file the pod mounts from the Secret, so neither the
 * pod spec nor the agent's RBAC ever holds a password.
 */
export interface AgentBgpPeer extends Omit<BgpPeer, 'passwordSecretRef'> {
  /** A file holding the TCP MD5 password. */
  passwordFile?: string;
}

export interface AgentBgpSettings extends Omit<XdpBalancerBgp, 'peers'> {
  peers: AgentBgpPeer[];
}

export const DEFAULT_BGP_PORT = 179;
/** In the directory the agent and its BIRD share: the configuration the agent writes, and BIRD's control socket. */
export const BIRD_CONFIG_NAME = 'bird.conf';
export const BIRD_SOCKET_NAME = 'bird.ctl';
/**
 * How BIRD runs beside an agent (the pod's sidecar; the lab does the same):
 * in the foreground, logging to stderr, once the agent has written its first
 * configuration, which it does only after programming the node. A BIRD that
 * restarts later reads the last configuration the agent wrote.
 */
export function birdCommand(birdDir: string): string[] {
  const conf = `${birdDir}/${BIRD_CONFIG_NAME}`;
  return ['sh', '-c', `until [ -s ${conf} ]; do sleep 1; done; exec bird -f -c ${conf} -s ${birdDir}/${BIRD_SOCKET_NAME}`];
}
