/**
 * Folding the balancer nodes' health judgements into a VIP's backends (pure).
 *
 * Each agent probes the backends rendezvous hashing over the XdpBalancer's
 * status.probingNodes gives it, and lists those it judged unhealthy in its
 * own entry of status.nodes, with the digest of the node list it divided by.
 * For each backend the controller asks its owner under the same list:
 *
 * - the owner's entry was written for this list: unhealthy exactly when it
 *   lists the backend;
 * - it was not (the list just changed, the new owner has not reported yet):
 *   the backend keeps what the VIP's status said, so a handover neither
 *   revives a broken backend nor fails a good one. The new owner starts from
 *   that status too (an unhealthy backend needs healthyThreshold successes).
 *
 * Entries of nodes that left the list are never read. A backend whose
 * health is false gets weight 0 on every agent (cluster-vips.ts), as a
 * draining one does: no new flows, established ones continue.
 */
import { healthTargetKey } from '../api/health-check.js';
import type { BackendStatus, HealthCheckStatus } from '../api/loadbalancervip.js';
import type { HealthCheckPlan } from '../api/health-check.js';
import type { UnhealthyBackend, XdpBalancer } from '../api/xdpbalancer.js';
import { Rendezvous } from '../lib/rendezvous.js';

export type Judgement = { unhealthy: false } | { unhealthy: true; since: string; reason: string };

/** Backend health as the balancer's nodes report it. */
export interface HealthView {
  /** The owner's word on a backend of a VIP (namespace/name), or undefined when it has not reported for the current node list. */
  judge(vip: string, ip: string, node?: string): Judgement | undefined;
}

/** The view of one XdpBalancer's status. */
export function balancerHealth(b: Pick<XdpBalancer, 'status'> | undefined): HealthView {
  const nodes = b?.status?.probingNodes ?? [];
  const assignment = new Rendezvous(nodes);
  const digest = assignment.digest();
  const reports = new Map<string, Map<string, UnhealthyBackend> | null>();
  for (const n of b?.status?.nodes ?? []) {
    const h = n.health;
    // A report for another node list is no report: its owner's word is not known yet.
    reports.set(n.node, h && h.probingNodes === digest ? new Map(h.unhealthy.map((u) => [healthTargetKey(u.vip, u.ip), u])) : null);
  }
  return {
    judge(vip, ip, node) {
      const key = healthTargetKey(vip, ip);
      // The agents' rule (health-targets.ts): the backend's own node probes it only when it is the only node.
      const owner = assignment.ownerOf(key, node);
      const report = owner === undefined ? null : reports.get(owner);
      if (!report) return undefined;
      const u = report.get(key);
      return u ? { unhealthy: true, since: u.since, reason: `${u.reason ?? 'probes failed'} (judged by ${owner})` } : { unhealthy: false };
    },
  };
}

/**
 * The listed backends with their health: those that take new flows (not
 * draining) get the owner's judgement of their real (`realOf`: the pod's
 * address, or in Node addressing its node's, whose verdict covers each of its
 * pods of the VIP), or keep their previous one while it is unknown. Draining
 * backends carry no health.
 */
export function withHealth(vip: string, backends: readonly BackendStatus[], previous: readonly BackendStatus[] | undefined, view: HealthView | undefined,
  probed: boolean, realOf: (b: BackendStatus) => string | undefined = (b) => b.ip): BackendStatus[] {
  const before = new Map((previous ?? []).map((b) => [b.ip, b]));
  return backends.map((b) => {
    const { healthy: _h, unhealthySince: _s, unhealthyReason: _r, ...plain } = b;
    const real = realOf(b);
    if (!probed || !view || b.draining || real === undefined) return plain;
    const j = view.judge(vip, real, b.node);
    const prev = before.get(b.ip);
    if (j === undefined) {
      return prev?.healthy === false ? { ...plain, healthy: false, unhealthySince: prev.unhealthySince, unhealthyReason: prev.unhealthyReason } : plain;
    }
    return j.unhealthy ? { ...plain, healthy: false, unhealthySince: j.since, unhealthyReason: j.reason } : plain;
  });
}

/** status.healthCheck from the VIP's plan and its backends. */
export function healthCheckStatus(plan: HealthCheckPlan, backends: readonly BackendStatus[]): HealthCheckStatus {
  if (!('probe' in plan)) return { probed: false, reason: plan.notProbed, message: plan.message };
  return { probed: true, port: plan.probe.port, unhealthyBackends: backends.filter((b) => b.healthy === false).length };
}

/** Events for backends whose health changed: [type, reason, message]. */
export function healthEvents(prev: readonly BackendStatus[] | undefined, next: readonly BackendStatus[]): ['Warning' | 'Normal', string, string][] {
  const was = new Map((prev ?? []).map((b) => [b.ip, b]));
  const out: ['Warning' | 'Normal', string, string][] = [];
  for (const b of next) {
    const p = was.get(b.ip);
    if (b.healthy === false && p?.healthy !== false) {
      out.push(['Warning', 'BackendUnhealthy', `${b.ip} (pod ${b.pod}): ${b.unhealthyReason ?? 'health checks failed'}; weight 0 until it answers again`]);
    } else if (b.healthy !== false && p?.healthy === false && !b.draining) {
      out.push(['Normal', 'BackendHealthy', `${b.ip} (pod ${b.pod}) answers its health checks again`]);
    }
  }
  return out;
}
