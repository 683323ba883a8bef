/**
 * Whether a cluster-mode agent that is stopping is being uninstalled. A
 * rolling update, a pod restart or a node drain must leave the program
 * attached and the maps pinned, so the next agent adopts them; an uninstall
 * must leave nothing. The agent's XdpBalancer tells them apart: gone (the
 * CRD too) or being deleted means uninstall, so detach and unpin; present
 * means stay. When the API cannot answer, stay: traffic keeps flowing, and
 * the log names the command that removes it by hand.
 */
import { CustomObjectsApi, type KubeConfig, Observable, type ObservableMiddleware } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../../api/loadbalancervip.js';
import { XDPB_PLURAL } from '../../api/xdpbalancer.js';
import { apiError, isNotFound } from '../../lib/api-error.js';

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
}

/** Where the agent is attached, for the hand-cleanup command. */
export interface Attachment {
  nic: string;
  pinDir: string;
}

/** The decision, from the GET alone. */
export function decideOnExit(balancer: string, got: BalancerGet, at: Attachment): ExitDecision {
  if ('object' in got) {
    if (got.object.metadata?.deletionTimestamp) {
      return { detach: true, level: 'info', message: `XdpBalancer ${balancer} is being deleted: detaching and unpinning` };
    }
    return { detach: false, level: 'info', message: `XdpBalancer ${balancer} exists: staying attached for the next agent` };
  }
  if (isNotFound(got.error)) {
    return { detach: true, level: 'info', message: `XdpBalancer ${balancer} is gone: detaching and unpinning` };
  }
  return {
    detach: false,
    level: 'warn',
    message: `could not read XdpBalancer ${balancer} (${describeError(got.error)}): staying attached; ` +
      `if xdplb is being uninstalled, run on this node: xdplb-agent cleanup --nic ${at.nic} --pin-dir ${at.pinDir}`,
  };
}

/** GETs the balancer within `timeoutMs`; never throws. */
export async function getBalancer(kc: KubeConfig, balancer: string, timeoutMs = BALANCER_GET_TIMEOUT_MS): Promise<BalancerGet> {
  const signal = AbortSignal.timeout(timeoutMs);
  const withTimeout: ObservableMiddleware = {
    pre: (ctx) => {
      ctx.setSignal(signal);
      return new Observable(Promise.resolve(ctx));
    },
    post: (res) => new Observable(Promise.resolve(res)),
  };
  try {
    const object = await kc.makeApiClient(CustomObjectsApi).getClusterCustomObject(
      { group: GROUP, version: VERSION, plural: XDPB_PLURAL, name: balancer },
      { middleware: [withTimeout], middlewareMergeStrategy: 'append' },
    );
    return { object: object as BalancerObject };
  } catch (error) {
    return { error: signal.aborted ? new Error(`no answer within ${timeoutMs} ms`) : error };
  }
}

/** GETs the balancer and decides. */
export async function exitDecision(kc: KubeConfig, balancer: string, at: Attachment, timeoutMs?: number): Promise<ExitDecision> {
  return decideOnExit(balancer, await getBalancer(kc, balancer, timeoutMs), at);
}

function describeError(err: unknown): string {
  const { code } = apiError(err);
  if (typeof code === 'number') return `HTTP ${code}`;
  const cause = (err as { cause?: { code?: string } } | null)?.cause?.code;
  const message = err instanceof Error ? err.message : String(err);
  return cause ? `${message} (${cause})` : message;
}
