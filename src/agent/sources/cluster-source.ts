/**
 * The agent's cluster mode: watches the LoadBalancerVips of its balancer (not
 * Pods: the controller resolved backends into their status), programs them as
 * a diff, and writes what it programmed into this node's XdpNodeReport (one
 * object, by server-side apply under the node's own field manager), never
 * into the VIPs: agents never conflict with each other or with the controller,
 * and never receive each other's reports.
 *
 * A watch that fails or expires (410 Gone) is relisted into the same cache;
 * only what changed reaches the dataplane, so the maps are never rebuilt.
 */
import { CoreV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions, type V1OwnerReference } from '@kubernetes/client-node';
import { GROUP, LBVIP_PLURAL, type LoadBalancerVip, VERSION } from '../../api/loadbalancervip.js';
import { nodeReportName, type ReportedVip, type XdpNodeReport, XNR_KIND, XNR_PLURAL } from '../../api/xdpnodereport.js';
import { errorFields, isNotFound } from '../../lib/api-error.js';
import { componentLog } from '../../lib/log.js';
import { memoByObject } from '../../lib/memo-by-object.js';
import { trimManagedFields, WatchedCache } from '../../lib/watched-cache.js';
import { WorkQueue } from '../../lib/work-queue.js';
import type { VipSpec } from '../dataplane/desired-state.js';
import { realsOf } from '../../api/programmed-reals.js';
import { AgentViews } from './agent-view.js';
import { planVips, type ProgramPlan, vipRef } from './cluster-vips.js';
import { BALANCER_GET_TIMEOUT_MS, deadline } from './uninstall.js';
import type { Programmer, VipSource } from './source.js';

const log = componentLog('cluster-source');

/** Events arrive in bursts (a controller status write per VIP): program once per burst. */
const SETTLE_MS = 20;
/** The queue's one key: every event asks for the same thing, a sync of the whole balancer. */
const SYNC = 'sync';
/** Syncs never overlap: each one programs the whole list. */
const SYNC_WORKERS = 1;
/**
 * Every this often the report is written even if unchanged: one that was
 * deleted behind the agent's back (by hand, a restore, the CRD re-created)
 * comes back, and its node counts again.
 */
export const REPORT_REFRESH_MS = 5 * 60_000;
/** While this node's Node cannot be read, a sync looks again after this long. */
const OWNER_RETRY_MS = 30_000;
/** An error in a report is cut to this many characters: a report holds every VIP, and an object's size is bounded. */
export const REPORT_ERROR_MAX = 512;
/** VIPs per list page: bounds the largest response the agent parses at once. */
const LIST_PAGE_SIZE = 500;

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
  private readonly core: CoreV1Api;
  /**
   * The report's owner, this node's Node object: when the node is deleted
   * (scaled in, or lost without its agent saying goodbye), Kubernetes'
   * garbage collector deletes the report, so it stops counting for the VIPs.
   * Looked up with the first report and again with each refresh; while it
   * cannot be read, again with a sync at most every OWNER_RETRY_MS.
   */
  private owner: V1OwnerReference | undefined;
  private ownerLookedUp = false;
  private ownerTriedAt = -Infinity;
  private readonly cache: WatchedCache<LoadBalancerVip>;
  /** Syncs: coalesces bursts, retries a failed one with backoff. */
  private readonly queue: WorkQueue;
  private listed: Promise<void> = Promise.resolve();
  private programmer: Programmer | null = null;
  /** What initial() planned, reported by follow(). */
  private first: ProgramPlan | null = null;
  /** The report last written; null: none yet, so the first sync writes one. */
  private reported: ReportedVip[] | null = null;
  /** The uid of the owner the last report was written with. */
  private reportedOwner: string | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  /** What agents read of each VIP: the controller's summary writes (programmedNodes, Ready) cause no sync. */
  private readonly views = new AgentViews();
  syncs = 0;
  /** VIP updates that changed nothing an agent reads, so caused no sync. */
  unreadUpdates = 0;
  /** Report writes. */
  statusWrites = 0;

  constructor(kc: KubeConfig, private readonly opts: ClusterSourceOptions) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    const fieldSelector = `spec.balancer=${opts.balancer}`;
    this.queue = new WorkQueue('cluster-source', () => this.sync(), {}, SYNC_WORKERS);
    this.cache = new WatchedCache<LoadBalancerVip>(
      kc,
      `/apis/${GROUP}/${VERSION}/${LBVIP_PLURAL}`,
      (page) => this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, fieldSelector, ...page }),
      // The earliest pending sync covers later events, so a steady stream of them cannot starve it.
      (v, verb) => {
        if (this.views.changed(v, verb)) this.queue.addAfter(SYNC, SETTLE_MS);
        else this.unreadUpdates++;
      },
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
    // A failed write is retried by the sync below, which writes the report if it still differs.
    if (this.first) await this.report(this.first);
    this.queue.add(SYNC); // anything that changed since the plan was made
    this.queue.start();
    this.refreshTimer = setInterval(() => {
      this.reported = null;
      // A Node deleted and registered again has a new uid, and the old one would have the report collected.
      this.ownerLookedUp = false;
      this.queue.add(SYNC);
    }, REPORT_REFRESH_MS);
    this.refreshTimer.unref();
  }

  describe(): Record<string, unknown> {
    return { balancer: this.opts.balancer, node: this.opts.node, vips: this.first?.programmed.length ?? 0 };
  }

  async stop(): Promise<void> {
    clearInterval(this.refreshTimer);
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
    if (failedWrites) throw new Error('the node report write failed');
  }

  /**
   * Writes this node's report when it differs from the last one written: one
   * object whatever the number of VIPs. Returns how many writes failed (0 or 1).
   */
  private async report(plan: ProgramPlan): Promise<number> {
    const vips = reportedVips(plan);
    const owner = await this.nodeOwner();
    if (this.reported && sameReport(vips, this.reported) && owner?.uid === this.reportedOwner) return 0;
    try {
      await this.writeReport(vips, owner);
      this.reported = vips;
      this.reportedOwner = owner?.uid;
      return 0;
    } catch (err) {
      log.warn({ report: nodeReportName(this.opts.balancer, this.opts.node), ...errorFields(err) }, 'node report write failed; retrying');
      return 1;
    }
  }

  private async writeReport(vips: ReportedVip[], owner: V1OwnerReference | undefined): Promise<void> {
    await applyNodeReport(this.custom, this.opts.balancer, this.opts.node, vips, owner);
    this.statusWrites++;
  }

  /** This node's Node as an owner reference, or none while it cannot be read (the report is written without). */
  private async nodeOwner(): Promise<V1OwnerReference | undefined> {
    if (this.ownerLookedUp || performance.now() - this.ownerTriedAt < OWNER_RETRY_MS) return this.owner;
    this.ownerTriedAt = performance.now();
    const d = deadline(BALANCER_GET_TIMEOUT_MS);
    try {
      const node = await this.core.readNode({ name: this.opts.node }, d.options);
      this.owner = { apiVersion: 'v1', kind: 'Node', name: this.opts.node, uid: node.metadata!.uid! };
      this.ownerLookedUp = true;
    } catch (err) {
      // Known from before: keep it (a Node that is gone takes its report with it anyway).
      if (!this.owner) log.warn({ node: this.opts.node, ...errorFields(d.error(err)) },
        `cannot read this node's Node object: the report is written without its owner, so it outlives the node if the node is deleted; retried with a sync after ${OWNER_RETRY_MS / 1000} s, and at the refresh`);
      else this.ownerLookedUp = true;
    }
    return this.owner;
  }

  /**
   * The agent leaves the node for good (uninstall, or the node left the
   * balancer): its report goes too. Bounded like the other requests of the
   * way out (the API may be why it leaves): the grace period is for detaching.
   */
  async withdrawReport(): Promise<void> {
    const name = nodeReportName(this.opts.balancer, this.opts.node);
    const d = deadline(BALANCER_GET_TIMEOUT_MS);
    try {
      await this.custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: XNR_PLURAL, name }, d.options);
    } catch (err) {
      if (isNotFound(err)) return;
      log.warn({ report: name, ...errorFields(d.error(err)) }, `cannot delete this node's report; remove it by hand: kubectl delete ${XNR_PLURAL} ${name}`);
    }
  }
}

/** Writes a node's whole report by server-side apply: it creates it or replaces what this node's field manager wrote, one request either way. */
export async function applyNodeReport(custom: CustomObjectsApi, balancer: string, node: string, vips: ReportedVip[], owner?: V1OwnerReference): Promise<void> {
  const body: XdpNodeReport = {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: XNR_KIND,
    metadata: { name: nodeReportName(balancer, node), ...(owner ? { ownerReferences: [owner] } : {}) },
    balancer,
    node,
    vips,
  };
  await custom.patchClusterCustomObject(
    { group: GROUP, version: VERSION, plural: XNR_PLURAL, name: body.metadata.name!, body, fieldManager: agentFieldManager(node), force: true },
    setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
  );
}

const idOf = (v: LoadBalancerVip) => ({ namespace: v.metadata.namespace!, name: v.metadata.name!, uid: v.metadata.uid ?? '' });

/**
 * A programmed VIP's entry, by the VIP object (the watch cache keeps an
 * unchanged VIP's object): a sync does not count every VIP's reals again.
 */
const programmedEntry = memoByObject((v: LoadBalancerVip): ReportedVip => ({
  ...idOf(v),
  ...(v.metadata.generation === undefined ? {} : { generation: v.metadata.generation }),
  ...(v.status?.backendsRevision === undefined ? {} : { backendsRevision: v.status.backendsRevision }),
  reals: realsOf(v).length,
}));

/** Namespace and name are DNS names (ASCII), so code-unit order is their order, and cheaper than localeCompare. */
const byVip = (a: ReportedVip, b: ReportedVip) =>
  a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

/** What this node holds of each VIP: programmed at the generation and backends revision of the very object it applied, or refused. */
export function reportedVips(plan: Pick<ProgramPlan, 'programmed' | 'refused'>): ReportedVip[] {
  const vips: ReportedVip[] = [
    ...plan.programmed.map(programmedEntry),
    ...[...plan.refused].map(([v, error]) => ({ ...idOf(v), error: error.length > REPORT_ERROR_MAX ? `${error.slice(0, REPORT_ERROR_MAX - 1)}…` : error })),
  ];
  return vips.sort(byVip);
}

const ENTRY_FIELDS = ['namespace', 'name', 'uid', 'generation', 'backendsRevision', 'reals', 'error'] as const satisfies readonly (keyof ReportedVip)[];
/** A field added to ReportedVip and not to ENTRY_FIELDS fails the build here, so sameReport cannot miss it. */
const ENTRY_FIELDS_COMPLETE: [Exclude<keyof ReportedVip, (typeof ENTRY_FIELDS)[number]>] extends [never] ? true : never = true;
void ENTRY_FIELDS_COMPLETE;

/** Equal reports: unchanged VIPs' entries are the same objects, so this costs a pointer compare each. */
export function sameReport(a: readonly ReportedVip[], b: readonly ReportedVip[]): boolean {
  return a.length === b.length && a.every((e, i) => e === b[i] || ENTRY_FIELDS.every((f) => e[f] === b[i]![f]));
}
