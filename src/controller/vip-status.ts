/**
 * What a LoadBalancerVip's status should say, from what the controller knows
 * (the pods it may select, its conflicts, its balancer's agents), and when to
 * look again. Pure: the VIP controller reads the inputs and writes the result.
 */
import type { V1EndpointSlice, V1Pod } from '@kubernetes/client-node';
import {
  type BackendAddressing, type BackendStatus, DEFAULT_BALANCER, DEFAULT_DELIVERY, type L2Status, type LoadBalancerVip, type LoadBalancerVipStatus, MAX_STATUS_BACKENDS, portsSummary, specProblem,
} from '../api/loadbalancervip.js';
import type { Requeue } from '../lib/work-queue.js';
import { limitBackends } from './backend-limit.js';
import { pickBackendIp, type Resolution, resolveBackends } from './backends.js';
import type { BalancerView } from './balancer-controller.js';
import { computeConditions, programmedNodes } from './conditions.js';
import type { NodeStatus } from '../api/xdpnodereport.js';
import { backendsRevision } from '../api/backends-revision.js';
import type { ConflictInfo } from './conflicts.js';
import type { AddressDecision } from './pools/vip-address.js';
import { electL2Node } from './l2/l2-election.js';
import { resolveEndpointBackends } from './services/endpoint-backends.js';
import { planHealthCheck } from '../api/health-check.js';
import { healthCheckStatus, withHealth } from './backend-health.js';

const MS_PER_SECOND = 1000;

export interface VipStatusInput {
  vip: LoadBalancerVip;
  /** What each node's agent reports of it (node-reports.ts); none: no node holds it. */
  nodes?: readonly NodeStatus[];
  /** Pods that may match its selector (a superset). */
  pods: Iterable<V1Pod>;
  /** For a VIP with spec.backendService: that Service's EndpointSlices, and the cached pod of a target name. */
  endpointSlices?: Iterable<V1EndpointSlice>;
  podOf?: (name: string) => V1Pod | undefined;
  conflict?: ConflictInfo;
  /** Its address and whether it may have it. */
  address: AddressDecision;
  balancers: BalancerView;
  now: Date;
  /** Entries status.backends may hold; MAX_STATUS_BACKENDS unless a test says fewer. */
  maxBackends?: number;
  /** L2 mode (the balancer's spec.l2): the nodes whose agent is alive; absent when the balancer is not in L2 mode. */
  l2Alive?: ReadonlySet<string>;
  /** The announcing node this controller last wrote, which its cache may not show yet. */
  l2Current?: L2Status;
}

export interface VipStatusResult {
  status: LoadBalancerVipStatus;
  /** Agents that should program it, and those that did this generation. */
  desiredNodes: number;
  programmedNodes: number;
  badWeights: Resolution['badWeights'];
  badQuicServerIds: Resolution['badQuicServerIds'];
  /** When a draining backend is due to leave: the status changes then without any event. */
  requeue: Requeue;
}

export function vipStatus(input: VipStatusInput): VipStatusResult {
  const { vip, conflict, address, balancers, now, maxBackends = MAX_STATUS_BACKENDS, nodes = [] } = input;
  const balancer = vip.spec.balancer ?? DEFAULT_BALANCER;
  const drain = balancers.drainSeconds(balancer);
  const res = vip.spec.backendService === undefined
    ? resolveBackends(vip, address.address, input.pods, now, drain)
    : resolveEndpointBackends(vip, address.address, input.endpointSlices ?? [], input.podOf ?? (() => undefined), now, drain);
  const desired = balancers.desiredAgents(balancer);
  // Counts are of every backend; the list, and so the agents, see at most maxBackends of them.
  const active = res.backends.filter((b) => !b.draining);
  const limited = limitBackends(res.backends, vip.status?.backends, maxBackends);
  const unlisted = limited.unlisted;
  // The balancer nodes' health checks: an unhealthy backend is listed with healthy false (weight 0 on every agent).
  const healthPlan = planHealthCheck(vip.spec.healthCheck, vip.spec.ports);
  const addressing = addressingOf(vip, balancers);
  const addressed = addressing === 'Node' ? withNodeIps(limited.listed, address.address, balancers, vip.status?.backends) : limited.listed;
  const listed = withHealth(`${vip.metadata.namespace}/${vip.metadata.name}`, addressed, vip.status?.backends, balancers.health?.(balancer),
    'probe' in healthPlan, addressing === 'Node' ? (b) => b.nodeIP : undefined);
  const listedActive = listed.filter((b) => !b.draining);
  // The status about to be written, as agents will read it: nodes count as programmed against its revision, not the last one.
  const revision = backendsRevision({ status: { address: address.address, addressing, backends: listed } });
  const written = { ...vip, status: { ...vip.status, backends: listed, backendsRevision: revision } };
  const conditions = computeConditions({
    vip: written,
    nodes,
    activeBackends: active.length,
    drainingBackends: listed.length - listedActive.length,
    zeroWeightBackends: listedActive.filter((b) => b.weight === 0).length,
    unlistedBackends: unlisted.filter((b) => !b.draining).length,
    conflict,
    address,
    desiredNodes: desired ?? 0,
    balancerProblem: !balancers.exists(balancer)
      ? `XdpBalancer "${balancer}" does not exist`
      : desired === undefined ? `the agents of XdpBalancer "${balancer}" are not scheduled yet` : undefined,
    specProblem: specProblem(vip.spec),
    now,
  });
  const programmed = programmedNodes(written, nodes).length;
  const l2 = input.l2Alive && electL2Node({ vip, nodes, address: address.allowed ? address.address : undefined, alive: input.l2Alive, now, current: input.l2Current });
  return {
    status: {
      observedGeneration: vip.metadata.generation,
      ...(address.address === undefined ? {} : { address: address.address }),
      ...(address.allowed && address.pool ? { addressPool: address.pool } : {}),
      ports: portsSummary(vip.spec),
      readyBackends: active.length,
      unlistedBackends: unlisted.length,
      programmedNodes: `${programmed}/${desired ?? 0}`,
      backends: listed,
      backendsRevision: revision,
      conditions,
      ...(addressing ? { addressing } : {}),
      ...(l2 ? { l2 } : {}),
      healthCheck: healthCheckStatus(healthPlan, listed),
    },
    desiredNodes: desired ?? 0,
    programmedNodes: programmed,
    badWeights: res.badWeights,
    badQuicServerIds: res.badQuicServerIds,
    requeue: res.requeueAfterSeconds === undefined ? undefined : { requeueAfterMs: res.requeueAfterSeconds * MS_PER_SECOND },
  };
}

/** Where the balancers encapsulate a VIP's packets to: its balancer's setting for delivery Node; undefined (Pod) for InPod. */
export function addressingOf(vip: LoadBalancerVip, balancers: BalancerView): BackendAddressing | undefined {
  if ((vip.spec.delivery ?? DEFAULT_DELIVERY) !== 'Node') return undefined;
  return balancers.backendAddressing?.(vip.spec.balancer ?? DEFAULT_BALANCER) ?? 'Pod';
}

/**
 * Node addressing: each backend with the address of its node the balancers
 * encapsulate to, chosen among the node's InternalIPs as a pod address is
 * among the pod's (the VIP's family; IPv6 for an IPv4 VIP when there is no
 * IPv4). A backend whose node is not known any more (deleted while its pod
 * drains) keeps the address it had, so its flows finish.
 */
export function withNodeIps(backends: readonly BackendStatus[], vipAddress: string | undefined, balancers: BalancerView,
  previous: readonly BackendStatus[] | undefined): BackendStatus[] {
  const had = new Map((previous ?? []).map((b) => [b.ip, b.nodeIP]));
  return backends.map((b) => {
    const known = b.node === undefined ? [] : balancers.nodeAddresses?.(b.node) ?? [];
    const nodeIP = known.length ? pickBackendIp(vipAddress, known) : had.get(b.ip);
    return nodeIP === undefined ? b : { ...b, nodeIP };
  });
}
