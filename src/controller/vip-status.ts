/**
 * What a LoadBalancerVip's status should say, from what the controller knows
 * (the pods it may select, its conflicts, its balancer's agents), and when to
 * look again. Pure: the VIP controller reads the inputs and writes the result.
 */
import type { V1Pod } from '@kubernetes/client-node';
import {
  DEFAULT_BALANCER, type LoadBalancerVip, type LoadBalancerVipStatus, MAX_STATUS_BACKENDS, portsSummary,
} from '../api/loadbalancervip.js';
import type { Requeue } from '../lib/work-queue.js';
import { limitBackends } from './backend-limit.js';
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
  /** Entries status.backends may hold; MAX_STATUS_BACKENDS unless a test says fewer. */
  maxBackends?: number;
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

export function vipStatus({ vip, pods, conflict, balancers, now, maxBackends = MAX_STATUS_BACKENDS }: VipStatusInput): VipStatusResult {
  const balancer = vip.spec.balancer ?? DEFAULT_BALANCER;
  const res = resolveBackends(vip, pods, now, balancers.drainSeconds(balancer));
  const desired = balancers.desiredAgents(balancer);
  // Counts are of every backend; the list, and so the agents, see at most maxBackends of them.
  const active = res.backends.filter((b) => !b.draining);
  const { listed, unlisted } = limitBackends(res.backends, vip.status?.backends, maxBackends);
  const listedActive = listed.filter((b) => !b.draining);
  const conditions = computeConditions({
    vip: { ...vip, status: { ...vip.status, backends: listed } },
    activeBackends: active.length,
    drainingBackends: listed.length - listedActive.length,
    zeroWeightBackends: listedActive.filter((b) => b.weight === 0).length,
    unlistedBackends: unlisted.filter((b) => !b.draining).length,
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
      unlistedBackends: unlisted.length,
      programmedNodes: `${programmed}/${desired ?? 0}`,
      backends: listed,
      conditions,
    },
    desiredNodes: desired ?? 0,
    programmedNodes: programmed,
    badWeights: res.badWeights,
    requeue: res.requeueAfterSeconds === undefined ? undefined : { requeueAfterMs: res.requeueAfterSeconds * MS_PER_SECOND },
  };
}
