/**
 * A VIP's status conditions, in the standard Condition shape. A condition's
 * lastTransitionTime changes only when its status does, so a status write
 * happens only when something a user can see changed.
 */
import type { V1Condition } from '@kubernetes/client-node';
import { ConditionType, type LoadBalancerVip, type LoadBalancerVipStatus } from '../api/loadbalancervip.js';
import type { NodeStatus } from '../api/xdpnodereport.js';
import { type ConflictInfo, lossMessage } from './conflicts.js';

export interface ConditionInputs {
  vip: LoadBalancerVip;
  /** What each node's agent reports of the VIP (its XdpNodeReport entry); none: no node holds it. */
  nodes?: readonly NodeStatus[];
  activeBackends: number;
  drainingBackends: number;
  /**
   * Active backends whose weight is 0: the ring gives them no slot, so they
   * take no new connection. Backends are available only if some weigh more.
   */
  zeroWeightBackends?: number;
  /** Active backends left out of status.backends (it is full): agents never see them. */
  unlistedBackends?: number;
  conflict?: ConflictInfo;
  /** Whether the VIP may have its address, and why (pools, never-allowed addresses). */
  address: { allowed: boolean; code: string; message: string };
  /** Agents the balancer should have (its DaemonSet's desired pods). */
  desiredNodes: number;
  /** Why the balancer cannot program anything (missing, not scheduled), if so. */
  balancerProblem?: string;
  /** Why no agent may program the spec as written (specProblem), if so: Programmed False with its reason. */
  specProblem?: { reason: string; message: string };
  now: Date;
}

function cond(type: string, ok: boolean, reason: string, message: string, generation: number | undefined): Omit<V1Condition, 'lastTransitionTime'> {
  return { type, status: ok ? 'True' : 'False', reason, message, observedGeneration: generation };
}

/** Why backends are, or are not, available: serving ones, then what stops the ready ones from serving. */
function backendsReason(serving: number, listedActive: number, unlisted: number): string {
  if (serving > 0) return unlisted ? 'ListFull' : 'ReadyPods';
  if (listedActive > 0) return 'AllWeightsZero';
  return unlisted ? 'ListFull' : 'NoReadyPods';
}

/**
 * Nodes whose agent holds this generation of the VIP and this revision of its
 * backends (status.backendsRevision), without error: a backend change is
 * confirmed on every node, not assumed.
 */
export function programmedNodes(vip: LoadBalancerVip, nodes: readonly NodeStatus[]): NodeStatus[] {
  const revision = vip.status?.backendsRevision;
  return nodes.filter((n) =>
    n.programmedGeneration === vip.metadata.generation && n.programmedBackendsRevision === revision && !n.lastError);
}

export function computeConditions(i: ConditionInputs): V1Condition[] {
  const gen = i.vip.metadata.generation;
  const nodes = i.nodes ?? [];
  const programmed = programmedNodes(i.vip, nodes);
  const failing = nodes.filter((n) => n.lastError);
  const inConflict = !!i.conflict?.lost.length;
  const zero = i.zeroWeightBackends ?? 0;
  const unlisted = i.unlistedBackends ?? 0;
  const serving = i.activeBackends - unlisted - zero;
  const backends = cond(
    ConditionType.BackendsAvailable,
    serving > 0,
    backendsReason(serving, i.activeBackends - unlisted, unlisted),
    `${i.activeBackends} ready backend(s), ${i.drainingBackends} draining` +
      (zero === 0 ? '' : `, ${zero} with weight 0${serving > 0 ? '' : ': no new connection can be served (see the xdplb.dev/weight annotation)'}`) +
      (unlisted === 0 ? '' : `; ${unlisted} not in status.backends, which is full: they get no traffic until there is room`),
    gen,
  );
  const conflict = cond(
    ConditionType.Conflict,
    inConflict,
    inConflict ? 'AddressInUse' : 'NoConflict',
    inConflict ? i.conflict!.lost.map(lossMessage).join('; ') : 'no other VIP claims these ports',
    gen,
  );
  const allowed = i.address.allowed;
  const addressCond = cond(ConditionType.AddressAllowed, allowed, i.address.code, i.address.message, gen);
  const spec = i.specProblem;
  const allProgrammed = !spec && allowed && !inConflict && !i.balancerProblem && i.desiredNodes > 0 && programmed.length >= i.desiredNodes;
  const programmedCond = cond(
    ConditionType.Programmed,
    allProgrammed,
    spec ? spec.reason : !allowed ? 'AddressNotAllowed' : inConflict ? 'Conflict' : i.balancerProblem ? 'NoBalancer' : failing.length ? 'NodeErrors' : allProgrammed ? 'AllNodes' : 'Pending',
    (spec ? `${spec.message}: programmed on no node` : undefined)
      ?? (allowed ? undefined : 'the address is not allowed: programmed on no node') ?? i.balancerProblem
      ?? (failing.length
        ? failing.map((n) => `${n.node}: ${n.lastError}`).join('; ')
        : `${programmed.length} of ${i.desiredNodes} node(s) programmed generation ${gen ?? '?'}, backends rev ${i.vip.status?.backendsRevision ?? 'none'}`),
    gen,
  );
  const ready = backends.status === 'True' && allProgrammed;
  const why = [
    ...(allowed ? [] : [addressCond.message]),
    ...(backends.status === 'True' ? [] : [backends.message]),
    ...(inConflict ? [conflict.message] : []),
    ...(allProgrammed ? [] : [programmedCond.message]),
  ];
  const readyCond = cond(ConditionType.Ready, ready, ready ? 'Serving' : 'NotServing',
    ready ? 'traffic is balanced on every node' : why.join('; '), gen);
  return [addressCond, backends, programmedCond, readyCond, conflict].map((c) => withTransition(c, i.vip.status, i.now));
}

function withTransition(c: Omit<V1Condition, 'lastTransitionTime'>, status: LoadBalancerVipStatus | undefined, now: Date): V1Condition {
  const prev = status?.conditions?.find((p) => p.type === c.type);
  const lastTransitionTime = prev && prev.status === c.status ? new Date(prev.lastTransitionTime) : now;
  return { ...c, lastTransitionTime };
}

/** Whether two condition lists differ in anything but their order. */
export function conditionsEqual(a: readonly V1Condition[] = [], b: readonly V1Condition[] = []): boolean {
  if (a.length !== b.length) return false;
  const key = (c: V1Condition) => JSON.stringify([c.type, c.status, c.reason, c.message, c.observedGeneration, new Date(c.lastTransitionTime).getTime()]);
  const bs = new Set(b.map(key));
  return a.every((c) => bs.has(key(c)));
}
