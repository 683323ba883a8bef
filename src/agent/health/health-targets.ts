/**
 * Which backends this node probes, from the VIPs it programs (pure): every
 * listed backend that takes new flows (not draining, weight above 0 in a
 * file; readiness stays the first signal, so a backend the controller does
 * not list is never probed) of every VIP whose plan says to probe, and of
 * those only the ones `owns` gives this node (cluster mode: rendezvous over
 * the probing nodes; standalone: all).
 */
import { healthTargetKey, planHealthCheck, type HealthCheckPlan, type HealthCheckSpec } from '../../api/health-check.js';
import type { VipPort } from '../../api/types.js';
import { tunnelOf } from './probe-packet.js';
import type { ProbeTarget } from './prober.js';

export interface HealthVip {
  /** namespace/name, or the file's name. */
  name: string;
  address: string;
  ports: readonly Pick<VipPort, 'port' | 'protocol'>[];
  healthCheck?: HealthCheckSpec;
  /**
   * ip: where the probe is encapsulated to: the real (a pod, or in Node
   * addressing its node); node: the node it runs on, which does not probe it
   * while another node can (see owns).
   */
  backends: readonly { ip: string; node?: string; knownUnhealthy?: { since: number; reason?: string } }[];
}

export interface HealthTargets {
  targets: ProbeTarget[];
  /** Each VIP's plan: probed on which port, or why not. */
  plans: Map<string, HealthCheckPlan>;
}

/**
 * `owns(key, node)`: whether this node probes the target. A node does not
 * probe what runs on it while another node can: the real's answer to its own
 * node's address is local and never passes a device where the probe socket
 * could see it (and a node's own path says little about the network).
 */
export function healthTargets(vips: readonly HealthVip[], owns: (key: string, node?: string) => boolean): HealthTargets {
  const targets: ProbeTarget[] = [];
  const plans = new Map<string, HealthCheckPlan>();
  for (const v of vips) {
    const plan = planHealthCheck(v.healthCheck, v.ports);
    plans.set(v.name, plan);
    if (!('probe' in plan)) continue;
    for (const b of v.backends) {
      const key = healthTargetKey(v.name, b.ip);
      // IPv6 VIP, IPv4 real: the dataplane refuses the pair; nothing to probe.
      if (!owns(key, b.node) || tunnelOf(v.address, b.ip) === null) continue;
      targets.push({ key, vipName: v.name, vip: v.address, real: b.ip, check: plan.probe, ...(b.knownUnhealthy ? { knownUnhealthy: b.knownUnhealthy } : {}) });
    }
  }
  return { targets, plans };
}
