/**
 * The backend program's map keys and values (bpf/include/xdplb_structs.h,
 * bpf/backend.bpf.c), checked against the object's BTF by
 * test/bpf/layout.test.ts like structs.ts.
 */
import { type IpAddress, IP_BYTES } from '../lib/ip.js';
import type { Codec } from '../libbpf/typed-map.js';
import { addressOf, FlowKeyLayout, type StructLayout, structCodec, type VipKey, VipKeyCodec, VipKeyLayout } from './structs.js';

/** struct xdplb_endpoint: an address, port and protocol; the bytes of struct vip_key. */
export const EndpointLayout = {
  cName: 'xdplb_endpoint',
  size: VipKeyLayout.size,
  offsets: VipKeyLayout.offsets,
} as const satisfies StructLayout;

/** A pod's (address, target port, protocol), or a VIP's (address, port, protocol). */
export type Endpoint = VipKey;

export const EndpointCodec: Codec<Endpoint> = { ...VipKeyCodec, cType: `struct ${EndpointLayout.cName}` };

/** struct backend_svc_key: a tunnel packet toward a pod, by outer and inner destination. */
export const BackendSvcKeyLayout = {
  cName: 'backend_svc_key',
  size: 40,
  offsets: { tunnel_dst: 0, vip: 16, vip_port: 32, proto: 34, vip_family: 35, tunnel_family: 36, pad: 37 },
} as const satisfies StructLayout;

export interface BackendSvcKey {
  /** The pod address the balancer encapsulates to (the outer destination). */
  tunnelDst: IpAddress;
  vip: IpAddress;
  vipPort: number;
  proto: number;
}

export const BackendSvcKeyCodec = structCodec<BackendSvcKey>(BackendSvcKeyLayout, (k) => {
  const o = BackendSvcKeyLayout.offsets;
  const b = Buffer.alloc(BackendSvcKeyLayout.size);
  k.tunnelDst.bytes.copy(b, o.tunnel_dst, 0, IP_BYTES);
  k.vip.bytes.copy(b, o.vip, 0, IP_BYTES);
  b.writeUInt16BE(k.vipPort, o.vip_port);
  b.writeUInt8(k.proto, o.proto);
  b.writeUInt8(k.vip.family, o.vip_family);
  b.writeUInt8(k.tunnelDst.family, o.tunnel_family);
  return b;
}, (b) => {
  const o = BackendSvcKeyLayout.offsets;
  return {
    tunnelDst: addressOf(b.readUInt8(o.tunnel_family), b.subarray(o.tunnel_dst, o.tunnel_dst + IP_BYTES)),
    vip: addressOf(b.readUInt8(o.vip_family), b.subarray(o.vip, o.vip + IP_BYTES)),
    vipPort: b.readUInt16BE(o.vip_port),
    proto: b.readUInt8(o.proto),
  };
});

/** A backend_flows key: a flow translated toward a pod, as the pod sees it (struct flow_key: src the client, dst the pod). */
export interface BackendFlow {
  client: IpAddress;
  clientPort: number;
  /** The pod's address of the flow's family. */
  pod: IpAddress;
  targetPort: number;
  proto: number;
}

export const BackendFlowCodec = structCodec<BackendFlow>(FlowKeyLayout, (f) => {
  if (f.client.family !== f.pod.family) throw new Error(`flow ${f.client.text} -> ${f.pod.text} mixes families`);
  const o = FlowKeyLayout.offsets;
  const b = Buffer.alloc(FlowKeyLayout.size);
  f.client.bytes.copy(b, o.src, 0, IP_BYTES);
  f.pod.bytes.copy(b, o.dst, 0, IP_BYTES);
  b.writeUInt16BE(f.clientPort, o.sport);
  b.writeUInt16BE(f.targetPort, o.dport);
  b.writeUInt8(f.proto, o.proto);
  b.writeUInt8(f.client.family, o.family);
  return b;
}, (b) => {
  const o = FlowKeyLayout.offsets;
  const family = b.readUInt8(o.family);
  return {
    client: addressOf(family, b.subarray(o.src, o.src + IP_BYTES)),
    clientPort: b.readUInt16BE(o.sport),
    pod: addressOf(family, b.subarray(o.dst, o.dst + IP_BYTES)),
    targetPort: b.readUInt16BE(o.dport),
    proto: b.readUInt8(o.proto),
  };
});

/** One VIP port served by one local pod. */
export interface PodService {
  vip: IpAddress;
  vipPort: number;
  proto: number;
  /** The pod's address of the VIP's family: the inner packet's new destination. */
  pod: IpAddress;
  targetPort: number;
  /** The address the balancer encapsulates to: the pod's address of the tunnel's family (IPv6 for IPv4 in IPv6). */
  tunnelDst?: IpAddress;
}

/** The backend_svcs entry of a pod service (its replies are found per flow: backend_flows). */
export function podServiceEntry(s: PodService): [BackendSvcKey, Endpoint] {
  if (s.pod.family !== s.vip.family) {
    throw new Error(`pod address ${s.pod.text} is not of VIP ${s.vip.text}'s family: the pod needs an address of each family it serves`);
  }
  const pod: Endpoint = { address: s.pod, port: s.targetPort, proto: s.proto };
  return [{ tunnelDst: s.tunnelDst ?? s.pod, vip: s.vip, vipPort: s.vipPort, proto: s.proto }, pod];
}

/** The structs of the backend object's maps; struct flow_key is the balancer's too, checked in both objects. */
export const BACKEND_LAYOUTS: readonly StructLayout[] = [EndpointLayout, BackendSvcKeyLayout, FlowKeyLayout];
