/**
 * What a Service of type LoadBalancer becomes: the LoadBalancerVip the
 * controller makes for it (same name and namespace, labelled with the
 * Service, owned by it), or why it cannot be served. Pure.
 *
 * The XDP path forwards packets unchanged, ports included: a Service port
 * whose target port differs cannot be served until backends rewrite ports.
 */
import type { V1EndpointSlice, V1OwnerReference, V1Service } from '@kubernetes/client-node';
import { type AddressFamily, DEFAULT_BALANCER, GROUP, LBVIP_KIND, type LoadBalancerVip, VERSION } from '../../api/loadbalancervip.js';
import {
  ADDRESS_ANNOTATION, BALANCER_ANNOTATION, LOAD_BALANCER_CLASS, SERVICE_LABEL, ServiceReason,
} from '../../api/service.js';
import { MAX_PORTS_PER_VIP, type VipPort } from '../../api/types.js';

export type ServicePlan =
  | { serve: true; vip: LoadBalancerVip }
  | { serve: false; reason: string; message: string };

/** Whether xdplb serves the Service: type LoadBalancer of our class, or of no class when told to serve those. */
export function isOurs(svc: V1Service, serveWithoutClass: boolean): boolean {
  if (svc.spec?.type !== 'LoadBalancer') return false;
  const cls = svc.spec.loadBalancerClass;
  return cls === LOAD_BALANCER_CLASS || (cls === undefined && serveWithoutClass);
}

/** Named target ports resolve per endpoint: a slice's port of that name says the number. */
function namedTargetPorts(slices: Iterable<V1EndpointSlice>, name: string | undefined): Set<number> {
  const numbers = new Set<number>();
  for (const s of slices) for (const p of s.ports ?? []) if ((p.name ?? '') === (name ?? '') && p.port !== undefined) numbers.add(p.port);
  return numbers;
}

const BALANCER_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function planServiceVip(svc: V1Service, slices: Iterable<V1EndpointSlice>): ServicePlan {
  const name = svc.metadata?.name ?? '';
  const ports: VipPort[] = [];
  for (const p of svc.spec?.ports ?? []) {
    const protocol = p.protocol ?? 'TCP';
    if (protocol !== 'TCP' && protocol !== 'UDP') {
      return { serve: false, reason: ServiceReason.UnsupportedProtocol, message: `port ${p.port}/${protocol}: xdplb balances TCP and UDP only` };
    }
    const target = p.targetPort;
    if (typeof target === 'number' && target !== p.port) {
      return { serve: false, reason: ServiceReason.PortsDiffer, message: `port ${p.port}/${protocol} has targetPort ${target}: the XDP path does not rewrite ports, so each port must equal its targetPort` };
    }
    if (typeof target === 'string' && !/^\d+$/.test(target)) {
      const numbers = [...namedTargetPorts(slices, p.name)].filter((n) => n !== p.port);
      if (numbers.length) {
        return { serve: false, reason: ServiceReason.PortsDiffer, message: `port ${p.port}/${protocol} has targetPort "${target}", which the endpoints resolve to ${numbers.join(', ')}: the XDP path does not rewrite ports, so each port must equal its targetPort` };
      }
    } else if (typeof target === 'string' && Number(target) !== p.port) {
      return { serve: false, reason: ServiceReason.PortsDiffer, message: `port ${p.port}/${protocol} has targetPort ${target}: the XDP path does not rewrite ports, so each port must equal its targetPort` };
    }
    ports.push({ port: p.port, protocol });
  }
  if (ports.length > MAX_PORTS_PER_VIP) {
    return { serve: false, reason: ServiceReason.TooManyPorts, message: `${ports.length} ports: a VIP balances at most ${MAX_PORTS_PER_VIP}` };
  }
  const annotations = svc.metadata?.annotations ?? {};
  const balancer = annotations[BALANCER_ANNOTATION] ?? DEFAULT_BALANCER;
  if (!BALANCER_NAME.test(balancer) || balancer.length > 63) {
    return { serve: false, reason: ServiceReason.BadAnnotation, message: `annotation ${BALANCER_ANNOTATION}: "${balancer}" is not an XdpBalancer name` };
  }
  const address = annotations[ADDRESS_ANNOTATION] ?? (svc.spec?.loadBalancerIP || undefined);
  const family = svc.spec?.ipFamilies?.[0] as AddressFamily | undefined;
  const owner: V1OwnerReference = { apiVersion: 'v1', kind: 'Service', name, uid: svc.metadata?.uid ?? '', controller: true };
  const vip: LoadBalancerVip = {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: LBVIP_KIND,
    metadata: { name, namespace: svc.metadata?.namespace, labels: { [SERVICE_LABEL]: name }, ownerReferences: [owner] },
    spec: {
      balancer,
      ...(address === undefined ? {} : { address }),
      ...(address === undefined && family ? { addressFamily: family } : {}),
      ports,
      backendService: name,
      hashing: { ignoreSourcePort: svc.spec?.sessionAffinity === 'ClientIP' },
    },
  };
  return { serve: true, vip };
}

/** Whether the VIP in the cluster already says what `desired` says (so nothing is written). */
export function vipMatches(current: LoadBalancerVip, desired: LoadBalancerVip): boolean {
  const spec = (v: LoadBalancerVip) => JSON.stringify({
    balancer: v.spec.balancer ?? DEFAULT_BALANCER,
    address: v.spec.address ?? null,
    addressFamily: v.spec.addressFamily ?? null,
    ports: v.spec.ports.map((p) => `${p.port}/${p.protocol ?? 'TCP'}`),
    backendService: v.spec.backendService ?? null,
    ignoreSourcePort: v.spec.hashing?.ignoreSourcePort ?? false,
  });
  const owned = (v: LoadBalancerVip) => JSON.stringify([v.metadata.labels?.[SERVICE_LABEL] ?? null, v.metadata.ownerReferences?.map((o) => o.uid) ?? []]);
  return spec(current) === spec(desired) && owned(current) === owned(desired);
}
