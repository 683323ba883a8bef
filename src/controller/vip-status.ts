/**
 * What a LoadBalancerVip's status should say, from what the controller knows
 * (the pods it may select, its conflicts, its balancer's agents), and when to
 * look again. Pure: the VIP controller reads the inputs and writes the result.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { DEFAULT_BALANCER, type LoadBalancerVip, type LoadBalancerVipStatus, portsSummary } from '../api/loadbalancervip.js';
import type { Requeue } from '../lib/work-queue.js';
import { type Resolution, resolveBackends } from './backends.js';
import type { BalancerView } from './balancer-controller.js';
import { computeConditions, programmedNodes } from './conditions.js';
import type { ConflictInfo } from './conflicts.js';

const MS_PER_SECOND = 1000;

export interface VipStatusInput {
  vip: LoadBalancerVip;
  /** Pods that may match its selector (a superset). */
  pods: Iterable<V1Pod>;
  conflict?: ConflictInfo;
  balancers: BalancerView;
  now: Date;
}

export interface VipStatusResult {
  status: LoadBalancerVipStatus;
  /** Agents that should program it, and those that did this generation. */
  desiredNodes: number;
  programmedNodes: number;
  badWeights: Resolution['badWeights'];
  /** When a draining backend is due to leave: the status changes then without any event. */
  requeue: Requeue;
}

export function vipStatus({ vip, pods, conflict, balancers, now }: VipStatusInput): VipStatusResult {
  const balancer = vip.spec.balancer ?? DEFAULT_BALANCER;
  const res = resolveBackends(vip, pods, now, balancers.drainSeconds(balancer));
  const desired = balancers.desiredAgents(balancer);
  const active = res.backends.filter((b) => !b.draining);
  const conditions = computeConditions({
    vip: { ...vip, status: { ...vip.status, backends: res.backends } },
    activeBackends: active.length,
    drainingBackends: res.backends.length - active.length,
    zeroWeightBackends: active.filter((b) => b.weight === 0).length,
    conflict,
    desiredNodes: desired ?? 0,
    balancerProblem: !balancers.exists(balancer)
      ? `XdpBalancer "${balancer}" does not exist`
      : desired === undefined ? `the agents of XdpBalancer "${balancer}" are not scheduled yet` : undefined,
    now,
  });
  const programmed = programmedNodes(vip).length;
  return {
    status: {
      observedGeneration: vip.metadata.generation,
      ports: portsSummary(vip.spec),
      readyBackends: active.length,
      programmedNodes: `${programmed}/${desired ?? 0}`,
      backends: res.backends,
      conditions,
    },
    desiredNodes: desired ?? 0,
    programmedNodes: programmed,
    badWeights: res.badWeights,
    requeue: res.requeueAfterSeconds === undefined ? undefined : { requeueAfterMs: res.requeueAfterSeconds * MS_PER_SECOND },
  };
}
