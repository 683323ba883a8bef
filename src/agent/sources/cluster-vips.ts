/**
 * From LoadBalancerVip objects to the dataplane's VIPs, on an agent: the VIPs
 * of this agent's balancer whose address the controller allowed (a pool
 * allows it, it is no node's, pod's or Service's) and that are not in
 * conflict, with the controller's resolved backends as reals (draining ones
 * at weight 0, so their flows finish).
 *
 * A VIP the dataplane refuses (over capacity, an address family the node has
 * no source address for) is left out whole and named in the node's report, so one
 * bad VIP never keeps the others from being programmed, and no VIP is ever
 * half-programmed.
 */
import { ConditionType, DEFAULT_BALANCER, type LoadBalancerVip, specProblem } from '../../api/loadbalancervip.js';
import { canonicalIp } from '../../lib/ip.js';
import { memoByObject } from '../../lib/memo-by-object.js';
import { realsOf } from '../../api/programmed-reals.js';
import { type Acceptance, problemText, type VipSpec } from '../dataplane/desired-state.js';
import { REFUSED_WITH_GROUP } from '../dataplane/acceptance.js';

export function inConflict(vip: LoadBalancerVip): boolean {
  return (vip.status?.conditions ?? []).some((c) => c.type === ConditionType.Conflict && c.status === 'True');
}

const canonicalOrNull = (text: string): string | null => {
  try {
    return canonicalIp(text);
  } catch {
    return null;
  }
};

/**
 * The address the controller allowed, if it allowed one for the spec as it is
 * now: a spec.address the controller has not checked yet (just edited) is not
 * programmed until it has.
 */
export function allowedAddress(vip: LoadBalancerVip): string | undefined {
  const allowed = (vip.status?.conditions ?? []).some((c) => c.type === ConditionType.AddressAllowed && c.status === 'True');
  const address = vip.status?.address;
  if (!allowed || address === undefined) return undefined;
  if (vip.spec.address !== undefined && canonicalOrNull(vip.spec.address) !== canonicalOrNull(address)) return undefined;
  return address;
}

/**
 * Left out by the controller's word: in conflict, no allowed address, or a
 * spec no node can serve as written (a targetPort with delivery InPod; the
 * controller's Programmed condition says why).
 */
export const setAsideByController = (v: LoadBalancerVip) => inConflict(v) || allowedAddress(v) === undefined || specProblem(v.spec) !== undefined;

export const vipRef = (v: LoadBalancerVip) => `${v.metadata.namespace}/${v.metadata.name}`;

/** VIPs oldest first, then by namespace/name: a stable order in which older VIPs win. */
export function oldestFirst(vips: readonly LoadBalancerVip[]): LoadBalancerVip[] {
  const created = (v: LoadBalancerVip) => new Date(v.metadata.creationTimestamp ?? 0).getTime();
  return [...vips].sort((a, b) => created(a) - created(b) || vipRef(a).localeCompare(vipRef(b)));
}

/** The VIPs of a balancer, oldest first: when capacity runs out, the newest VIPs are the ones refused. */
export function vipsOfBalancer(balancer: string, vips: readonly LoadBalancerVip[]): LoadBalancerVip[] {
  return oldestFirst(vips.filter((v) => (v.spec.balancer ?? DEFAULT_BALANCER) === balancer));
}

/**
 * The dataplane VIPs of one LoadBalancerVip: one per port. Not to be changed:
 * they are shared. Memoized by VIP object: the watch cache replaces an object
 * when it changes and keeps it when it does not, so a sync turns only the
 * changed VIPs into specs, and the unchanged ones keep spec objects the
 * dataplane recognizes by identity (desired-state.ts, dataplane.ts): a change
 * costs its own VIPs, not all of them.
 */
export const specsOf: (v: LoadBalancerVip) => readonly VipSpec[] = memoByObject(specsOfUncached);

function specsOfUncached(v: LoadBalancerVip): VipSpec[] {
  const address = allowedAddress(v);
  if (address === undefined) return [];
  const reals = realsOf(v);
  return v.spec.ports.map((p) => ({
    address,
    port: p.port,
    protocol: p.protocol ?? 'TCP',
    hashNoSrcPort: v.spec.hashing?.ignoreSourcePort ?? false,
    lruBypass: v.spec.lruBypass ?? false,
    icmpEcho: v.spec.icmpEcho ?? true,
    quicConnectionIdRouting: (p.protocol ?? 'TCP') === 'UDP' && (v.spec.quicConnectionIdRouting ?? false),
    reals,
  }));
}

/**
 * Which of these VIPs the dataplane would program together, and why not the
 * others: Dataplane.accept for the node's encapsulation settings.
 */
export type DataplaneAccept = (vips: VipSpec[], groups?: readonly number[]) => Acceptance;

export interface ProgramPlan {
  /** What to program. */
  specs: VipSpec[];
  /** VIPs in `specs`. */
  programmed: LoadBalancerVip[];
  /** VIPs left out because of a conflict or an address not allowed (the controller says so on the VIP). */
  setAside: LoadBalancerVip[];
  /** VIPs left out because the dataplane refused them, with why. */
  refused: Map<LoadBalancerVip, string>;
}

/**
 * The largest set of this balancer's VIPs the dataplane accepts, in one
 * accept call: each LoadBalancerVip's ports are one group, taken or refused
 * whole; when capacity runs out, the oldest VIPs are the ones that fit.
 */
export function planVips(balancer: string, all: readonly LoadBalancerVip[], accept: DataplaneAccept): ProgramPlan {
  const mine = vipsOfBalancer(balancer, all);
  const setAside = mine.filter(setAsideByController);
  const candidates = mine.filter((v) => !setAsideByController(v));
  const specs: VipSpec[] = [];
  const groups: number[] = [];
  candidates.forEach((v, g) => {
    for (const s of specsOf(v)) {
      specs.push(s);
      groups.push(g);
    }
  });
  const { accepted, refused: refusedSpecs, general } = accept(specs, groups);

  // A VIP without ports has nothing to refuse: it is programmed unless nothing is.
  const taken = new Set(accepted.map((i) => groups[i]!));
  const withPorts = new Set(groups);
  const isProgrammed = (g: number) => taken.has(g) || (!withPorts.has(g) && !general.length);
  const why = new Map<number, string[]>();
  for (const [i, problems] of refusedSpecs) {
    const { port, protocol } = specs[i]!;
    const own = problems.filter((p) => p !== REFUSED_WITH_GROUP).map((p) => problemText(p, `port ${port}/${protocol}`));
    why.set(groups[i]!, [...(why.get(groups[i]!) ?? []), ...own]);
  }
  const programmed: LoadBalancerVip[] = [];
  const refused = new Map<LoadBalancerVip, string>();
  candidates.forEach((v, g) => {
    const own = why.get(g);
    if (own?.length) refused.set(v, own.join('; '));
    else if (isProgrammed(g)) programmed.push(v);
    else refused.set(v, general.map((p) => problemText(p)).join('; '));
  });
  return { specs: accepted.map((i) => specs[i]!), programmed, setAside, refused };
}
