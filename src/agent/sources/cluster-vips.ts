/**
 * From LoadBalancerVip objects to the dataplane's VIPs, on an agent: the VIPs
 * of this agent's balancer, not in conflict, with the controller's resolved
 * backends as reals (draining ones at weight 0, so their flows finish).
 */
import { ConditionType, DEFAULT_BALANCER, type LoadBalancerVip } from '../../api/loadbalancervip.js';
import type { VipSpec } from '../dataplane/desired-state.js';

export function inConflict(vip: LoadBalancerVip): boolean {
  return (vip.status?.conditions ?? []).some((c) => c.type === ConditionType.Conflict && c.status === 'True');
}

export function vipSpecsFor(balancer: string, vips: readonly LoadBalancerVip[]): VipSpec[] {
  const out: VipSpec[] = [];
  const mine = vips
    .filter((v) => (v.spec.balancer ?? DEFAULT_BALANCER) === balancer && !inConflict(v))
    .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  for (const v of mine) {
    const reals = (v.status?.backends ?? []).map((b) => ({ address: b.ip, weight: b.draining ? 0 : b.weight }));
    for (const p of v.spec.ports) {
      out.push({
        address: v.spec.address,
        port: p.port,
        protocol: p.protocol ?? 'TCP',
        hashNoSrcPort: v.spec.hashing?.ignoreSourcePort ?? false,
        lruBypass: v.spec.lruBypass ?? false,
        reals,
      });
    }
  }
  return out;
}
