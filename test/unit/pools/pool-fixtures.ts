/** XdpAddressPools, namespaces and nodes for the pool tests. */
import type { V1LabelSelector, V1Node } from '@kubernetes/client-node';
import type { XdpAddressPool } from '../../../src/api/addresspool.js';
import type { NamespaceInfo } from '../../../src/controller/pools/pool-admission.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

/** A pool created `age` seconds after T0 (older pools have smaller ages). */
export function poolResource(
  name: string,
  cidrs: string[],
  opts: { age?: number; namespaceSelector?: V1LabelSelector; balancers?: string[]; autoAssign?: boolean } = {},
): XdpAddressPool {
  return {
    metadata: { name, creationTimestamp: new Date(T0 + (opts.age ?? 0) * 1000) },
    spec: { cidrs, namespaceSelector: opts.namespaceSelector ?? {}, balancers: opts.balancers, autoAssign: opts.autoAssign },
  };
}

export const ns = (name: string, labels: Record<string, string> = {}): NamespaceInfo => ({
  name,
  labels: { 'kubernetes.io/metadata.name': name, ...labels },
});

export const tenant = (t: string): V1LabelSelector => ({ matchLabels: { 'xdplb.dev/tenant': t } });

export function node(name: string, addresses: [type: string, address: string][], podCIDRs: string[] = []): V1Node {
  return {
    metadata: { name },
    spec: { podCIDRs, podCIDR: podCIDRs[0] },
    status: { addresses: addresses.map(([type, address]) => ({ type, address })) },
  };
}
