/**
 * Whether a cluster-mode agent that is stopping will be replaced on this
 * node. A rolling update, a pod restart or a node drain must leave the program
 * attached and the maps pinned, so the next agent adopts them; when no agent
 * of this balancer will run here again, nothing may be left. Detach and unpin
 * when:
 * - the agent's XdpBalancer is gone (the CRD too) or being deleted (uninstall);
 * - its DaemonSet is gone or being deleted;
 * - this node no longer fits the DaemonSet's pod template (the nodeSelector
 *   changed, a node label or taint changed, or the controller keeps this
 *   balancer off the node for an older one): the DaemonSet controller deleted
 *   this pod and will not make another here.
 * Otherwise stay. When the API cannot answer, stay: traffic keeps flowing,
 * and the log names the command that removes it by hand.
 */
import {
  AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, Observable, type ObservableMiddleware, type V1DaemonSet, type V1Node,
} from '@kubernetes/client-node';
import { agentDaemonSetName } from '../../api/agent-pod.js';
import { GROUP, VERSION } from '../../api/loadbalancervip.js';
import { XDPB_PLURAL } from '../../api/xdpbalancer.js';
import { apiError, errorFields, isNotFound } from '../../lib/api-error.js';
import { daemonPodFits } from '../../lib/daemon-placement.js';
import { componentLog } from '../../lib/log.js';
import type { RemovalWatch } from './removal-watch.js';

const log = componentLog('uninstall');

/** Bounds the GET: the pod has terminationGracePeriodSeconds 30 for all of its shutdown. */
export const BALANCER_GET_TIMEOUT_MS = 3000;

/** What the GET of the balancer gave: the object, or the error it threw. */
export type BalancerGet = { object: BalancerObject } | { error: unknown };

/** The part of an XdpBalancer read here: a custom object comes back as plain JSON. */
export interface BalancerObject {
  metadata?: { deletionTimestamp?: unknown; [field: string]: unknown };
}

export interface ExitDecision {
  detach: boolean;
  level: 'info' | 'warn';
  message: string;
  /** Set when the API could not answer: what could not be read, and why. */
  unreadable?: string;
}

/** Where the agent is attached, for the hand-cleanup command. */
export interface Attachment {
  nic: string;
  pinDir: string;
}

/** Where the agent runs, to ask whether its DaemonSet still wants this node. */
export interface Placement {
  /** This node's name. */
  node: string;
  /** The namespace of the agent DaemonSets (the agent's own). */
  namespace: string;
}

/** What the GETs of the DaemonSet and the node gave. */
export interface PlacementGets {
  daemonSet: { object: V1DaemonSet } | { error: unknown };
  node: { object: V1Node } | { error: unknown };
}

const STAY_FOR_NEXT = (balancer: string) => ({ detach: false, level: 'info' as const, message: `XdpBalancer ${balancer} exists: staying attached for the next agent` });

/** The decision, from the GETs (placement: absent outside a pod, or when the balancer's GET decided already). */
export function decideOnExit(balancer: string, got: BalancerGet, at: Attachment, placement?: PlacementGets): ExitDecision {
  if ('object' in got) {
    if (got.object.metadata?.deletionTimestamp) {
      return { detach: true, level: 'info', message: `XdpBalancer ${balancer} is being deleted: detaching and unpinning` };
    }
    return placement ? decideByPlacement(balancer, placement, at) : STAY_FOR_NEXT(balancer);
  }
  if (isNotFound(got.error)) {
    return { detach: true, level: 'info', message: `XdpBalancer ${balancer} is gone: detaching and unpinning` };
  }
  const unreadable = `could not read XdpBalancer ${balancer} (${describeError(got.error)})`;
  return {
    detach: false,
    level: 'warn',
    unreadable,
    message: `${unreadable}: staying attached; if xdplb is being uninstalled, run on this node: xdplb-agent cleanup --nic ${at.nic} --pin-dir ${at.pinDir}`,
  };
}

/** The balancer exists: detach only if its DaemonSet is going or no longer wants this node. */
function decideByPlacement(balancer: string, p: PlacementGets, at: Attachment): ExitDecision {
  const ds = agentDaemonSetName(balancer);
  if ('error' in p.daemonSet) {
    if (isNotFound(p.daemonSet.error)) return { detach: true, level: 'info', message: `DaemonSet ${ds} is gone: detaching and unpinning` };
    return cannotTell(`DaemonSet ${ds}`, p.daemonSet.error, at);
  }
  if (p.daemonSet.object.metadata?.deletionTimestamp) return { detach: true, level: 'info', message: `DaemonSet ${ds} is being deleted: detaching and unpinning` };
  if ('error' in p.node) return cannotTell('this node', p.node.error, at);
  const spec = p.daemonSet.object.spec?.template.spec;
  const node = p.node.object.metadata?.name;
  if (spec && !daemonPodFits(spec, p.node.object)) {
    return {
      detach: true, level: 'info',
      message: `node ${node} no longer fits DaemonSet ${ds} (nodeSelector, node affinity or taints): no agent of XdpBalancer ${balancer} will run here; detaching and unpinning`,
    };
  }
  return STAY_FOR_NEXT(balancer);
}

function cannotTell(what: string, error: unknown, at: Attachment): ExitDecision {
  const unreadable = `could not read ${what} (${describeError(error)})`;
  return {
    detach: false,
    level: 'warn',
    unreadable,
    message: `${unreadable}: staying attached; if this node no longer runs this balancer, run on it: xdplb-agent cleanup --nic ${at.nic} --pin-dir ${at.pinDir}`,
  };
}

/** A request option that aborts after `timeoutMs`, and the signal to tell a timeout from other errors. */
export function deadline(timeoutMs: number) {
  const signal = AbortSignal.timeout(timeoutMs);
  const withTimeout: ObservableMiddleware = {
    pre: (ctx) => {
      ctx.setSignal(signal);
      return new Observable(Promise.resolve(ctx));
    },
    post: (res) => new Observable(Promise.resolve(res)),
  };
  const options = { middleware: [withTimeout], middlewareMergeStrategy: 'append' as const };
  const error = (err: unknown) => (signal.aborted ? new Error(`no answer within ${timeoutMs} ms`) : err);
  return { options, error };
}

/** GETs the balancer within `timeoutMs`; never throws. */
export async function getBalancer(kc: KubeConfig, balancer: string, timeoutMs = BALANCER_GET_TIMEOUT_MS): Promise<BalancerGet> {
  const d = deadline(timeoutMs);
  try {
    const object = await kc.makeApiClient(CustomObjectsApi).getClusterCustomObject({ group: GROUP, version: VERSION, plural: XDPB_PLURAL, name: balancer }, d.options);
    return { object: object as BalancerObject };
  } catch (error) {
    return { error: d.error(error) };
  }
}

/** GETs the balancer's DaemonSet and this node within `timeoutMs`, together; never throws. */
export async function getPlacement(kc: KubeConfig, balancer: string, where: Placement, timeoutMs = BALANCER_GET_TIMEOUT_MS): Promise<PlacementGets> {
  const d = deadline(timeoutMs);
  const [daemonSet, node] = await Promise.all([
    kc.makeApiClient(AppsV1Api).readNamespacedDaemonSet({ name: agentDaemonSetName(balancer), namespace: where.namespace }, d.options)
      .then((object) => ({ object }), (error: unknown) => ({ error: d.error(error) })),
    kc.makeApiClient(CoreV1Api).readNode({ name: where.node }, d.options)
      .then((object) => ({ object }), (error: unknown) => ({ error: d.error(error) })),
  ]);
  return { daemonSet, node };
}

/**
 * GETs the balancer (and, where the agent runs in a pod, its DaemonSet and
 * node) and decides. `removalSeen`: what the agent's watches saw of its
 * removal (removal-watch.ts); it decides when the GETs cannot.
 */
export async function exitDecision(kc: KubeConfig, balancer: string, at: Attachment, where?: Placement, timeoutMs?: number,
  removalSeen?: () => string | null): Promise<ExitDecision> {
  const [got, placement] = await Promise.all([
    getBalancer(kc, balancer, timeoutMs),
    where ? getPlacement(kc, balancer, where, timeoutMs) : Promise.resolve(undefined),
  ]);
  return withRemovalSeen(decideOnExit(balancer, got, at, placement), removalSeen?.() ?? null);
}

/**
 * Why no backend agent will run on this node again, or null: its DaemonSet,
 * read within `timeoutMs`, is gone (having existed while the agent ran: a
 * DaemonSet deployed under another name is no removal) or being deleted.
 * When it cannot be read (an uninstall may have taken the RBAC first), what
 * the agent's watch saw decides. The backend agents have no XdpBalancer:
 * their DaemonSet is all there is to ask.
 */
export async function backendRemoval(kc: KubeConfig, namespace: string, daemonSet: string, watch: Pick<RemovalWatch, 'seen' | 'sawExist'>,
  timeoutMs = BALANCER_GET_TIMEOUT_MS): Promise<string | null> {
  const d = deadline(timeoutMs);
  try {
    const ds = await kc.makeApiClient(AppsV1Api).readNamespacedDaemonSet({ name: daemonSet, namespace }, d.options);
    return ds.metadata?.deletionTimestamp ? `DaemonSet ${daemonSet} is being deleted` : null;
  } catch (err) {
    if (isNotFound(err)) {
      if (watch.sawExist('DaemonSet')) return `DaemonSet ${daemonSet} is gone`;
      log.warn({ daemonSet, namespace }, `DaemonSet ${daemonSet} not found, and never seen while this agent ran (deployed under another name?): staying attached`);
      return null;
    }
    const removal = watch.seen();
    log.warn({ daemonSet, ...errorFields(d.error(err)), removalSeen: removal },
      removal ? 'cannot read this agent\'s DaemonSet; its watch saw it go' : 'cannot read this agent\'s DaemonSet: staying attached; if xdplb is being uninstalled, run xdplb-agent cleanup on this node');
    return removal;
  }
}

/**
 * An agent that cannot read the API (everything being deleted at once took
 * its RBAC or the CRD first) but saw its XdpBalancer or DaemonSet go while it
 * ran is being removed: it detaches rather than staying attached.
 */
export function withRemovalSeen(d: ExitDecision, removal: string | null): ExitDecision {
  if (d.detach || d.unreadable === undefined || !removal) return d;
  return { detach: true, level: 'info', message: `${d.unreadable}, but ${removal} while this agent ran: detaching and unpinning` };
}

function describeError(err: unknown): string {
  const { code } = apiError(err);
  if (typeof code === 'number') return `HTTP ${code}`;
  const cause = (err as { cause?: { code?: string } } | null)?.cause?.code;
  const message = err instanceof Error ? err.message : String(err);
  return cause ? `${message} (${cause})` : message;
}
