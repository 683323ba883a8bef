/**
 * XdpBalancers: owns each one's agent DaemonSet (server-side applied, so an
 * unchanged spec writes nothing and a changed one rolls the agents) and
 * reports how many agents are desired and ready, which the VIP controller
 * needs to say whether a VIP is programmed everywhere. Also says which
 * balancers may share nodes (node-overlap.ts): the VIP controller's conflicts
 * depend on it, and a balancer whose nodes run another's agent is told so.
 */
import {
  AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions, type V1Condition, type V1DaemonSet, type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import { type BackendAddressing, DEFAULT_BACKEND_ADDRESSING, GROUP, VERSION } from '../api/loadbalancervip.js';
import {
  BalancerConditionType, DEFAULT_DRAIN_SECONDS, XDPB_PLURAL, type XdpBalancer, type XdpBalancerStatus,
} from '../api/xdpbalancer.js';
import { apiError } from '../lib/api-error.js';
import { componentLog } from '../lib/log.js';
import { WatchedCache } from '../lib/watched-cache.js';
import { AGENT_APP, agentDaemonSetName, BALANCER_LABEL } from '../api/agent-pod.js';
import { agentDaemonSet, MANAGED_BY } from './agent-daemonset.js';
import { trimPod } from './backends.js';
import { excludedNodes, excludeNodesAffinity, internalIps, nodesExcludedCondition, trimNodeForPlacement } from './balancer-placement.js';
import type { EventRecorder } from './events.js';
import type { ControllerMetrics } from './metrics.js';
import { AgentNodes, nodeOverlapCondition, nodeSelectorsDisjoint } from './node-overlap.js';
import { WorkQueue } from '../lib/work-queue.js';
import { balancerHealth, type HealthView } from './backend-health.js';
import type { ImageAllowlist } from './image-allowlist.js';

const log = componentLog('balancer-controller');

export const CONTROLLER_FIELD_MANAGER = 'xdplb-controller';
/** Agent pods per list page (one per node and balancer: thousands on a large cluster). */
const AGENT_PODS_PAGE_SIZE = 500;
/** The API server's answer to an object it finds invalid. */
const HTTP_UNPROCESSABLE = 422;

/** What the VIP controller needs to know about a balancer. */
export interface BalancerView {
  exists(balancer: string): boolean;
  /** Agents the balancer's DaemonSet should run; undefined until the DaemonSet reports. */
  desiredAgents(balancer: string): number | undefined;
  drainSeconds(balancer: string): number;
  /** Whether two different balancers may run on one node: both exist and their nodeSelectors do not exclude each other. */
  mayShareNodes(a: string, b: string): boolean;
  /** Whether the balancer announces its VIPs in L2 mode (spec.l2). */
  l2?(balancer: string): boolean;
  /** Its nodes' health judgements of the VIPs' backends (backend-health.ts). */
  health?(balancer: string): HealthView;
  /** Where its delivery Node VIPs are encapsulated to (spec.backendAddressing or the default); absent: Pod. */
  backendAddressing?(balancer: string): BackendAddressing;
  /** A node's InternalIPs (Node addressing encapsulates to one of them); [] when unknown. */
  nodeAddresses?(node: string): string[];
}

export interface BalancerControllerOptions {
  /** Where the agent DaemonSets live. */
  namespace: string;
  /** Called when what the view says about a balancer may have changed. */
  onBalancerChange?(balancer: string): void;
  metrics?: ControllerMetrics;
  events?: EventRecorder;
  /**
   * The images a balancer's agents may run (image-allowlist.ts); one outside it gets no DaemonSet
   * (an existing one keeps its image). main.ts always gives one; absent (tests): any image.
   */
  images?: ImageAllowlist;
}

export class BalancerController implements BalancerView {
  private readonly custom: CustomObjectsApi;
  private readonly apps: AppsV1Api;
  private readonly balancers: WatchedCache<XdpBalancer>;
  private readonly daemonSets: WatchedCache<V1DaemonSet>;
  private readonly agentPods: WatchedCache<V1Pod>;
  private readonly agentNodes = new AgentNodes();
  /** Nodes' labels and taints: which balancers may run where (balancer-placement.ts). */
  private readonly nodes: WatchedCache<V1Node>;
  private placementKey = '';
  /** Every node's InternalIPs, to see them change (Node addressing's VIPs then get new nodeIPs). */
  private addressesKey = '';
  private readonly queue: WorkQueue;

  constructor(kc: KubeConfig, private readonly opts: BalancerControllerOptions) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.apps = kc.makeApiClient(AppsV1Api);
    const ns = opts.namespace;
    this.balancers = new WatchedCache<XdpBalancer>(
      kc,
      `/apis/${GROUP}/${VERSION}/${XDPB_PLURAL}`,
      () => this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: XDPB_PLURAL }),
      (b) => {
        this.changed(b.metadata.name!);
        this.placementMayHaveChanged();
      },
    );
    const labelSelector = `app.kubernetes.io/managed-by=${MANAGED_BY}`;
    this.daemonSets = new WatchedCache<V1DaemonSet>(
      kc,
      `/apis/apps/v1/namespaces/${ns}/daemonsets`,
      () => this.apps.listNamespacedDaemonSet({ namespace: ns, labelSelector }),
      (ds) => {
        const b = ds.metadata?.labels?.[BALANCER_LABEL];
        if (b) this.changed(b);
      },
      { labelSelector },
    );
    // Agent pods say where each balancer runs now: a node running two balancers' agents is reported on both.
    const core = kc.makeApiClient(CoreV1Api);
    const agentLabel = `app.kubernetes.io/name=${AGENT_APP}`;
    this.agentPods = new WatchedCache<V1Pod>(
      kc,
      `/api/v1/namespaces/${ns}/pods`,
      (page) => core.listNamespacedPod({ namespace: ns, labelSelector: agentLabel, ...page }),
      (p, verb) => {
        for (const b of this.agentNodes.update(p, verb === 'delete')) this.queue.add(b);
        // Its readiness decides whether its node probes (status.probingNodes).
        const own = p.metadata?.labels?.[BALANCER_LABEL];
        if (own) this.queue.add(own);
      },
      { labelSelector: agentLabel, trim: trimPod, pageSize: AGENT_PODS_PAGE_SIZE },
    );
    this.nodes = new WatchedCache<V1Node>(kc, '/api/v1/nodes', (page) => core.listNode(page), () => {
      this.placementMayHaveChanged();
      this.addressesMayHaveChanged();
    }, { trim: trimNodeForPlacement });
    this.queue = new WorkQueue('xdpbalancer', (name) => this.reconcile(name), opts.metrics?.queueHooks('XdpBalancer', () => this.queue.depth));
  }

  /**
   * A node or a balancer changed: if who may run where changed, every balancer
   * is looked at again (node status updates come every few seconds and change nothing).
   */
  private placementMayHaveChanged(): void {
    const key = JSON.stringify([...this.placement()].map(([b, nodes]) => [b, [...nodes]]));
    if (key === this.placementKey) return;
    this.placementKey = key;
    for (const b of this.balancers.list()) this.queue.add(b.metadata.name!);
  }

  /**
   * A node came, went or changed: if any node's InternalIPs changed, the VIPs
   * of every Node addressing balancer are looked at again (their nodeIPs).
   */
  private addressesMayHaveChanged(): void {
    const key = JSON.stringify(this.nodes.list().map((n) => [n.metadata?.name, internalIps(n)]).sort());
    if (key === this.addressesKey) return;
    this.addressesKey = key;
    for (const b of this.balancers.list()) if (this.backendAddressing(b.metadata.name!) === 'Node') this.opts.onBalancerChange?.(b.metadata.name!);
  }

  private placement(): Map<string, Map<string, string>> {
    return excludedNodes(this.balancers.list(), this.nodes.list());
  }

  async start(): Promise<void> {
    await Promise.all([this.balancers.start(), this.daemonSets.start(), this.agentPods.start(), this.nodes.start()]);
    for (const b of this.balancers.list()) this.queue.add(b.metadata.name!);
    this.queue.start();
  }

  async stop(): Promise<void> {
    await this.queue.stop();
    await Promise.all([this.balancers.stop(), this.daemonSets.stop(), this.agentPods.stop(), this.nodes.stop()]);
  }

  exists(balancer: string): boolean {
    return !!this.balancers.get(balancer);
  }

  desiredAgents(balancer: string): number | undefined {
    const ds = this.daemonSets.get(agentDaemonSetName(balancer), this.opts.namespace);
    return ds?.status?.observedGeneration === undefined ? undefined : ds.status.desiredNumberScheduled;
  }

  drainSeconds(balancer: string): number {
    return this.balancers.get(balancer)?.spec.drainSeconds ?? DEFAULT_DRAIN_SECONDS;
  }

  l2(balancer: string): boolean {
    return !!this.balancers.get(balancer)?.spec.l2;
  }

  health(balancer: string): HealthView {
    return balancerHealth(this.balancers.get(balancer));
  }

  /** The nodes whose agent of this balancer is Ready, sorted: they divide the health checks. */
  private probingNodes(balancer: string): string[] {
    const ready = this.agentPods.list().filter((p) => p.metadata?.labels?.[BALANCER_LABEL] === balancer && p.spec?.nodeName &&
      p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    return [...new Set(ready.map((p) => p.spec!.nodeName!))].sort();
  }

  backendAddressing(balancer: string): BackendAddressing {
    return this.balancers.get(balancer)?.spec.backendAddressing ?? DEFAULT_BACKEND_ADDRESSING;
  }

  nodeAddresses(node: string): string[] {
    return internalIps(this.nodes.get(node));
  }

  mayShareNodes(a: string, b: string): boolean {
    const x = this.balancers.get(a);
    const y = this.balancers.get(b);
    return !!x && !!y && !nodeSelectorsDisjoint(x.spec.nodeSelector, y.spec.nodeSelector);
  }

  private changed(balancer: string): void {
    this.queue.add(balancer);
    this.opts.onBalancerChange?.(balancer);
  }

  async reconcile(name: string): Promise<void> {
    const b = this.balancers.get(name);
    if (!b) {
      // Deleted: the DaemonSet goes with it (owner reference).
      for (const state of ['desired', 'ready']) this.opts.metrics?.balancerAgents.remove({ balancer: name, state });
      return;
    }
    const notAllowed = this.opts.images?.refusal(b.spec.image);
    if (notAllowed) {
      // Writing XdpBalancers must not be a way to run any image as root on the nodes: no DaemonSet is made or
      // changed, so agents that run keep the image they had; the balancer's next change queues it again.
      const running = this.daemonSets.get(agentDaemonSetName(name), this.opts.namespace);
      const keeps = running ? `; its ${running.status?.numberReady ?? 0} running agents keep the image they had` : '';
      await this.writeStatus(b, running?.status?.desiredNumberScheduled ?? 0, running?.status?.numberReady ?? 0,
        { status: 'False', reason: 'ImageNotAllowed', message: `${notAllowed}${keeps}` });
      return;
    }
    const want = agentDaemonSet(b, this.opts.namespace);
    // Nodes an older balancer selects too stay its own: this one's agents are kept off them.
    const excluded = this.placement().get(name) ?? new Map<string, string>();
    const affinity = excludeNodesAffinity([...excluded.keys()]);
    if (affinity) want.spec!.template.spec!.affinity = affinity;
    let applied: V1DaemonSet;
    try {
      applied = await this.apps.patchNamespacedDaemonSet(
        { name: want.metadata!.name!, namespace: this.opts.namespace, body: want, fieldManager: CONTROLLER_FIELD_MANAGER, force: true },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      );
    } catch (err) {
      const refusal = apiError(err);
      if (refusal.code !== HTTP_UNPROCESSABLE) throw err;
      // Invalid as the spec makes it (a name or node selector a DaemonSet cannot take): the same spec
      // would be refused again, so no retry; the balancer's next change queues it anyway.
      await this.writeStatus(b, 0, 0, {
        status: 'False',
        reason: 'InvalidDaemonSet',
        message: `the API server refused its agent DaemonSet: ${refusal.message}; fix the XdpBalancer (a name must be recreated)`,
      });
      return;
    }
    const ds = this.daemonSets.get(want.metadata!.name!, this.opts.namespace) ?? applied;
    const desired = ds.status?.desiredNumberScheduled ?? 0;
    const ready = ds.status?.numberReady ?? 0;
    this.opts.metrics?.balancerAgents.set({ balancer: name, state: 'desired' }, desired);
    this.opts.metrics?.balancerAgents.set({ balancer: name, state: 'ready' }, ready);
    const allReady = ds.status?.observedGeneration !== undefined && ready >= desired && desired > 0;
    await this.writeStatus(b, desired, ready, {
      status: allReady ? 'True' : 'False',
      reason: allReady ? 'AllReady' : desired === 0 ? 'NoNodes' : 'Pending',
      message: desired === 0 ? 'no node matches the node selector (or the DaemonSet is not scheduled yet)' : `${ready} of ${desired} agents ready`,
    });
  }

  /** Writes the balancer's status when it changed; a newly refused DaemonSet is a Warning Event too. */
  private async writeStatus(b: XdpBalancer, desired: number, ready: number, agents: Pick<V1Condition, 'status' | 'reason' | 'message'>): Promise<void> {
    const name = b.metadata.name!;
    const condition: V1Condition = {
      type: BalancerConditionType.AgentsReady,
      ...agents,
      observedGeneration: b.metadata.generation,
      lastTransitionTime: new Date(),
    };
    const prev = b.status?.conditions?.find((c) => c.type === condition.type);
    if (prev && prev.status === condition.status) condition.lastTransitionTime = new Date(prev.lastTransitionTime);
    const overlap: V1Condition = { ...nodeOverlapCondition(this.agentNodes.sharedWith(name), b.metadata.generation), lastTransitionTime: new Date() };
    const prevOverlap = b.status?.conditions?.find((c) => c.type === overlap.type);
    if (prevOverlap && prevOverlap.status === overlap.status) overlap.lastTransitionTime = new Date(prevOverlap.lastTransitionTime);
    const excluded: V1Condition = { ...nodesExcludedCondition(this.placement().get(name), b.metadata.generation), lastTransitionTime: new Date() };
    const prevExcluded = b.status?.conditions?.find((c) => c.type === excluded.type);
    if (prevExcluded && prevExcluded.status === excluded.status) excluded.lastTransitionTime = new Date(prevExcluded.lastTransitionTime);
    const probingNodes = this.probingNodes(name);
    const status: XdpBalancerStatus = {
      observedGeneration: b.metadata.generation,
      desiredAgents: desired,
      readyAgents: ready,
      conditions: [condition, overlap, excluded],
      probingNodes,
      backendAddressing: this.backendAddressing(name),
    };
    const sameAs = (c: V1Condition, p: V1Condition | undefined) => p?.status === c.status && p?.reason === c.reason && p?.message === c.message;
    const same = b.status?.observedGeneration === status.observedGeneration && b.status?.desiredAgents === desired &&
      b.status?.readyAgents === ready && (b.status?.probingNodes ?? []).join() === probingNodes.join() &&
      b.status?.backendAddressing === status.backendAddressing && sameAs(condition, prev) && sameAs(overlap, prevOverlap) && sameAs(excluded, prevExcluded);
    if (same) return;
    await this.custom.patchClusterCustomObjectStatus(
      { group: GROUP, version: VERSION, plural: XDPB_PLURAL, name, body: { status }, fieldManager: CONTROLLER_FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    this.opts.metrics?.statusWrites.inc({ kind: 'XdpBalancer' });
    if (overlap.status === 'True' && prevOverlap?.status !== 'True') this.opts.events?.record(b, 'Warning', 'NodeOverlap', overlap.message);
    if (excluded.status === 'True' && !sameAs(excluded, prevExcluded)) this.opts.events?.record(b, 'Warning', 'NodesExcluded', excluded.message);
    if (condition.reason === 'InvalidDaemonSet' || condition.reason === 'ImageNotAllowed') {
      this.opts.events?.record(b, 'Warning', condition.reason, condition.message);
      log.warn({ balancer: name, reason: condition.reason, message: condition.message }, 'agent DaemonSet refused');
    } else {
      log.info({ balancer: name, desired, ready }, 'balancer status updated');
    }
  }
}
