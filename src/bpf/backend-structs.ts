/**
 * The backend program's map keys and values (bpf/include/xdplb_structs.h,
 * bpf/backend.bpf.c), checked against the object's BTF by
 * test/bpf/layout.test.ts like structs.ts.
 */
import { type IpAddress, IP_BYTES } from '../lib/ip.js';
import type { Codec } from '../libbpf/typed-map.js';
import { type Family, NODE_SVC_SLOTS, VIP_F_HASH_NO_SRC_PORT } from './consts.js';
import { AddrLayout, addressOf, FlowKeyLayout, type StructLayout, structCodec, type VipKey, VipKeyCodec, VipKeyLayout } from './structs.js';

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

/** struct backend_node_svc: the local pods a (node address, VIP, port, protocol) spreads new flows over. */
export const BackendNodeSvcLayout = {
  cName: 'backend_node_svc',
  size: 12 + NODE_SVC_SLOTS * IP_BYTES,
  offsets: { slots: 0, flags: 4, family: 8, pad: 9, pods: 12 },
} as const satisfies StructLayout;

export interface BackendNodeSvc {
  /** The VIP's address family, which every slot's address has. */
  family: Family;
  /** One pod address (of the VIP's family) per slot, a pod in as many as its weight gives it; empty: every pod drains. */
  slots: IpAddress[];
  /** Pick by client address only (the VIP hashes without the source port). */
  hashNoSrcPort: boolean;
}

export const BackendNodeSvcCodec = structCodec<BackendNodeSvc>(BackendNodeSvcLayout, (v) => {
  if (v.slots.length > NODE_SVC_SLOTS) throw new Error(`${v.slots.length} pod slots: at most ${NODE_SVC_SLOTS}`);
  const other = v.slots.find((a) => a.family !== v.family);
  if (other) throw new Error(`pod slot ${other.text} is not an IPv${v.family} address`);
  const o = BackendNodeSvcLayout.offsets;
  const b = Buffer.alloc(BackendNodeSvcLayout.size);
  b.writeUInt32LE(v.slots.length, o.slots);
  b.writeUInt32LE(v.hashNoSrcPort ? VIP_F_HASH_NO_SRC_PORT : 0, o.flags);
  b.writeUInt8(v.family, o.family);
  v.slots.forEach((a, i) => a.bytes.copy(b, o.pods + i * IP_BYTES, 0, IP_BYTES));
  return b;
}, (b) => {
  const o = BackendNodeSvcLayout.offsets;
  const count = Math.min(b.readUInt32LE(o.slots), NODE_SVC_SLOTS);
  const family = b.readUInt8(o.family) as Family;
  const slots = Array.from({ length: count }, (_, i) => addressOf(family, b.subarray(o.pods + i * IP_BYTES, o.pods + (i + 1) * IP_BYTES)));
  return { family, slots, hashNoSrcPort: (b.readUInt32LE(o.flags) & VIP_F_HASH_NO_SRC_PORT) !== 0 };
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

/** struct flow_key's fields, one family. */
interface FlowParts {
  src: IpAddress;
  sport: number;
  dst: IpAddress;
  dport: number;
  proto: number;
}

function encodeFlowKey(f: FlowParts): Buffer {
  if (f.src.family !== f.dst.family) throw new Error(`flow ${f.src.text} -> ${f.dst.text} mixes families`);
  const o = FlowKeyLayout.offsets;
  const b = Buffer.alloc(FlowKeyLayout.size);
  f.src.bytes.copy(b, o.src, 0, IP_BYTES);
  f.dst.bytes.copy(b, o.dst, 0, IP_BYTES);
  b.writeUInt16BE(f.sport, o.sport);
  b.writeUInt16BE(f.dport, o.dport);
  b.writeUInt8(f.proto, o.proto);
  b.writeUInt8(f.src.family, o.family);
  return b;
}

function decodeFlowKey(b: Buffer): FlowParts {
  const o = FlowKeyLayout.offsets;
  const family = b.readUInt8(o.family);
  return {
    src: addressOf(family, b.subarray(o.src, o.src + IP_BYTES)),
    sport: b.readUInt16BE(o.sport),
    dst: addressOf(family, b.subarray(o.dst, o.dst + IP_BYTES)),
    dport: b.readUInt16BE(o.dport),
    proto: b.readUInt8(o.proto),
  };
}

/** A codec of struct flow_key under other names for its fields. */
const flowKeyCodec = <T>(to: (t: T) => FlowParts, from: (f: FlowParts) => T) =>
  structCodec<T>(FlowKeyLayout, (t) => encodeFlowKey(to(t)), (b) => from(decodeFlowKey(b)));

export const BackendFlowCodec = flowKeyCodec<BackendFlow>(
  (f) => ({ src: f.client, sport: f.clientPort, dst: f.pod, dport: f.targetPort, proto: f.proto }),
  (f) => ({ client: f.src, clientPort: f.sport, pod: f.dst, targetPort: f.dport, proto: f.proto }));

/** A backend_node_flows key: a flow as its client sent it (struct flow_key: src the client, dst the VIP). */
export interface ClientFlow {
  client: IpAddress;
  clientPort: number;
  vip: IpAddress;
  vipPort: number;
  proto: number;
}

export const ClientFlowCodec = flowKeyCodec<ClientFlow>(
  (f) => ({ src: f.client, sport: f.clientPort, dst: f.vip, dport: f.vipPort, proto: f.proto }),
  (f) => ({ client: f.src, clientPort: f.sport, vip: f.dst, vipPort: f.dport, proto: f.proto }));

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
export const BACKEND_LAYOUTS: readonly StructLayout[] = [EndpointLayout, BackendSvcKeyLayout, FlowKeyLayout, BackendNodeSvcLayout, AddrLayout];
