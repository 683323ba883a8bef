/**
 * A VIP's backends from a Service's EndpointSlices (spec.backendService), as
 * kube-proxy reads them: endpoints that are ready and not terminating serve
 * new connections; a terminating one, or one that leaves, drains (weight 0,
 * established flows continue) like a backend pod that stops being Ready.
 *
 * A dual-stack Service has one slice per address family: an endpoint's
 * addresses are gathered across slices by its target (the pod), and the VIP
 * sends to the one of its own family (pickBackendIp).
 */
import type { V1Endpoint, V1EndpointSlice, V1Pod } from '@kubernetes/client-node';
import type { BackendStatus, LoadBalancerVip } from '../../api/loadbalancervip.js';
import { DEFAULT_WEIGHT } from '../../api/types.js';
import { pickBackendIp, quicServerIdOf, type Resolution, sharedQuicServerIds, weightOf, withDraining } from '../backends.js';

/** The label the EndpointSlice controller puts on a Service's slices. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** Keeps what backend resolution reads: the Service label, address type, endpoints (addresses, conditions, target, node), ports. */
export function trimEndpointSlice(s: V1EndpointSlice): void {
  const m = s.metadata;
  const service = m?.labels?.[SERVICE_NAME_LABEL];
  s.metadata = { name: m?.name, namespace: m?.namespace, resourceVersion: m?.resourceVersion, labels: service === undefined ? {} : { [SERVICE_NAME_LABEL]: service } };
  s.endpoints = (s.endpoints ?? []).map((e) => ({
    addresses: e.addresses,
    conditions: { ready: e.conditions?.ready, serving: e.conditions?.serving, terminating: e.conditions?.terminating },
    ...(e.targetRef ? { targetRef: { kind: e.targetRef.kind, name: e.targetRef.name } } : {}),
    ...(e.nodeName ? { nodeName: e.nodeName } : {}),
  }));
}

/** Ready (an unset ready means ready, as the API documents) and not terminating. */
function serves(e: V1Endpoint): boolean {
  return e.conditions?.ready !== false && e.conditions?.terminating !== true;
}

/**
 * `podOf` finds a target pod in the controller's cache, for its weight
 * annotation; an endpoint without a cached pod has the default weight.
 */
export function resolveEndpointBackends(
  vip: LoadBalancerVip,
  address: string | undefined,
  slices: Iterable<V1EndpointSlice>,
  podOf: (name: string) => V1Pod | undefined,
  now: Date,
  drainSeconds: number,
): Resolution {
  const badWeights: Resolution['badWeights'] = [];
  const badQuicServerIds: Resolution['badQuicServerIds'] = [];
  const service = vip.spec.backendService;
  /** By target: its addresses of every family, its node, whether it serves. */
  const targets = new Map<string, { ips: string[]; node?: string; pod?: string; serving: boolean }>();
  for (const slice of slices) {
    if (service === undefined || slice.metadata?.namespace !== vip.metadata.namespace || slice.metadata?.labels?.[SERVICE_NAME_LABEL] !== service) continue;
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue; // FQDN: nothing to send to
    for (const e of slice.endpoints ?? []) {
      const pod = e.targetRef?.kind === 'Pod' ? e.targetRef.name : undefined;
      const key = pod !== undefined ? `pod/${pod}` : `ip/${e.addresses[0]}`;
      const t = targets.get(key) ?? { ips: [], serving: true, ...(pod ? { pod } : {}), ...(e.nodeName ? { node: e.nodeName } : {}) };
      t.ips.push(...e.addresses);
      t.serving &&= serves(e);
      targets.set(key, t);
    }
  }
  const active = new Map<string, BackendStatus>();
  for (const t of targets.values()) {
    if (!t.serving) continue;
    const ip = pickBackendIp(address, t.ips);
    if (!ip || active.has(ip)) continue;
    const pod = t.pod === undefined ? undefined : podOf(t.pod);
    const quicServerId = pod ? quicServerIdOf(pod, badQuicServerIds) : undefined;
    active.set(ip, {
      ip, weight: pod ? weightOf(pod, badWeights) : DEFAULT_WEIGHT, pod: t.pod ?? ip, ...(t.node ? { node: t.node } : {}),
      ...(quicServerId === undefined ? {} : { quicServerId }),
    });
  }
  sharedQuicServerIds(active.values(), badQuicServerIds);
  return { ...withDraining(active, vip.status?.backends ?? [], now, drainSeconds), badWeights, badQuicServerIds };
}
