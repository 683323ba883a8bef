/**
 * From LoadBalancerVip objects to what one backend node serves: the pod
 * backends (status.backends) on this node of the VIPs with delivery Node,
 * one per VIP port, translated to the port's targetPort. Pure.
 *
 * A VIP counts exactly when the balancer agents program it (cluster-vips:
 * an address the controller allowed, no conflict, a spec that can be served):
 * the backend node serves what the balancers send, no more. Draining backends
 * stay in status.backends for the balancer's drain period, and so stay here:
 * their established flows keep arriving. A backend that leaves (or a VIP
 * deleted) is kept by the backend agent's table for its own drain period.
 *
 * In Node addressing (status.addressing Node) each backend also names its
 * node's address (nodeIP), its weight (0 while draining) and the VIP's
 * hashing, for the node to pick among its pods as the balancer would among
 * nodes. Its pod entries stay too: they serve the balancers still on Pod
 * addressing while the setting changes, and say which pods still serve.
 */
import { DEFAULT_DELIVERY, type LoadBalancerVip } from '../../api/loadbalancervip.js';
import { targetPortOf } from '../../api/types.js';
import { allowedAddress, oldestFirst, setAsideByController } from '../sources/cluster-vips.js';
import type { PodBackend } from './service-plan.js';

/** The VIPs this node's pods serve through the backend datapath: delivery Node, programmed by the balancers. */
export function nodeDeliveredVips(vips: readonly LoadBalancerVip[]): LoadBalancerVip[] {
  return vips.filter((v) => (v.spec.delivery ?? DEFAULT_DELIVERY) === 'Node' && !setAsideByController(v));
}

/** The backends of this node, in a stable order (oldest VIP first, then by name): on a clash the first keeps the entry. */
export function backendsOfNode(vips: readonly LoadBalancerVip[], node: string): PodBackend[] {
  const out: PodBackend[] = [];
  for (const v of oldestFirst(nodeDeliveredVips(vips))) {
    const vip = allowedAddress(v)!;
    for (const b of v.status?.backends ?? []) {
      if (b.node !== node) continue;
      const viaNode = v.status?.addressing === 'Node' && b.nodeIP !== undefined
        ? { nodeAddress: b.nodeIP, weight: b.draining ? 0 : b.weight, ignoreSourcePort: v.spec.hashing?.ignoreSourcePort ?? false }
        : {};
      for (const p of v.spec.ports) {
        out.push({ vip, vipPort: p.port, protocol: p.protocol ?? 'TCP', podAddress: b.ip, targetPort: targetPortOf(p), ...viaNode });
      }
    }
  }
  return out;
}
