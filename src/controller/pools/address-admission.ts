/**
 * What decides whether a VIP may have an address, kept current from the API:
 * the XdpAddressPools (resolved: overlapping newer ones refused), every
 * Namespace's labels (pools select namespaces), and the addresses no VIP may
 * ever have (Node addresses and pod CIDRs, the Service range from ServiceCIDR
 * objects and the `kubernetes` Service's ClusterIPs).
 *
 * It reports through hooks what changed, so the VIP controller re-examines
 * only the VIPs that change may affect.
 */
import {
  CoreV1Api, CustomObjectsApi, type KubeConfig, NetworkingV1Api, type V1Namespace, type V1Node, type V1Service, type V1ServiceCIDR,
} from '@kubernetes/client-node';
import { type XdpAddressPool, XDPAP_PLURAL } from '../../api/addresspool.js';
import { GROUP, VERSION } from '../../api/loadbalancervip.js';
import { isNotFound } from '../../lib/api-error.js';
import { componentLog } from '../../lib/log.js';
import { trimManagedFields, WatchedCache } from '../../lib/watched-cache.js';
import { type AssignRequest, type Assignment, assignAddress, type UsedAddresses } from './assignment.js';
import { type Forbidden, forbiddenAddresses, NOTHING_FORBIDDEN } from './forbidden.js';
import { type AddressCheck, checkAddress, type NamespaceInfo } from './pool-admission.js';
import { resolvePools } from './pool-overlap.js';
import type { Pool } from './pool.js';

const log = componentLog('address-admission');

/** The label the API server puts on every namespace: a pool's selector may name namespaces by it. */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/** The Service whose ClusterIP is the first of the Service range (every cluster has it). */
const KUBERNETES_SERVICE = { namespace: 'default', name: 'kubernetes' };

export interface AdmissionHooks {
  /** What the pools say changed (added, removed, spec): any VIP's admission may have changed. */
  poolsChanged(): void;
  /** A pool object changed, perhaps only its status: the status writer checks it is still right. */
  poolWritten(): void;
  /** A namespace's labels changed: its VIPs' admission may have. */
  namespaceChanged(namespace: string): void;
  /** The never-allowed addresses changed (a node, a pod CIDR, the Service range). */
  forbiddenChanged(): void;
}

/** A Node as admission reads it: name, addresses, pod CIDRs (a Node's images and conditions are most of its size). */
function trimNode(n: V1Node): void {
  n.metadata = { name: n.metadata?.name, resourceVersion: n.metadata?.resourceVersion };
  n.spec = { podCIDR: n.spec?.podCIDR, podCIDRs: n.spec?.podCIDRs };
  n.status = { addresses: n.status?.addresses?.map((a) => ({ type: a.type, address: a.address })) };
}

function trimNamespace(ns: V1Namespace): void {
  ns.metadata = { name: ns.metadata?.name, resourceVersion: ns.metadata?.resourceVersion, labels: ns.metadata?.labels };
  delete ns.spec;
  delete ns.status;
}

export class AddressAdmission {
  private readonly poolCache: WatchedCache<XdpAddressPool>;
  private readonly namespaces: WatchedCache<V1Namespace>;
  private readonly nodes: WatchedCache<V1Node>;
  private readonly kubernetesService: WatchedCache<V1Service>;
  private serviceCIDRs: WatchedCache<V1ServiceCIDR> | undefined;
  private resolved: Pool[] = [];
  private resolvedKey = '';
  private forbiddenNow: Forbidden = NOTHING_FORBIDDEN;
  private forbiddenKey = '';
  private started = false;

  constructor(private readonly kc: KubeConfig, private readonly hooks: AdmissionHooks) {
    const custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    this.poolCache = new WatchedCache<XdpAddressPool>(kc, `/apis/${GROUP}/${VERSION}/${XDPAP_PLURAL}`,
      (page) => custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: XDPAP_PLURAL, ...page }),
      () => this.poolsMayHaveChanged(), { trim: trimManagedFields });
    this.namespaces = new WatchedCache<V1Namespace>(kc, '/api/v1/namespaces', (page) => core.listNamespace(page),
      (ns, verb) => this.onNamespace(ns, verb), { trim: trimNamespace });
    this.nodes = new WatchedCache<V1Node>(kc, '/api/v1/nodes', (page) => core.listNode(page), () => this.forbiddenMayHaveChanged(), { trim: trimNode });
    const selector = `metadata.name=${KUBERNETES_SERVICE.name}`;
    this.kubernetesService = new WatchedCache<V1Service>(kc, `/api/v1/namespaces/${KUBERNETES_SERVICE.namespace}/services`,
      (page) => core.listNamespacedService({ namespace: KUBERNETES_SERVICE.namespace, fieldSelector: selector, ...page }),
      () => this.forbiddenMayHaveChanged(), { fieldSelector: selector, trim: trimManagedFields });
  }

  async start(): Promise<void> {
    this.serviceCIDRs = await this.serviceCIDRCache();
    await Promise.all([this.poolCache.start(), this.namespaces.start(), this.nodes.start(), this.kubernetesService.start(), this.serviceCIDRs?.start()]);
    this.started = true;
    this.resolvePools();
    this.recomputeForbidden();
  }

  async stop(): Promise<void> {
    this.started = false;
    await Promise.all([this.poolCache.stop(), this.namespaces.stop(), this.nodes.stop(), this.kubernetesService.stop(), this.serviceCIDRs?.stop()]);
  }

  /** Pools, oldest first, refused ones marked. */
  get pools(): readonly Pool[] {
    return this.resolved;
  }

  get forbidden(): Forbidden {
    return this.forbiddenNow;
  }

  poolResources(): readonly XdpAddressPool[] {
    return this.poolCache.list();
  }

  /** A namespace as pools see it; one not cached yet has only the label the API server always sets. */
  namespace(name: string): NamespaceInfo {
    const labels = this.namespaces.get(name)?.metadata?.labels ?? { [NAMESPACE_NAME_LABEL]: name };
    return { name, labels };
  }

  check(address: string, namespace: string, balancer: string): AddressCheck {
    return checkAddress(address, this.namespace(namespace), balancer, this.resolved, this.forbiddenNow);
  }

  assign(req: Omit<AssignRequest, 'namespace'> & { namespace: string }, used: UsedAddresses): Assignment {
    return assignAddress({ ...req, namespace: this.namespace(req.namespace) }, this.resolved, used, this.forbiddenNow);
  }

  /** ServiceCIDR objects (networking.k8s.io/v1, Kubernetes 1.33+) when the API serves them; else the kubernetes Service alone. */
  private async serviceCIDRCache(): Promise<WatchedCache<V1ServiceCIDR> | undefined> {
    const net = this.kc.makeApiClient(NetworkingV1Api);
    try {
      await net.listServiceCIDR({ limit: 1 });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      log.warn('this API server serves no ServiceCIDR objects (Kubernetes < 1.33): only the ClusterIPs of Service default/kubernetes are refused as VIPs, not the whole Service range');
      return undefined;
    }
    return new WatchedCache<V1ServiceCIDR>(this.kc, '/apis/networking.k8s.io/v1/servicecidrs', (page) => net.listServiceCIDR(page),
      () => this.forbiddenMayHaveChanged(), { trim: trimManagedFields });
  }

  private onNamespace(ns: V1Namespace, verb: 'add' | 'update' | 'delete'): void {
    if (this.started && verb !== 'delete' && ns.metadata?.name) this.hooks.namespaceChanged(ns.metadata.name);
  }

  /**
   * The controller writes each pool's status (addresses in use) as VIPs come
   * and go: passing those on would re-check every VIP once a second while
   * thousands are being assigned. Only a change of what the pools say is.
   */
  private poolsMayHaveChanged(): void {
    if (!this.started) return;
    if (this.resolvePools()) this.hooks.poolsChanged();
    else this.hooks.poolWritten();
  }

  private resolvePools(): boolean {
    const next = resolvePools(this.poolCache.list());
    const key = JSON.stringify(next, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    if (key === this.resolvedKey) return false;
    this.resolved = next;
    this.resolvedKey = key;
    return true;
  }

  /** Node status updates arrive every few seconds: only a change of the forbidden ranges is passed on. */
  private forbiddenMayHaveChanged(): void {
    if (!this.started) return;
    if (this.recomputeForbidden()) this.hooks.forbiddenChanged();
  }

  private recomputeForbidden(): boolean {
    const next = forbiddenAddresses({
      nodes: this.nodes.list(),
      serviceCIDRs: this.serviceCIDRs?.list() ?? [],
      services: this.kubernetesService.list(),
    });
    const key = next.ranges.map((r) => `${r.family}:${r.first}-${r.last}:${r.reason}`).sort().join('\n');
    // The same object while nothing changed: assignment keeps its search hints per object.
    if (key === this.forbiddenKey) return false;
    this.forbiddenNow = next;
    this.forbiddenKey = key;
    return true;
  }
}
