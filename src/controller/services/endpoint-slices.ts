/**
 * Every EndpointSlice of the cluster, cached trimmed and indexed by the
 * Service it belongs to ("namespace/service"); listeners hear which Service's
 * endpoints changed.
 */
import { DiscoveryV1Api, type KubeConfig, type V1EndpointSlice } from '@kubernetes/client-node';
import { WatchedCache } from '../../lib/watched-cache.js';
import { MultiMap } from '../indexes.js';
import { SERVICE_NAME_LABEL, trimEndpointSlice } from './endpoint-backends.js';

/** Slices per list page. */
const LIST_PAGE_SIZE = 500;

export const serviceKey = (namespace: string | undefined, service: string | undefined) => `${namespace}/${service}`;

export class EndpointSlices {
  private readonly cache: WatchedCache<V1EndpointSlice>;
  private readonly byService = new MultiMap<V1EndpointSlice>();
  private readonly serviceOf = new Map<string, string>();
  private readonly listeners: ((service: string) => void)[] = [];

  constructor(kc: KubeConfig) {
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    this.cache = new WatchedCache<V1EndpointSlice>(kc, '/apis/discovery.k8s.io/v1/endpointslices',
      (page) => discovery.listEndpointSliceForAllNamespaces({ labelSelector: SERVICE_NAME_LABEL, ...page }),
      (s, verb) => this.onSlice(s, verb === 'delete'), { trim: trimEndpointSlice, pageSize: LIST_PAGE_SIZE, labelSelector: SERVICE_NAME_LABEL });
  }

  start(): Promise<void> {
    return this.cache.start();
  }

  stop(): Promise<void> {
    return this.cache.stop();
  }

  /** Called with "namespace/service" whenever one of its slices changes. */
  onChange(listener: (service: string) => void): void {
    this.listeners.push(listener);
  }

  of(namespace: string, service: string): ReadonlySet<V1EndpointSlice> {
    return this.byService.get(serviceKey(namespace, service));
  }

  private onSlice(s: V1EndpointSlice, deleted: boolean): void {
    const id = `${s.metadata?.namespace}/${s.metadata?.name}`;
    const old = this.serviceOf.get(id);
    if (old !== undefined) {
      for (const x of this.byService.get(old)) if (`${x.metadata?.namespace}/${x.metadata?.name}` === id) this.byService.delete(old, x);
      this.serviceOf.delete(id);
    }
    const now = serviceKey(s.metadata?.namespace, s.metadata?.labels?.[SERVICE_NAME_LABEL]);
    if (!deleted) {
      this.byService.add(now, s);
      this.serviceOf.set(id, now);
    }
    for (const service of new Set([old, now])) if (service !== undefined) for (const l of this.listeners) l(service);
  }
}
