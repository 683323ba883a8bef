/**
 * XdpAddressPool manifests for the e2e suites: VIPs are programmed only at
 * addresses a pool allows, so every suite that makes VIPs makes a pool too.
 */
import type { V1LabelSelector } from '@kubernetes/client-node';

/** The addresses e2e VIPs use: the start of the lab's and kind's VIP range (DESIGN.md) and the IPv6 documentation prefix. */
export const E2E_VIP_CIDRS = ['198.19.0.0/20', '2001:db8::/32'];

export function poolManifest(name: string, cidrs: string[], namespaceSelector: V1LabelSelector = {}, more: { balancers?: string[]; autoAssign?: boolean } = {}): string {
  return JSON.stringify({ apiVersion: 'xdplb.dev/v1alpha1', kind: 'XdpAddressPool', metadata: { name }, spec: { cidrs, namespaceSelector, ...more } });
}

/** A pool of the e2e VIP range for one namespace (selected by the name label the API server sets). */
export const namespacePool = (namespace: string, name = `e2e-${namespace}`) =>
  poolManifest(name, E2E_VIP_CIDRS, { matchLabels: { 'kubernetes.io/metadata.name': namespace } });

/** A pool of the e2e VIP range for every namespace: for tests about something else than pools. */
export const OPEN_POOL = poolManifest('e2e-open', E2E_VIP_CIDRS);
