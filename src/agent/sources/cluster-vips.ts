/**
 * From LoadBalancerVip objects to the dataplane's VIPs, on an agent: the VIPs
 * of this agent's balancer, not in conflict, with the controller's resolved
 * backends as reals (draining ones at weight 0, so their flows finish).
 *
 * A VIP the dataplane refuses (over capacity, an address family the node has
 * no source address for) is left out whole and reported on its status, so one
 * bad VIP never keeps the others from being programmed, and no VIP is ever
 * half-programmed.
 */
import { ConditionType, DEFAULT_BALANCER, type LoadBalancerVip } from '../../api/loadbalancervip.js';
import type { VipSpec } from '../dataplane/desired-state.js';

export function inConflict(vip: LoadBalancerVip): boolean {
  return (vip.status?.conditions ?? []).some((c) => c.type === ConditionType.Conflict && c.status === 'True');
}

export const vipRef = (v: LoadBalancerVip) => `${v.metadata.namespace}/${v.metadata.name}`;

/** The VIPs of a balancer, oldest first: when capacity runs out, the newest VIPs are the ones refused. */
export function vipsOfBalancer(balancer: string, vips: readonly LoadBalancerVip[]): LoadBalancerVip[] {
  const created = (v: LoadBalancerVip) => new Date(v.metadata.creationTimestamp ?? 0).getTime();
  return vips
    .filter((v) => (v.spec.balancer ?? DEFAULT_BALANCER) === balancer)
    .sort((a, b) => created(a) - created(b) || vipRef(a).localeCompare(vipRef(b)));
}

/** The dataplane VIPs of one LoadBalancerVip: one per port. */
export function specsOf(v: LoadBalancerVip): VipSpec[] {
  const reals = (v.status?.backends ?? []).map((b) => ({ address: b.ip, weight: b.draining ? 0 : b.weight }));
  return v.spec.ports.map((p) => ({
    address: v.spec.address,
    port: p.port,
    protocol: p.protocol ?? 'TCP',
    hashNoSrcPort: v.spec.hashing?.ignoreSourcePort ?? false,
    lruBypass: v.spec.lruBypass ?? false,
    reals,
  }));
}

/** Problems the dataplane has with a desired VIP list; paths start "vips[i]". Empty: it would be accepted. */
export type DataplaneCheck = (vips: VipSpec[]) => string[];

export interface ProgramPlan {
  /** What to program. */
  specs: VipSpec[];
  /** VIPs in `specs`. */
  programmed: LoadBalancerVip[];
  /** VIPs left out because of a conflict (the controller says so on the VIP). */
  conflicted: LoadBalancerVip[];
  /** VIPs left out because the dataplane refused them, with why. */
  refused: Map<LoadBalancerVip, string>;
}

const VIP_PATH = /^vips\[(\d+)\](.*)$/;

/**
 * The largest set of this balancer's VIPs the dataplane accepts. Problems
 * that name a VIP exclude that VIP; problems of the whole set (capacity) are
 * resolved by adding VIPs oldest first until the next one does not fit.
 */
export function planVips(balancer: string, all: readonly LoadBalancerVip[], check: DataplaneCheck): ProgramPlan {
  const mine = vipsOfBalancer(balancer, all);
  const conflicted = mine.filter(inConflict);
  let candidates = mine.filter((v) => !inConflict(v));
  const refused = new Map<LoadBalancerVip, string>();
  const flatten = (vs: LoadBalancerVip[]) => {
    const owner: LoadBalancerVip[] = [];
    const specs: VipSpec[] = [];
    for (const v of vs) for (const s of specsOf(v)) {
      specs.push(s);
      owner.push(v);
    }
    return { specs, owner };
  };

  // Each round removes at least one VIP, or ends.
  for (;;) {
    const { specs, owner } = flatten(candidates);
    const problems = check(specs);
    if (!problems.length) return { specs, programmed: candidates, conflicted, refused };
    const named = new Map<LoadBalancerVip, string[]>();
    const general: string[] = [];
    for (const p of problems) {
      const m = VIP_PATH.exec(p);
      const v = m ? owner[Number(m[1])] : undefined;
      if (!v) {
        general.push(p);
        continue;
      }
      const port = specs[Number(m![1])]!;
      named.set(v, [...(named.get(v) ?? []), `port ${port.port}/${port.protocol}${m![2]}`]);
    }
    if (named.size) {
      for (const [v, ps] of named) refused.set(v, ps.join('; '));
      candidates = candidates.filter((v) => !named.has(v));
      continue;
    }
    // Only whole-set problems: keep the oldest VIPs that fit together.
    const kept: LoadBalancerVip[] = [];
    for (const v of candidates) {
      const trial = check(flatten([...kept, v]).specs);
      if (trial.length) refused.set(v, trial.join('; '));
      else kept.push(v);
    }
    const { specs: keptSpecs } = flatten(kept);
    return { specs: keptSpecs, programmed: kept, conflicted, refused };
  }
}
