/**
 * The agent's cluster mode: watches the LoadBalancerVips of its balancer (not
 * Pods: the controller resolved backends into their status), programs them as
 * a diff, and writes this node's entry of each VIP's status.nodes by
 * server-side apply under its own field manager, so agents never conflict
 * with each other or with the controller.
 *
 * A watch that fails or expires (410 Gone) is relisted into the same cache;
 * only what changed reaches the dataplane, so the maps are never rebuilt.
 */
import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import {
  GROUP, LBVIP_KIND, LBVIP_PLURAL, type LoadBalancerVip, type NodeStatus, VERSION,
} from '../../api/loadbalancervip.js';
import { errorFields, isNotFound } from '../../lib/api-error.js';
import { componentLog } from '../../lib/log.js';
import { trimManagedFields, WatchedCache } from '../../lib/watched-cache.js';
import { WorkQueue } from '../../lib/work-queue.js';
import type { VipSpec } from '../dataplane/desired-state.js';
import { realsOf } from '../../api/programmed-reals.js';
import { planVips, type ProgramPlan, vipRef } from './cluster-vips.js';
import type { Programmer, VipSource } from './source.js';

const log = componentLog('cluster-source');

/** Events arrive in bursts (a controller status write per VIP): program once per burst. */
const SETTLE_MS = 20;
/** The queue's one key: every event asks for the same thing, a sync of the whole balancer. */
const SYNC = 'sync';
/** Syncs never overlap: each one programs the whole list. */
const SYNC_WORKERS = 1;
/** VIPs per list page: bounds the largest response the agent parses at once. */
const LIST_PAGE_SIZE = 500;
/** Status writes in flight at once (a cold start reports every VIP). */
const WRITE_CONCURRENCY = 16;

export interface ClusterSourceOptions {
  balancer: string;
  node: string;
  /** The VIPs programmed on this node, after each sync (the health checks probe their backends). */
  onProgrammed?: (vips: LoadBalancerVip[]) => void;
}

export const agentFieldManager = (node: string) => `xdplb-agent-${node}`;

export class ClusterSource implements VipSource {
  readonly mode = 'cluster';
  private readonly custom: CustomObjectsApi;
  private readonly cache: WatchedCache<LoadBalancerVip>;
  /** Syncs: coalesces bursts, retries a failed one with backoff. */
  private readonly queue: WorkQueue;
  private listed: Promise<void> = Promise.resolve();
  private programmer: Programmer | null = null;
  /** What initial() planned, reported by follow(). */
  private first: ProgramPlan | null = null;
  syncs = 0;
  statusWrites = 0;

  constructor(kc: KubeConfig, private readonly opts: ClusterSourceOptions) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    const fieldSelector = `spec.balancer=${opts.balancer}`;
    this.queue = new WorkQueue('cluster-source', () => this.sync(), {}, SYNC_WORKERS);
    this.cache = new WatchedCache<LoadBalancerVip>(
      kc,
      `/apis/${GROUP}/${VERSION}/${LBVIP_PLURAL}`,
      (page) => this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, fieldSelector, ...page }),
      // The earliest pending sync covers later events, so a steady stream of them cannot starve it.
      () => this.queue.addAfter(SYNC, SETTLE_MS),
      { fieldSelector, trim: trimManagedFields, pageSize: LIST_PAGE_SIZE },
    );
  }

  /** Begins listing the VIPs (retried until it succeeds); initial() waits for it. */
  start(): Promise<void> {
    this.listed = this.cache.start();
    return Promise.resolve();
  }

  /** Waits for the first list, then plans what the dataplane accepts of it. */
  async initial(programmer: Programmer): Promise<VipSpec[]> {
    await this.listed;
    this.first = this.plan(programmer);
    return this.first.specs;
  }

  /** Reports the initial plan; from now on, changes are programmed into `programmer`. */
  async follow(programmer: Programmer): Promise<void> {
    this.programmer = programmer;
    if (this.first) this.opts.onProgrammed?.(this.first.programmed);
    // A failed write is retried by the sync below, which writes every entry that still differs.
    if (this.first) await this.report(this.first);
    this.queue.add(SYNC); // anything that changed since the plan was made
    this.queue.start();
  }

  describe(): Record<string, unknown> {
    return { balancer: this.opts.balancer, node: this.opts.node, vips: this.first?.programmed.length ?? 0 };
  }

  async stop(): Promise<void> {
    await this.cache.stop();
    await this.queue.stop();
  }

  /** What to program now: the one place the dataplane is asked what it accepts. */
  private plan(programmer: Programmer): ProgramPlan {
    return planVips(this.opts.balancer, this.cache.list(), (vips, groups) => programmer.accept(vips, groups));
  }

  /** Programs the balancer's VIPs and reports them; throws (the queue retries with backoff) when a write failed. */
  private async sync(): Promise<void> {
    const programmer = this.programmer!;
    this.syncs++;
    const plan = this.plan(programmer);
    let refusedByKernel: string | undefined;
    try {
      await programmer.setVips(plan.specs);
    } catch (err) {
      // accept() took them, so this is the kernel refusing a write: keep the running state, report, retry.
      refusedByKernel = `programming failed: ${(err as Error).message}`;
      for (const v of plan.programmed) plan.refused.set(v, refusedByKernel);
      plan.programmed = [];
    }
    // Only what is programmed here: the controller may name this node before the maps hold the VIP.
    programmer.setL2Addresses?.(plan.programmed.filter((v) => v.status?.l2?.node === this.opts.node && v.status.address).map((v) => v.status!.address!));
    for (const [v, why] of plan.refused) log.warn({ vip: vipRef(v), problem: why }, 'VIP not programmed on this node');
    this.opts.onProgrammed?.(plan.programmed);
    const failedWrites = await this.report(plan);
    if (refusedByKernel) throw new Error(refusedByKernel);
    if (failedWrites) throw new Error(`${failedWrites} status write(s) failed`);
  }

  /** Writes this node's entry where it differs from what the VIP shows; returns how many writes failed. */
  private async report(plan: ProgramPlan): Promise<number> {
    const node = this.opts.node;
    const wanted: [LoadBalancerVip, NodeStatus][] = [
      ...plan.programmed.map((v): [LoadBalancerVip, NodeStatus] => [v, programmedEntry(v, node)]),
      ...[...plan.refused].map(([v, lastError]): [LoadBalancerVip, NodeStatus] => [v, { node, lastError }]),
      // Not programmed here; clear an entry that says otherwise.
      ...plan.setAside.filter((v) => entryOf(v, node)).map((v): [LoadBalancerVip, NodeStatus] => [v, { node }]),
    ];
    const stale = wanted.filter(([v, e]) => !sameEntry(entryOf(v, node), e));
    let failed = 0;
    for (let i = 0; i < stale.length; i += WRITE_CONCURRENCY) {
      await Promise.all(stale.slice(i, i + WRITE_CONCURRENCY).map(async ([v, e]) => {
        try {
          await this.writeEntry(v, e);
        } catch (err) {
          if (isNotFound(err)) return; // deleted meanwhile
          failed++;
          log.warn({ vip: vipRef(v), ...errorFields(err) }, 'status write failed; retrying');
        }
      }));
    }
    return failed;
  }

  private async writeEntry(v: LoadBalancerVip, entry: NodeStatus): Promise<void> {
    const body = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: LBVIP_KIND,
      metadata: { name: v.metadata.name, namespace: v.metadata.namespace },
      status: { nodes: [entry] },
    };
    await this.custom.patchNamespacedCustomObjectStatus(
      {
        group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: v.metadata.namespace!, name: v.metadata.name!,
        body, fieldManager: agentFieldManager(this.opts.node), force: true,
      },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
    this.statusWrites++;
  }
}

const entryOf = (v: LoadBalancerVip, node: string) => v.status?.nodes?.find((n) => n.node === node);

/** What this node holds of a VIP it programmed: the generation and backends revision of the very object it applied. */
const programmedEntry = (v: LoadBalancerVip, node: string): NodeStatus => ({
  node,
  programmedGeneration: v.metadata.generation,
  ...(v.status?.backendsRevision === undefined ? {} : { programmedBackendsRevision: v.status.backendsRevision }),
  reals: realsOf(v).length,
});

function sameEntry(a: NodeStatus | undefined, b: NodeStatus): boolean {
  return !!a && a.programmedGeneration === b.programmedGeneration && a.programmedBackendsRevision === b.programmedBackendsRevision
    && a.reals === b.reals && a.lastError === b.lastError;
}
