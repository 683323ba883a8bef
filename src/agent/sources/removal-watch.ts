/**
 * What the agent saw of its own removal while it ran: its XdpBalancer or its
 * DaemonSet deleted or being deleted, as their watches reported it.
 *
 * On SIGTERM the agent asks the API server whether an agent of its balancer
 * will run on the node again (uninstall.ts). When everything is deleted at
 * once (`kubectl delete -k deploy/`), that question may come too late: its
 * RBAC, its ServiceAccount or the CRD may already be gone, and an agent that
 * cannot tell stays attached. Watches opened while the agent could still read
 * go on delivering the deletions, so what they saw decides then.
 */
import { AppsV1Api, CustomObjectsApi, type KubeConfig, type KubernetesObject, type V1DaemonSet } from '@kubernetes/client-node';
import { agentDaemonSetName } from '../../api/agent-pod.js';
import { GROUP, VERSION } from '../../api/loadbalancervip.js';
import { XDPB_PLURAL } from '../../api/xdpbalancer.js';
import { componentLog } from '../../lib/log.js';
import { WatchedCache } from '../../lib/watched-cache.js';

const log = componentLog('removal-watch');

type WatchedKind = 'XdpBalancer' | 'DaemonSet';

export class RemovalWatch {
  private readonly caches: WatchedCache<KubernetesObject>[] = [];
  private removal: string | null = null;
  /** The kinds whose object the watches saw exist at some point: a 404 for one never seen may be a different name, not a removal. */
  private readonly existed = new Set<WatchedKind>();

  /**
   * Watches the XdpBalancer `balancer` and its agents' DaemonSet; with
   * balancer null, only the DaemonSet `daemonSet` (the backend agents' has no XdpBalancer).
   */
  constructor(kc: KubeConfig, balancer: string | null, namespace: string, daemonSet = agentDaemonSetName(balancer ?? '')) {
    const custom = kc.makeApiClient(CustomObjectsApi);
    const apps = kc.makeApiClient(AppsV1Api);
    const byName = (name: string) => `metadata.name=${name}`;
    if (balancer !== null) {
      this.caches.push(new WatchedCache<KubernetesObject>(kc, `/apis/${GROUP}/${VERSION}/${XDPB_PLURAL}`,
        (page) => custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: XDPB_PLURAL, fieldSelector: byName(balancer), ...page }) as never,
        (o, verb) => this.saw('XdpBalancer', balancer, o, verb), { fieldSelector: byName(balancer), trim: keepMetadataOnly }));
    }
    this.caches.push(new WatchedCache<V1DaemonSet>(kc, `/apis/apps/v1/namespaces/${namespace}/daemonsets`,
      (page) => apps.listNamespacedDaemonSet({ namespace, fieldSelector: byName(daemonSet), ...page }),
      (o, verb) => this.saw('DaemonSet', daemonSet, o, verb), { fieldSelector: byName(daemonSet), trim: keepMetadataOnly }) as WatchedCache<KubernetesObject>);
  }

  /** Starts watching; resolves once both have listed (a caller need not wait: they retry on their own). */
  start(): Promise<void> {
    return Promise.all(this.caches.map((c) => c.start())).then(() => undefined);
  }

  async stop(): Promise<void> {
    await Promise.all(this.caches.map((c) => c.stop()));
  }

  /** What was seen going, or null. */
  seen(): string | null {
    return this.removal;
  }

  /** Whether the watched object of this kind was seen to exist while the agent ran. */
  sawExist(kind: WatchedKind): boolean {
    return this.existed.has(kind);
  }

  private saw(kind: WatchedKind, name: string, o: KubernetesObject, verb: 'add' | 'update' | 'delete'): void {
    this.existed.add(kind);
    if (this.removal) return;
    const what = `${kind} ${name}`;
    if (verb === 'delete') this.removal = `${what} was deleted`;
    else if (o.metadata?.deletionTimestamp) this.removal = `${what} was being deleted`;
    if (this.removal) log.info({ removal: this.removal }, 'seen: no agent of this kind will run here again once this one stops');
  }
}

function keepMetadataOnly(o: KubernetesObject): void {
  const { name, namespace, resourceVersion, deletionTimestamp } = o.metadata ?? {};
  o.metadata = { name, namespace, resourceVersion, deletionTimestamp };
  delete (o as { spec?: unknown }).spec;
  delete (o as { status?: unknown }).status;
}
