/**
 * LoadBalancerVips: resolves each VIP's backends from the Pods it selects,
 * settles address conflicts, and writes status (backends, conditions,
 * summaries) only when something a user can see changed. Agents turn that
 * status into maps; this controller never touches BPF.
 *
 * Every event queues exactly the VIPs it may change; a periodic resync
 * queues them all anyway, as a safety net against a missed case.
 */
import {
  CoreV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions, type V1Pod,
} from '@kubernetes/client-node';
import {
  type BackendStatus, DEFAULT_BALANCER, GROUP, LBVIP_PLURAL, type LoadBalancerVip, type LoadBalancerVipStatus, VERSION,
} from '../api/loadbalancervip.js';
import { goneOrThrow } from '../lib/api-error.js';
import { componentLog } from '../lib/log.js';
import { trimManagedFields, WatchedCache } from '../lib/watched-cache.js';
import { MAX_WEIGHT, trimPod } from './backends.js';
import { BadWeightReports } from './bad-weights.js';
import type { BalancerView } from './balancer-controller.js';
import { CONTROLLER_FIELD_MANAGER } from './balancer-controller.js';
import { conditionsEqual } from './conditions.js';
import { ClaimIndex } from './conflicts.js';
import type { EventRecorder } from './events.js';
import { PodIndex, VipIndex } from './indexes.js';
import type { ControllerMetrics } from './metrics.js';
import { matchesSelector } from './selector.js';
import { type Requeue, WorkQueue } from '../lib/work-queue.js';
import { vipStatus } from './vip-status.js';

const log = componentLog('vip-controller');

export interface VipControllerOptions {
  balancers: BalancerView;
  events?: EventRecorder;
  metrics?: ControllerMetrics;
  /** Every this often, every VIP is reconciled again (and the claim index rebuilt from the cache). */
  resyncSeconds?: number;
  /** Entries a VIP's status.backends may hold; the CRD's limit unless a test says fewer. */
  maxListedBackends?: number;
}

export const DEFAULT_RESYNC_SECONDS = 300;
const MS_PER_SECOND = 1000;

/** Objects per list page: bounds the largest response the controller parses at once. */
const LIST_PAGE_SIZE = 500;

const keyOf = (ns: string | undefined, name: string | undefined) => `${ns}/${name}`;
const balancerOf = (v: LoadBalancerVip) => v.spec.balancer ?? DEFAULT_BALANCER;

export class VipController {
  private readonly custom: CustomObjectsApi;
  private readonly vips: WatchedCache<LoadBalancerVip>;
  private readonly pods: WatchedCache<V1Pod>;
  private readonly queue: WorkQueue;
  private readonly podIndex = new PodIndex();
  private readonly vipIndex = new VipIndex();
  private claims: ClaimIndex;
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly badWeights = new BadWeightReports();
  reconciles = 0;
  statusWrites = 0;
  resyncs = 0;

  constructor(kc: KubeConfig, private readonly opts: VipControllerOptions) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.claims = new ClaimIndex(this.sharesNodes);
    const core = kc.makeApiClient(CoreV1Api);
    this.vips = new WatchedCache<LoadBalancerVip>(
      kc,
      `/apis/${GROUP}/${VERSION}/${LBVIP_PLURAL}`,
      (page) => this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, ...page }),
      (v, verb) => this.onVip(v, verb === 'delete'),
      { trim: trimManagedFields, pageSize: LIST_PAGE_SIZE },
    );
    this.pods = new WatchedCache<V1Pod>(kc, '/api/v1/pods', (page) => core.listPodForAllNamespaces(page), (p, verb) => this.onPod(p, verb === 'delete'),
      { trim: trimPod, pageSize: LIST_PAGE_SIZE });
    this.queue = new WorkQueue('loadbalancervip', (key) => this.reconcile(key), opts.metrics?.queueHooks('LoadBalancerVip', () => this.queue.depth));
  }

  async start(): Promise<void> {
    await Promise.all([this.vips.start(), this.pods.start()]);
    for (const v of this.vips.list()) this.queue.add(keyOf(v.metadata.namespace, v.metadata.name));
    this.queue.start();
    const every = (this.opts.resyncSeconds ?? DEFAULT_RESYNC_SECONDS) * MS_PER_SECOND;
    this.resyncTimer = setInterval(() => this.resync(), every);
  }

  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    await this.queue.stop();
    await Promise.all([this.vips.stop(), this.pods.stop()]);
  }

  /**
   * The balancer's agents or settings changed: its VIPs' Programmed condition
   * may have, and so may the conflicts between its VIPs and other balancers'
   * (its nodeSelector decides whether they may share a node).
   */
  balancerChanged(balancer: string): void {
    for (const v of this.vips.list()) {
      if (balancerOf(v) !== balancer) continue;
      const key = keyOf(v.metadata.namespace, v.metadata.name);
      this.queue.add(key);
      for (const rival of this.claims.rivalsOf(key)) this.queue.add(rival);
    }
  }

  /** VIPs of two balancers conflict when the balancers may run on one node. */
  private readonly sharesNodes = (a: string, b: string) => this.opts.balancers.mayShareNodes(a, b);

  /** The safety net: the index is rebuilt from the cache and every VIP is reconciled. */
  private resync(): void {
    const vips = this.vips.list();
    this.claims = ClaimIndex.of(vips, this.sharesNodes);
    for (const v of vips) this.queue.add(keyOf(v.metadata.namespace, v.metadata.name));
    this.resyncs++;
    this.opts.metrics?.resyncs.inc();
    log.debug({ vips: vips.length }, 'resync: every VIP queued');
  }

  /** A VIP change can change who wins a contested address: the VIPs sharing a claim it had or has are looked at too. */
  private onVip(v: LoadBalancerVip, deleted: boolean): void {
    this.vipIndex.update(v, deleted);
    const rivals = this.claims.update(v, deleted);
    this.queue.add(keyOf(v.metadata.namespace, v.metadata.name));
    for (const key of rivals) this.queue.add(key);
  }

  /** Only the VIPs that select the pod now, or list it already. */
  private onPod(p: V1Pod, deleted: boolean): void {
    this.podIndex.update(p, deleted);
    for (const key of this.vipIndex.candidates(p)) {
      const [ns, name] = key.split('/') as [string, string];
      const v = this.vips.get(name, ns);
      if (!v) continue;
      const lists = (v.status?.backends ?? []).some((b) => b.pod === p.metadata?.name);
      if (lists || matchesSelector(v.spec.backendSelector, p.metadata?.labels)) this.queue.add(key);
    }
  }

  /** Writes the VIP's status; asks to be reconciled again when a draining backend's time runs out. */
  async reconcile(key: string): Promise<Requeue> {
    this.reconciles++;
    const [ns, name] = key.split('/') as [string, string];
    const vip = this.vips.get(name, ns);
    if (!vip) {
      // Deleted: agents drop it from their maps.
      for (const state of ['desired', 'programmed']) this.opts.metrics?.vipNodes.remove({ vip: key, state });
      this.badWeights.forget(key);
      return;
    }
    const conflict = this.claims.conflictOf(key);
    const next = vipStatus({
      vip, pods: this.podIndex.candidates(ns, vip.spec.backendSelector), conflict, balancers: this.opts.balancers, now: new Date(),
      maxBackends: this.opts.maxListedBackends,
    });
    const { status, requeue } = next;
    this.opts.metrics?.vipNodes.set({ vip: key, state: 'desired' }, next.desiredNodes);
    this.opts.metrics?.vipNodes.set({ vip: key, state: 'programmed' }, next.programmedNodes);
    // Once per pod and value, whether or not the status changes: not again with every later change of the VIP.
    for (const bad of this.badWeights.fresh(key, next.badWeights)) {
      this.opts.events?.record(vip, 'Warning', 'BadWeight', `pod ${bad.pod}: weight annotation "${bad.value}" is not an integer in 0..${MAX_WEIGHT}; using the default weight`);
    }
    if (!changed(vip.status, status)) return requeue;
    const written = await this.custom.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: ns, name, body: { status }, fieldManager: CONTROLLER_FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    ).then(() => true, goneOrThrow);
    if (!written) return;
    this.statusWrites++;
    this.opts.metrics?.statusWrites.inc({ kind: 'LoadBalancerVip' });
    this.recordEvents(vip, vip.status, status);
    // The whole story, other namespaces' holders included, is for the operator's log only.
    const lost = conflict?.lost.map((l) => `${l.claim} held by ${l.heldBy}${l.balancer ? ` (XdpBalancer ${l.balancer})` : ''}`);
    log.info({ vip: key, backends: status.readyBackends, conflict: !!conflict, ...(lost ? { lost } : {}) }, 'status updated');
    return requeue;
  }

  /** What changed, for `kubectl describe`: backends joining, draining, leaving; conflicts. */
  private recordEvents(vip: LoadBalancerVip, prev: LoadBalancerVipStatus | undefined, next: LoadBalancerVipStatus): void {
    const events = this.opts.events;
    if (!events) return;
    const diff = backendChanges(prev?.backends ?? [], next.backends ?? []);
    if (diff) events.record(vip, 'Normal', 'BackendsChanged', diff);
    const was = prev?.conditions?.find((c) => c.type === 'Conflict');
    const now = next.conditions?.find((c) => c.type === 'Conflict');
    if (now?.status === 'True' && was?.status !== 'True') events.record(vip, 'Warning', 'Conflict', `${now.message}: not programmed`);
    if (now?.status === 'False' && was?.status === 'True') events.record(vip, 'Normal', 'ConflictResolved', 'the address is free: programming');
  }
}

/** "added a (ip), b (ip); draining c; removed d", or '' when the set and their states are the same. */
export function backendChanges(prev: readonly BackendStatus[], next: readonly BackendStatus[]): string {
  const before = new Map(prev.map((b) => [b.pod, b]));
  const after = new Map(next.map((b) => [b.pod, b]));
  const added = next.filter((b) => !before.has(b.pod) && !b.draining).map((b) => `${b.pod} (${b.ip})`);
  const draining = next.filter((b) => b.draining && !before.get(b.pod)?.draining).map((b) => b.pod);
  const removed = prev.filter((b) => !after.has(b.pod)).map((b) => b.pod);
  const reweighted = next.filter((b) => !b.draining && before.has(b.pod) && !before.get(b.pod)!.draining && before.get(b.pod)!.weight !== b.weight)
    .map((b) => `${b.pod} ${before.get(b.pod)!.weight}->${b.weight}`);
  const back = next.filter((b) => !b.draining && before.get(b.pod)?.draining).map((b) => b.pod);
  return [
    added.length ? `added ${added.join(', ')}` : '',
    back.length ? `ready again ${back.join(', ')}` : '',
    reweighted.length ? `weight ${reweighted.join(', ')}` : '',
    draining.length ? `draining ${draining.join(', ')}` : '',
    removed.length ? `removed ${removed.join(', ')}` : '',
  ].filter(Boolean).join('; ');
}

/** Field by field: the API server returns a custom object's keys in its own (sorted) order. */
const backendKey = (b: BackendStatus) => [b.ip, b.weight, b.pod, b.node ?? '', !!b.draining, b.drainingSince ?? ''].join('|');
const sameBackends = (a: BackendStatus[] = [], b: BackendStatus[] = []) =>
  a.length === b.length && a.every((x, i) => backendKey(x) === backendKey(b[i]!));

function changed(prev: LoadBalancerVipStatus | undefined, next: LoadBalancerVipStatus): boolean {
  return (
    prev?.observedGeneration !== next.observedGeneration ||
    prev?.ports !== next.ports ||
    prev?.readyBackends !== next.readyBackends ||
    prev?.unlistedBackends !== next.unlistedBackends ||
    prev?.programmedNodes !== next.programmedNodes ||
    !sameBackends(prev?.backends, next.backends) ||
    !conditionsEqual(prev?.conditions, next.conditions)
  );
}
