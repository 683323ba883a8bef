/**
 * The VIP controller's reconcile core: informers on LoadBalancerVips and
 * Pods, a de-duplicating work queue, and a status write only when what a user
 * can see changed. (Leader election, the agent DaemonSet and metrics come on
 * top of this.)
 */
import {
  ADD, CoreV1Api, CustomObjectsApi, DELETE, type Informer, type KubeConfig, makeInformer, type ObjectCache,
  PatchStrategy, setHeaderOptions, UPDATE, type V1Pod,
} from '@kubernetes/client-node';
import {
  type BackendStatus, GROUP, LBVIP_PLURAL, type LoadBalancerVip, type LoadBalancerVipStatus, VERSION,
} from '../api/loadbalancervip.js';
import { componentLog } from '../lib/log.js';
import { resolveBackends } from './backends.js';
import { computeConditions, conditionsEqual, programmedNodes } from './conditions.js';
import { findConflicts } from './conflicts.js';
import { matchesSelector } from './selector.js';

const log = componentLog('vip-controller');

export interface VipControllerOptions {
  drainSeconds: number;
}

const keyOf = (ns: string | undefined, name: string | undefined) => `${ns}/${name}`;

export class VipController {
  private readonly custom: CustomObjectsApi;
  private readonly vips: Informer<LoadBalancerVip> & ObjectCache<LoadBalancerVip>;
  private readonly pods: Informer<V1Pod> & ObjectCache<V1Pod>;
  private readonly queue = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private wake: (() => void) | null = null;
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  reconciles = 0;
  statusWrites = 0;

  constructor(kc: KubeConfig, private readonly opts: VipControllerOptions) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    const vipPath = `/apis/${GROUP}/${VERSION}/${LBVIP_PLURAL}`;
    this.vips = makeInformer(kc, vipPath, () =>
      this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL }));
    this.pods = makeInformer(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());
    for (const ev of [ADD, UPDATE, DELETE] as const) {
      this.vips.on(ev, (v) => this.onVip(v));
      this.pods.on(ev, (p) => this.onPod(p));
    }
    for (const inf of [this.vips, this.pods]) {
      inf.on('error', (err: unknown) => {
        if (!this.running) return; // stop() aborts the watches
        log.warn({ err: String(err) }, 'watch failed; restarting');
        setTimeout(() => {
          if (this.running) void inf.start().catch(() => undefined);
        }, 1000);
      });
    }
  }

  async start(): Promise<void> {
    this.running = true;
    await Promise.all([this.vips.start(), this.pods.start()]);
    for (const v of this.vips.list()) this.enqueue(keyOf(v.metadata.namespace, v.metadata.name));
    this.loop = this.work();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    this.wake = null;
    for (const t of this.timers.values()) clearTimeout(t);
    await Promise.all([this.vips.stop(), this.pods.stop()]);
    await this.loop;
  }

  private enqueue(key: string): void {
    this.queue.add(key);
    this.wake?.();
  }

  /** A VIP change can change who wins a contested address: its rivals are looked at too. */
  private onVip(v: LoadBalancerVip): void {
    this.enqueue(keyOf(v.metadata.namespace, v.metadata.name));
    for (const other of this.vips.list()) {
      if (other.spec.address === v.spec.address) this.enqueue(keyOf(other.metadata.namespace, other.metadata.name));
    }
  }

  /** Only the VIPs that select the pod now, or list it already. */
  private onPod(p: V1Pod): void {
    for (const v of this.vips.list(p.metadata?.namespace)) {
      const lists = (v.status?.backends ?? []).some((b) => b.pod === p.metadata?.name);
      if (lists || matchesSelector(v.spec.backendSelector, p.metadata?.labels)) this.enqueue(keyOf(v.metadata.namespace, v.metadata.name));
    }
  }

  private async work(): Promise<void> {
    while (this.running) {
      if (this.queue.size === 0) {
        await new Promise<void>((r) => (this.wake = r));
        this.wake = null;
        continue;
      }
      const [key] = this.queue;
      this.queue.delete(key!);
      try {
        await this.reconcile(key!);
      } catch (err) {
        log.error({ vip: key, err: String(err) }, 'reconcile failed; retrying');
        this.later(key!, 1);
      }
    }
  }

  private later(key: string, seconds: number): void {
    clearTimeout(this.timers.get(key));
    this.timers.set(key, setTimeout(() => {
      this.timers.delete(key);
      this.enqueue(key);
    }, seconds * 1000));
  }

  async reconcile(key: string): Promise<void> {
    this.reconciles++;
    const [ns, name] = key.split('/') as [string, string];
    const vip = this.vips.get(name, ns);
    if (!vip) return; // deleted: agents drop it from their maps
    const now = new Date();
    const res = resolveBackends(vip, this.pods.list(ns), now, this.opts.drainSeconds);
    const conflict = findConflicts(this.vips.list()).get(key);
    const nodes = vip.status?.nodes ?? [];
    // Until the agent DaemonSet is owned here, the agents that reported are the nodes expected.
    const desiredNodes = Math.max(1, nodes.length);
    const withBackends = { ...vip, status: { ...vip.status, backends: res.backends } };
    const conditions = computeConditions({
      vip: withBackends,
      activeBackends: res.backends.filter((b) => !b.draining).length,
      drainingBackends: res.backends.filter((b) => b.draining).length,
      conflict,
      desiredNodes,
      now,
    });
    const programmed = programmedNodes(vip).length;
    const status: LoadBalancerVipStatus = {
      observedGeneration: vip.metadata.generation,
      readyBackends: res.backends.filter((b) => !b.draining).length,
      programmedNodes: `${programmed}/${desiredNodes}`,
      backends: res.backends,
      conditions,
    };
    if (res.requeueAfterSeconds !== undefined) this.later(key, res.requeueAfterSeconds);
    if (!changed(vip.status, status)) return;
    await this.custom.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: ns, name, body: { status } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    this.statusWrites++;
    log.info({ vip: key, backends: status.readyBackends, conflict: !!conflict }, 'status updated');
  }
}

/** Field by field: the API server returns a custom object's keys in its own (sorted) order. */
const backendKey = (b: BackendStatus) => [b.ip, b.weight, b.pod, b.node ?? '', !!b.draining, b.drainingSince ?? ''].join('|');
const sameBackends = (a: BackendStatus[] = [], b: BackendStatus[] = []) =>
  a.length === b.length && a.every((x, i) => backendKey(x) === backendKey(b[i]!));

function changed(prev: LoadBalancerVipStatus | undefined, next: LoadBalancerVipStatus): boolean {
  return (
    prev?.observedGeneration !== next.observedGeneration ||
    prev?.readyBackends !== next.readyBackends ||
    prev?.programmedNodes !== next.programmedNodes ||
    !sameBackends(prev?.backends, next.backends) ||
    !conditionsEqual(prev?.conditions, next.conditions)
  );
}
