/**
 * How xdplb serves Services of type LoadBalancer: the class it answers to,
 * the annotations a Service may carry, and what marks the LoadBalancerVip the
 * controller makes for one.
 */

/** spec.loadBalancerClass of the Services xdplb serves. */
export const LOAD_BALANCER_CLASS = 'xdplb.dev/xdp';

/** Service annotation: the address wanted (else spec.loadBalancerIP, else one assigned from a pool). */
export const ADDRESS_ANNOTATION = 'xdplb.dev/address';
/** Service annotation: the XdpBalancer to serve it (default "default"). */
export const BALANCER_ANNOTATION = 'xdplb.dev/balancer';

/**
 * Service annotation: the VIP's delivery, Node (default for Services: their pods
 * are ordinary pods, the backend node decapsulates and translates ports) or
 * InPod (the pods run xdplb-decap with the VIP on lo; ports must equal target ports).
 */
export const DELIVERY_ANNOTATION = 'xdplb.dev/delivery';

/** Label on a LoadBalancerVip made for a Service: the Service's name (same namespace). */
export const SERVICE_LABEL = 'xdplb.dev/service';

/** status.loadBalancer.ingress[].ipMode: traffic reaches the pods with the VIP as destination (no node hop). */
export const INGRESS_IP_MODE = 'VIP';

/** Why a Service of ours is not served (its Events say so). */
export const ServiceReason = {
  /**
   * Port and target port differ where nothing can translate: delivery InPod (the
   * pod gets the VIP port unchanged), or a named target port the endpoints
   * resolve to another number (a VIP port has one target port, not one per endpoint).
   */
  PortsDiffer: 'PortsDiffer',
  UnsupportedProtocol: 'UnsupportedProtocol',
  TooManyPorts: 'TooManyPorts',
  BadAnnotation: 'BadAnnotation',
  /** A LoadBalancerVip of the Service's name exists and was not made for it. */
  NameTaken: 'NameTaken',
} as const;
