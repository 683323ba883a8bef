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
import { componentLog } from '../../lib/log.js';
import { trimManagedFields, WatchedCache } from '../../lib/watched-cache.js';
import type { VipSpec } from '../dataplane/desired-state.js';
import { type DataplaneAccept, planVips, type ProgramPlan, vipRef } from './cluster-vips.js';

const log = componentLog('cluster-source');

/** Events arrive in bursts (a controller status write per VIP): program once per burst. */
const SETTLE_MS = 20;
const RETRY_MS = 2000;
/** VIPs per list page: bounds the largest response the agent parses at once. */
const LIST_PAGE_SIZE = 500;
/** Status writes in flight at once (a cold start reports every VIP). */
const WRITE_CONCURRENCY = 16;

export interface ClusterSourceOptions {
  balancer: string;
  node: string;
}

/** What the source drives: the agent. */
export interface Programmer {
  accept: DataplaneAccept;
  setVips(vips: VipSpec[]): Promise<void>;
}

export const agentFieldManager = (node: string) => `xdplb-agent-${node}`;

export class ClusterSource {
  private readonly custom: CustomObjectsApi;
  private readonly cache: WatchedCache<LoadBalancerVip>;
  private programmer: Programmer | null = null;
  private timer: NodeJS.Timeout | undefined;
  private dueAt = 0;
  private chain: Promise<void> = Promise.resolve();
  private running = false;
  syncs = 0;
  statusWrites = 0;

  constructor(kc: KubeConfig, private readonly opts: ClusterSourceOptions) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    const fieldSelector = `spec.balancer=${opts.balancer}`;
    this.cache = new WatchedCache<LoadBalancerVip>(
      kc,
      `/apis/${GROUP}/${VERSION}/${LBVIP_PLURAL}`,
      (page) => this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, fieldSelector, ...page }),
      () => this.schedule(SETTLE_MS),
      { fieldSelector, trim: trimManagedFields, pageSize: LIST_PAGE_SIZE },
    );
  }

  /** Resolves once the VIPs are listed. */
  async start(): Promise<void> {
    this.running = true;
    await this.cache.start();
  }

  /** What to program now. */
  plan(accept: DataplaneAccept): ProgramPlan {
    return planVips(this.opts.balancer, this.cache.list(), accept);
  }

  /** From now on, changes are programmed into `programmer`; `applied` was programmed already and is reported. */
  async follow(programmer: Programmer, applied: ProgramPlan): Promise<void> {
    this.programmer = programmer;
    await this.report(applied);
    this.schedule(0); // anything that changed since the plan was made
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.cache.stop();
    await this.chain;
  }

  /** A sync at most delayMs from now; an earlier one already due covers it (a steady stream of events cannot starve it). */
  private schedule(delayMs: number): void {
    if (!this.running || !this.programmer) return;
    const due = Date.now() + delayMs;
    if (this.timer && this.dueAt <= due) return;
    clearTimeout(this.timer);
    this.dueAt = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.chain = this.chain.then(() => this.sync());
    }, delayMs);
  }

  private async sync(): Promise<void> {
    if (!this.running || !this.programmer) return;
    this.syncs++;
    const programmer = this.programmer;
    const plan = this.plan((vips, groups) => programmer.accept(vips, groups));
    try {
      await this.programmer.setVips(plan.specs);
    } catch (err) {
      // accept() took them, so this is the kernel refusing a write: keep the running state, report, retry.
      const message = `programming failed: ${(err as Error).message}`;
      for (const v of plan.programmed) plan.refused.set(v, message);
      plan.programmed = [];
      this.schedule(RETRY_MS);
    }
    for (const [v, why] of plan.refused) log.warn({ vip: vipRef(v), problem: why }, 'VIP not programmed on this node');
    await this.report(plan);
  }

  /** Writes this node's entry where it differs from what the VIP shows. */
  private async report(plan: ProgramPlan): Promise<void> {
    const node = this.opts.node;
    const wanted: [LoadBalancerVip, NodeStatus][] = [
      ...plan.programmed.map((v): [LoadBalancerVip, NodeStatus] => [v, { node, programmedGeneration: v.metadata.generation, reals: v.status?.backends?.length ?? 0 }]),
      ...[...plan.refused].map(([v, lastError]): [LoadBalancerVip, NodeStatus] => [v, { node, lastError }]),
      // Not programmed here; clear an entry that says otherwise.
      ...plan.conflicted.filter((v) => entryOf(v, node)).map((v): [LoadBalancerVip, NodeStatus] => [v, { node }]),
    ];
    const stale = wanted.filter(([v, e]) => !sameEntry(entryOf(v, node), e));
    let failed = false;
    for (let i = 0; i < stale.length; i += WRITE_CONCURRENCY) {
      await Promise.all(stale.slice(i, i + WRITE_CONCURRENCY).map(async ([v, e]) => {
        try {
          await this.writeEntry(v, e);
        } catch (err) {
          if (errorCode(err) === 404) return; // deleted meanwhile
          failed = true;
          log.warn({ vip: vipRef(v), err: String(err) }, 'status write failed; retrying');
        }
      }));
    }
    if (failed) this.schedule(RETRY_MS);
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

function sameEntry(a: NodeStatus | undefined, b: NodeStatus): boolean {
  return !!a && a.programmedGeneration === b.programmedGeneration && a.reals === b.reals && a.lastError === b.lastError;
}

function errorCode(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}
