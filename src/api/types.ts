/**
 * The parts of the xdplb API that the agent's standalone file shares with the
 * LoadBalancerVip custom resource (crds/ is the schema's source of truth).
 */
export type Protocol = 'TCP' | 'UDP';

export interface VipPort {
  port: number;
  protocol: Protocol;
  /**
   * The pod's port the VIP port is translated to (1..65535); absent: the same
   * as port. Only a backend node can translate (LoadBalancerVip delivery Node):
   * the balancer forwards packets unchanged, ports included.
   */
  targetPort?: number;
}

/** The port a VIP port is delivered to in the pod. */
export const targetPortOf = (p: Pick<VipPort, 'port' | 'targetPort'>): number => p.targetPort ?? p.port;

export interface HashingOptions {
  /** Hash on the client address only: every connection of a client reaches one real. */
  ignoreSourcePort?: boolean;
}

/** What a VIP is, independent of where its backends come from. */
export interface VipSpecBase {
  address: string;
  ports: VipPort[];
  hashing?: HashingOptions;
  /** Never use the connection table: every packet follows the current ring. */
  lruBypass?: boolean;
  /** The balancer answers echo requests (ping) to the address; default true. False on any VIP of an address turns it off. */
  icmpEcho?: boolean;
  /**
   * UDP ports: QUIC short-header packets go to the real whose server id their
   * connection ID carries (README, "QUIC connection IDs"), so a connection
   * stays on its real when the client's address or port changes.
   */
  quicConnectionIdRouting?: boolean;
}

export interface Backend {
  address: string;
  /** Relative share; 0 drains (established flows continue, no new ones). */
  weight: number;
  /** The server id the real puts in the QUIC connection IDs it issues (1..16383). */
  quicServerId?: number;
}

export const MIN_PORT = 1;
export const MAX_PORT = 65535;
export const MAX_PORTS_PER_VIP = 16;
export const DEFAULT_WEIGHT = 1;
