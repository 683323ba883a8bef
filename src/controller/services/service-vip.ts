/**
 * What a Service of type LoadBalancer becomes: the LoadBalancerVip the
 * controller makes for it (same name and namespace, labelled with the
 * Service, owned by it), or why it cannot be served. Pure.
 *
 * The VIP's delivery is Node unless the xdplb.dev/delivery annotation says
 * InPod: the backend node decapsulates and translates a numeric targetPort, so
 * ordinary pods serve. A named targetPort is resolved per endpoint, and a VIP
 * port has one target port: one that resolves to a number other than the port
 * is refused (PortsDiffer), as is any differing port with delivery InPod.
 */
import type { V1EndpointSlice, V1OwnerReference, V1Service } from '@kubernetes/client-node';
import {
  type AddressFamily, DEFAULT_BALANCER, DEFAULT_DELIVERY, DELIVERIES, type Delivery, GROUP, LBVIP_KIND, type LoadBalancerVip, VERSION,
} from '../../api/loadbalancervip.js';
import {
  ADDRESS_ANNOTATION, BALANCER_ANNOTATION, DELIVERY_ANNOTATION, LOAD_BALANCER_CLASS, SERVICE_LABEL, ServiceReason,
} from '../../api/service.js';
import { MAX_PORTS_PER_VIP, targetPortOf, type VipPort } from '../../api/types.js';

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

/** The delivery of a Service's VIP: Node unless the annotation says otherwise. */
const SERVICE_DELIVERY: Delivery = 'Node';

export function planServiceVip(svc: V1Service, slices: Iterable<V1EndpointSlice>): ServicePlan {
  const name = svc.metadata?.name ?? '';
  const annotations = svc.metadata?.annotations ?? {};
  const delivery = (annotations[DELIVERY_ANNOTATION] ?? SERVICE_DELIVERY) as Delivery;
  if (!DELIVERIES.includes(delivery)) {
    return { serve: false, reason: ServiceReason.BadAnnotation, message: `annotation ${DELIVERY_ANNOTATION}: "${delivery}" is neither ${DELIVERIES.join(' nor ')}` };
  }
  const inPod = `with ${DELIVERY_ANNOTATION}: InPod the pods receive the VIP port unchanged; remove the annotation (delivery Node translates it) or make them equal`;
  const ports: VipPort[] = [];
  for (const p of svc.spec?.ports ?? []) {
    const protocol = p.protocol ?? 'TCP';
    if (protocol !== 'TCP' && protocol !== 'UDP') {
      return { serve: false, reason: ServiceReason.UnsupportedProtocol, message: `port ${p.port}/${protocol}: xdplb balances TCP and UDP only` };
    }
    const target = p.targetPort;
    let targetPort = p.port;
    if (typeof target === 'string' && !/^\d+$/.test(target)) {
      const numbers = [...namedTargetPorts(slices, p.name)].filter((n) => n !== p.port);
      if (numbers.length) {
        return {
          serve: false, reason: ServiceReason.PortsDiffer,
          message: `port ${p.port}/${protocol} has targetPort "${target}", which the endpoints resolve to ${numbers.join(', ')}: a named targetPort can differ per endpoint ` +
            'and a VIP port has one target port, so a named one must resolve to the port itself; give the number instead',
        };
      }
    } else if (target !== undefined) {
      targetPort = Number(target);
    }
    if (targetPort !== p.port && delivery === 'InPod') {
      return { serve: false, reason: ServiceReason.PortsDiffer, message: `port ${p.port}/${protocol} has targetPort ${targetPort}: ${inPod}` };
    }
    ports.push({ port: p.port, protocol, ...(targetPort === p.port ? {} : { targetPort }) });
  }
  if (ports.length > MAX_PORTS_PER_VIP) {
    return { serve: false, reason: ServiceReason.TooManyPorts, message: `${ports.length} ports: a VIP balances at most ${MAX_PORTS_PER_VIP}` };
  }
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
      delivery,
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
    ports: v.spec.ports.map((p) => `${p.port}:${targetPortOf(p)}/${p.protocol ?? 'TCP'}`),
    delivery: v.spec.delivery ?? DEFAULT_DELIVERY,
    backendService: v.spec.backendService ?? null,
    ignoreSourcePort: v.spec.hashing?.ignoreSourcePort ?? false,
  });
  const owned = (v: LoadBalancerVip) => JSON.stringify([v.metadata.labels?.[SERVICE_LABEL] ?? null, v.metadata.ownerReferences?.map((o) => o.uid) ?? []]);
  return spec(current) === spec(desired) && owned(current) === owned(desired);
}
