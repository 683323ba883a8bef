/**
 * LoadBalancerVips: resolves each VIP's backends from the Pods it selects,
 * settles address conflicts, and writes status (backends, conditions,
 * summaries) only when something a user can see changed. Agents turn that
 * status into maps; this controller never touches BPF.
 *
 * Every event queues exactly the VIPs it may change; a periodic resync
 * queues them all anyway, as a safety net against a missed case.
 */
import { QUIC_MAX_SERVER_ID, QUIC_MIN_SERVER_ID } from '../bpf/consts.js';
import {
  CoreV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions, type V1Pod,
} from '@kubernetes/client-node';
import {
  AddressReason, type BackendStatus, ConditionType, DEFAULT_BALANCER, GROUP, type L2Status, LBVIP_PLURAL, type LoadBalancerVip, type LoadBalancerVipStatus, SpecReason,
  VERSION, vipAddress,
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
import { MultiMap } from './indexes.js';
import { AddressAdmission } from './pools/address-admission.js';
import { UsedAddresses } from './pools/assignment.js';
import { AgentLeases } from './l2/agent-leases.js';
import { PoolStatusWriter } from './pools/pool-status.js';
import { decideAddress } from './pools/vip-address.js';
import { matchesSelector } from './selector.js';
import { type EndpointSlices, serviceKey } from './services/endpoint-slices.js';
import { type Requeue, WorkQueue } from '../lib/work-queue.js';
import { vipStatus } from './vip-status.js';
import { healthEvents } from './backend-health.js';
import { NodeReports } from './node-reports.js';
import { type NodeStatus, type XdpNodeReport, XNR_PLURAL } from '../api/xdpnodereport.js';

const log = componentLog('vip-controller');

export interface VipControllerOptions {
  balancers: BalancerView;
  /** The EndpointSlices of VIPs with spec.backendService. */
  endpointSlices: EndpointSlices;
  /** Told of every VIP change after the controller's own bookkeeping (the Service controller follows its VIPs). */
  onVipChange?(vip: LoadBalancerVip): void;
  events?: EventRecorder;
  metrics?: ControllerMetrics;
  /** Every this often, every VIP is reconciled again (and the claim index rebuilt from the cache). */
  resyncSeconds?: number;
  /** Entries a VIP's status.backends may hold; the CRD's limit unless a test says fewer. */
  maxListedBackends?: number;
  /** The agents' namespace: where, in L2 mode, they hold the Leases that say they are alive. */
  agentNamespace?: string;
}

export const DEFAULT_RESYNC_SECONDS = 300;
const MS_PER_SECOND = 1000;

/** Objects per list page: bounds the largest response the controller parses at once. */
const LIST_PAGE_SIZE = 500;
/**
 * While a VIP is still being programmed, a status write that says only "one
 * more node done" waits this long after the VIP's last write. Every VIP write
 * goes to every agent (they watch the VIPs), so as N nodes report one by one
 * (a cold start, a rollout) writing each step would cost N writes per VIP and
 * N x N watch events. The write that completes it (Programmed True), an error
 * and every other change go at once.
 */
export const PROGRESS_WRITE_INTERVAL_MS = 5000;

const keyOf = (ns: string | undefined, name: string | undefined) => `${ns}/${name}`;
const balancerOf = (v: LoadBalancerVip) => v.spec.balancer ?? DEFAULT_BALANCER;

export class VipController {
  private readonly custom: CustomObjectsApi;
  private readonly vips: WatchedCache<LoadBalancerVip>;
  private readonly pods: WatchedCache<V1Pod>;
  /** The agents' reports; their VIP entries live in `nodeReports`, not in this cache. */
  private readonly reports: WatchedCache<XdpNodeReport>;
  private readonly nodeReports = new NodeReports();
  private readonly queue: WorkQueue;
  private readonly podIndex = new PodIndex();
  private readonly vipIndex = new VipIndex();
  private claims: ClaimIndex;
  /** Pools, namespaces and never-allowed addresses: whether a VIP may have its address. */
  readonly admission: AddressAdmission;
  private readonly poolStatus: PoolStatusWriter;
  /** L2 mode: which agents are alive. */
  private readonly agentLeases: AgentLeases | null;
  /** L2 mode: the node each VIP was last given, by key, ahead of the cache (see electL2Node). */
  private readonly l2Named = new Map<string, L2Status>();
  /** Every VIP's address (spec or status), so none is assigned twice; released when the VIP goes. */
  readonly used = new UsedAddresses();
  /** The address each VIP key holds in `used`. */
  private readonly addressOf = new Map<string, string>();
  /** Assigned, but the status carrying it not seen back yet: a retried write keeps the same address. */
  private readonly pending = new Map<string, string>();
  /** VIP keys by the Service ("namespace/name") whose endpoints are their backends. */
  private readonly byService = new MultiMap<string>();
  private readonly serviceOfVip = new Map<string, string>();
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly badWeights = new BadWeightReports();
  private readonly badQuicServerIds = new BadWeightReports();
  /** When each VIP's status was last written (PROGRESS_WRITE_INTERVAL_MS). */
  private readonly lastWrite = new Map<string, number>();
  reconciles = 0;
  statusWrites = 0;
  resyncs = 0;

  constructor(kc: KubeConfig, private readonly opts: VipControllerOptions) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.claims = new ClaimIndex(this.sharesNodes, this.mayClaim);
    this.admission = new AddressAdmission(kc, {
      poolsChanged: () => {
        this.queueAll();
        this.poolStatus.allChanged();
      },
      poolWritten: () => this.poolStatus.allChanged(),
      namespaceChanged: (ns) => {
        for (const v of this.vips.list(ns)) this.queue.add(keyOf(ns, v.metadata.name));
      },
      forbiddenChanged: () => this.queueAll(),
    });
    this.poolStatus = new PoolStatusWriter(kc, this.admission, this.used, opts.metrics);
    this.agentLeases = opts.agentNamespace === undefined ? null
      : new AgentLeases(kc, opts.agentNamespace, { aliveChanged: (balancer) => this.queueBalancer(balancer) });
    opts.endpointSlices.onChange((service) => {
      for (const key of this.byService.get(service)) this.queue.add(key);
    });
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
    this.reports = new WatchedCache<XdpNodeReport>(
      kc,
      `/apis/${GROUP}/${VERSION}/${XNR_PLURAL}`,
      (page) => this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: XNR_PLURAL, ...page }),
      (r, verb) => this.onReport(r, verb === 'delete'),
      { trim: trimManagedFields, pageSize: LIST_PAGE_SIZE },
    );
    this.queue = new WorkQueue('loadbalancervip', (key) => this.reconcile(key), opts.metrics?.queueHooks('LoadBalancerVip', () => this.queue.depth));
  }

  async start(): Promise<void> {
    // Admission first: a VIP reconciled before the pools are known would be refused.
    await this.admission.start();
    await Promise.all([this.vips.start(), this.pods.start(), this.reports.start(), this.agentLeases?.start()]);
    this.queueAll();
    this.queue.start();
    this.poolStatus.start();
    const every = (this.opts.resyncSeconds ?? DEFAULT_RESYNC_SECONDS) * MS_PER_SECOND;
    this.resyncTimer = setInterval(() => this.resync(), every);
  }

  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    await this.queue.stop();
    await this.poolStatus.stop();
    await Promise.all([this.vips.stop(), this.pods.stop(), this.reports.stop(), this.admission.stop(), this.agentLeases?.stop()]);
  }

  private queueAll(): void {
    for (const v of this.vips.list()) this.queue.add(keyOf(v.metadata.namespace, v.metadata.name));
  }

  private queueBalancer(balancer: string): void {
    for (const v of this.vips.list()) if (balancerOf(v) === balancer) this.queue.add(keyOf(v.metadata.namespace, v.metadata.name));
  }

  /** A VIP whose address is not allowed holds no claim (it is programmed nowhere). */
  private readonly mayClaim = (v: LoadBalancerVip): boolean => {
    const address = vipAddress(v);
    return address !== undefined && this.admission.check(address, v.metadata.namespace ?? '', balancerOf(v)).ok;
  };

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
    this.claims = ClaimIndex.of(vips, this.sharesNodes, this.mayClaim);
    for (const v of vips) this.queue.add(keyOf(v.metadata.namespace, v.metadata.name));
    this.resyncs++;
    this.opts.metrics?.resyncs.inc();
    log.debug({ vips: vips.length }, 'resync: every VIP queued');
  }

  /** A VIP change can change who wins a contested address: the VIPs sharing a claim it had or has are looked at too. */
  private onVip(v: LoadBalancerVip, deleted: boolean): void {
    const key = keyOf(v.metadata.namespace, v.metadata.name);
    this.vipIndex.update(v, deleted);
    this.trackAddress(key, deleted ? undefined : v);
    this.trackService(key, deleted ? undefined : v);
    const rivals = this.claims.update(v, deleted);
    this.queue.add(key);
    for (const rival of rivals) this.queue.add(rival);
    this.opts.onVipChange?.(v);
  }

  vip(namespace: string, name: string): LoadBalancerVip | undefined {
    return this.vips.get(name, namespace);
  }

  allVips(): readonly LoadBalancerVip[] {
    return this.vips.list();
  }

  /**
   * Keeps `used` equal to the VIPs' addresses (a deleted VIP's is released)
   * and the pools' counts following. A VIP whose assigned address is pending
   * keeps it through events that do not carry it yet.
   */
  private trackAddress(key: string, v: LoadBalancerVip | undefined): void {
    let address: string | undefined;
    if (v === undefined) this.pending.delete(key);
    else {
      address = vipAddress(v);
      if (address !== undefined) this.pending.delete(key);
      else address = this.pending.get(key);
    }
    this.hold(key, address);
  }

  private hold(key: string, address: string | undefined): void {
    const had = this.addressOf.get(key);
    if (had === address) return;
    if (had !== undefined) this.used.remove(had, key);
    if (address === undefined) this.addressOf.delete(key);
    else {
      this.used.add(address, key);
      this.addressOf.set(key, address);
    }
    this.poolStatus.addressesChanged();
  }

  private trackService(key: string, v: LoadBalancerVip | undefined): void {
    const had = this.serviceOfVip.get(key);
    const now = v?.spec.backendService === undefined ? undefined : serviceKey(v.metadata.namespace, v.spec.backendService);
    if (had === now) return;
    if (had !== undefined) this.byService.delete(had, key);
    if (now === undefined) this.serviceOfVip.delete(key);
    else {
      this.byService.add(now, key);
      this.serviceOfVip.set(key, now);
    }
  }

  /** What the balancer's nodes hold of the VIP: their reports (node-reports.ts). */
  private nodesOf(key: string, vip: LoadBalancerVip): NodeStatus[] {
    return this.nodeReports.nodesOf(key, vip.metadata.uid, balancerOf(vip), vip.status?.nodes);
  }

  /** Only the VIPs whose entry in the report changed. */
  private onReport(r: XdpNodeReport, deleted: boolean): void {
    for (const key of this.nodeReports.update(r, deleted)) this.queue.add(key);
    // The index holds the entries: the cache keeps the rest (its resourceVersion is what a relist compares).
    r.vips = [];
  }

  /** Only the VIPs that select the pod now, or list it already. */
  private onPod(p: V1Pod, deleted: boolean): void {
    this.podIndex.update(p, deleted);
    for (const key of this.vipIndex.candidates(p)) {
      const [ns, name] = key.split('/') as [string, string];
      const v = this.vips.get(name, ns);
      if (!v) continue;
      const lists = (v.status?.backends ?? []).some((b) => b.pod === p.metadata?.name);
      if (lists || (v.spec.backendSelector !== undefined && matchesSelector(v.spec.backendSelector, p.metadata?.labels))) this.queue.add(key);
    }
  }

  /** Writes the VIP's status; asks to be reconciled again when a draining backend's time runs out. */
  async reconcile(key: string): Promise<Requeue> {
    this.reconciles++;
    const [ns, name] = key.split('/') as [string, string];
    const vip = this.vips.get(name, ns);
    if (!vip) {
      // Deleted: agents drop it from their maps.
      this.l2Named.delete(key);
      this.lastWrite.delete(key);
      for (const state of ['desired', 'programmed']) this.opts.metrics?.vipNodes.remove({ vip: key, state });
      this.badWeights.forget(key);
      this.badQuicServerIds.forget(key);
      return;
    }
    const address = decideAddress(vip, this.admission, this.used, this.pending.get(key));
    if (address.assigned && address.address !== undefined) {
      // Held at once, before the write: no other VIP may be given it meanwhile.
      this.pending.set(key, address.address);
      this.hold(key, address.address);
    }
    const conflict = this.claims.conflictOf(key);
    const service = vip.spec.backendService;
    const next = vipStatus({
      vip, nodes: this.nodesOf(key, vip), address, conflict, balancers: this.opts.balancers, now: new Date(), maxBackends: this.opts.maxListedBackends,
      pods: service === undefined ? this.podIndex.candidates(ns, vip.spec.backendSelector ?? {}) : [],
      endpointSlices: service === undefined ? undefined : this.opts.endpointSlices.of(ns, service),
      podOf: (pod) => this.pods.get(pod, ns),
      l2Alive: this.agentLeases && this.opts.balancers.l2?.(balancerOf(vip)) ? this.agentLeases.alive(balancerOf(vip)) : undefined,
      l2Current: this.l2Named.get(key),
    });
    const { status, requeue } = next;
    this.opts.metrics?.vipNodes.set({ vip: key, state: 'desired' }, next.desiredNodes);
    this.opts.metrics?.vipNodes.set({ vip: key, state: 'programmed' }, next.programmedNodes);
    // Once per pod and value, whether or not the status changes: not again with every later change of the VIP.
    for (const bad of this.badWeights.fresh(key, next.badWeights)) {
      this.opts.events?.record(vip, 'Warning', 'BadWeight', `pod ${bad.pod}: weight annotation "${bad.value}" is not an integer in 0..${MAX_WEIGHT}; using the default weight`);
    }
    for (const bad of this.badQuicServerIds.fresh(key, next.badQuicServerIds)) {
      this.opts.events?.record(vip, 'Warning', 'BadQuicServerId', `pod ${bad.pod}: QUIC server id annotation "${bad.value}" routes nothing: ` +
        `give each pod its own integer in ${QUIC_MIN_SERVER_ID}..${QUIC_MAX_SERVER_ID}; until then its QUIC packets follow the ring`);
    }
    const rememberL2 = () => (status.l2 ? this.l2Named.set(key, status.l2) : this.l2Named.delete(key));
    if (!changed(vip.status, status)) {
      rememberL2();
      return requeue;
    }
    const sinceWrite = performance.now() - (this.lastWrite.get(key) ?? -Infinity);
    if (sinceWrite < PROGRESS_WRITE_INTERVAL_MS && onlyProgress(vip.status, status)) {
      rememberL2();
      return earliest(requeue, { requeueAfterMs: PROGRESS_WRITE_INTERVAL_MS - sinceWrite });
    }
    const written = await this.custom.patchNamespacedCustomObjectStatus(
      // A merge patch keeps fields it does not name: null removes a pool no longer allowed.
      { group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: ns, name, body: { status: { addressPool: null, l2: null, addressing: null, ...status } }, fieldManager: CONTROLLER_FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    ).then(() => true, goneOrThrow);
    if (!written) return;
    this.lastWrite.set(key, performance.now()); // monotonic: a clock step cannot hold a write back
    rememberL2();
    this.statusWrites++;
    this.opts.metrics?.statusWrites.inc({ kind: 'LoadBalancerVip' });
    this.recordEvents(vip, vip.status, status);
    // The whole story, other namespaces' holders included, is for the operator's log only.
    const lost = conflict?.lost.map((l) => `${l.claim} held by ${l.heldBy}${l.balancer ? ` (XdpBalancer ${l.balancer})` : ''}`);
    log.info({
      vip: key, address: status.address, allowed: address.allowed, backends: status.readyBackends, conflict: !!conflict, ...(lost ? { lost } : {}),
    }, 'status updated');
    return requeue;
  }

  /** What changed, for `kubectl describe`: backends joining, draining, leaving; conflicts. */
  private recordEvents(vip: LoadBalancerVip, prev: LoadBalancerVipStatus | undefined, next: LoadBalancerVipStatus): void {
    const events = this.opts.events;
    if (!events) return;
    const diff = backendChanges(prev?.backends ?? [], next.backends ?? []);
    if (diff) events.record(vip, 'Normal', 'BackendsChanged', diff);
    for (const [type, reason, message] of healthEvents(prev?.backends, next.backends ?? [])) events.record(vip, type, reason, message);
    const was = prev?.conditions?.find((c) => c.type === 'Conflict');
    const now = next.conditions?.find((c) => c.type === 'Conflict');
    if (now?.status === 'True' && was?.status !== 'True') events.record(vip, 'Warning', 'Conflict', `${now.message}: not programmed`);
    if (now?.status === 'False' && was?.status === 'True') events.record(vip, 'Normal', 'ConflictResolved', 'the address is free: programming');
    const wasAllowed = prev?.conditions?.find((c) => c.type === ConditionType.AddressAllowed);
    const allowed = next.conditions?.find((c) => c.type === ConditionType.AddressAllowed);
    if (allowed?.status === 'False' && (wasAllowed?.status !== 'False' || wasAllowed.reason !== allowed.reason)) {
      events.record(vip, 'Warning', 'AddressNotAllowed', `${allowed.message}: programmed on no node`);
    }
    if (allowed?.status === 'True' && wasAllowed?.status === 'False') events.record(vip, 'Normal', 'AddressAllowed', allowed.message);
    if (allowed?.reason === AddressReason.Assigned && next.address !== prev?.address) events.record(vip, 'Normal', 'AddressAssigned', allowed.message);
    const wasProgrammed = prev?.conditions?.find((c) => c.type === ConditionType.Programmed);
    const programmed = next.conditions?.find((c) => c.type === ConditionType.Programmed);
    if (programmed?.reason === SpecReason.TargetPortNeedsNodeDelivery && wasProgrammed?.reason !== programmed.reason) {
      events.record(vip, 'Warning', programmed.reason, programmed.message);
    }
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

/** The sooner of two requeue wishes. */
function earliest(a: Requeue, b: Requeue): Requeue {
  if (!a) return b;
  if (!b) return a;
  return a.requeueAfterMs <= b.requeueAfterMs ? a : b;
}

/**
 * Whether the only news is programming progress: more (or fewer) nodes hold
 * the VIP, and it is still pending on both sides (Programmed False, reason
 * Pending). Anything else, and the step to complete, is news to write now.
 */
export function onlyProgress(prev: LoadBalancerVipStatus | undefined, next: LoadBalancerVipStatus): boolean {
  if (!prev) return false;
  const pending = (s: LoadBalancerVipStatus) => {
    const c = s.conditions?.find((x) => x.type === ConditionType.Programmed);
    return c?.status === 'False' && c.reason === 'Pending';
  };
  if (!pending(prev) || !pending(next)) return false;
  const progressFree = (s: LoadBalancerVipStatus): LoadBalancerVipStatus => ({
    ...s,
    programmedNodes: undefined,
    conditions: s.conditions?.filter((c) => c.type !== ConditionType.Programmed && c.type !== ConditionType.Ready),
  });
  const readyOf = (s: LoadBalancerVipStatus) => s.conditions?.find((c) => c.type === ConditionType.Ready)?.status;
  return readyOf(prev) === readyOf(next) && !changed(progressFree(prev), progressFree(next));
}

/** Field by field: the API server returns a custom object's keys in its own (sorted) order. */
const backendKey = (b: BackendStatus) => [b.ip, b.weight, b.pod, b.node ?? '', b.nodeIP ?? '', !!b.draining, b.drainingSince ?? '',
  b.healthy ?? true, b.unhealthySince ?? '', b.unhealthyReason ?? ''].join('|');
const sameBackends = (a: BackendStatus[] = [], b: BackendStatus[] = []) =>
  a.length === b.length && a.every((x, i) => backendKey(x) === backendKey(b[i]!));

/** The API server returns an object's keys sorted: compare in that order. */
const sortedKeys = (o: object | undefined) => (o ? Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b))) : null);

function changed(prev: LoadBalancerVipStatus | undefined, next: LoadBalancerVipStatus): boolean {
  return (
    prev?.observedGeneration !== next.observedGeneration ||
    prev?.address !== next.address ||
    prev?.addressPool !== next.addressPool ||
    prev?.ports !== next.ports ||
    prev?.readyBackends !== next.readyBackends ||
    prev?.unlistedBackends !== next.unlistedBackends ||
    prev?.programmedNodes !== next.programmedNodes ||
    prev?.l2?.node !== next.l2?.node ||
    prev?.addressing !== next.addressing ||
    prev?.backendsRevision !== next.backendsRevision ||
    !sameBackends(prev?.backends, next.backends) ||
    JSON.stringify(sortedKeys(prev?.healthCheck)) !== JSON.stringify(sortedKeys(next.healthCheck)) ||
    !conditionsEqual(prev?.conditions, next.conditions)
  );
}
