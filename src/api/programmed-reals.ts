/**
 * The reals a balancer agent programs for a LoadBalancerVip, read from the
 * status the controller wrote. Shared by the agents (what they program) and
 * the controller (the backends revision it stamps on what they will program).
 */
import type { BackendStatus, LoadBalancerVip } from './loadbalancervip.js';

export interface ProgrammedReal {
  address: string;
  weight: number;
  /** Pod addressing: the backend's QUIC server id (Node addressing has none: a node is many pods). */
  quicServerId?: number;
}

/** Draining, or unhealthy (the balancer nodes' health checks, folded in by the controller): weight 0, its flows finish. */
const backendWeight = (b: BackendStatus): number => (b.draining || b.healthy === false ? 0 : b.weight);

/**
 * The reals of a VIP. Pod addressing: its backends, draining ones at weight
 * 0. Node addressing: the nodes hosting them (each backend's nodeIP), each
 * weighted by the sum of its pods' weights, so a node with two pods gets
 * twice the flows of a node with one; a node whose pods all drain has weight
 * 0 and keeps its flows. Backends without a nodeIP are not reachable that way.
 */
export function realsOf(v: Pick<LoadBalancerVip, 'status'>): ProgrammedReal[] {
  const backends = v.status?.backends ?? [];
  if (v.status?.addressing !== 'Node') {
    return backends.map((b) => (b.quicServerId === undefined ? { address: b.ip, weight: backendWeight(b) } : { address: b.ip, weight: backendWeight(b), quicServerId: b.quicServerId }));
  }
  const nodes = new Map<string, number>();
  for (const b of backends) if (b.nodeIP !== undefined) nodes.set(b.nodeIP, (nodes.get(b.nodeIP) ?? 0) + backendWeight(b));
  return [...nodes].map(([address, weight]) => ({ address, weight }));
}
