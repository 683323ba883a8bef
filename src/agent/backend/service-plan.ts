/**
 * What backend_svcs must hold for the backends on this node: one entry per
 * (address the balancer may tunnel to, VIP, port, protocol). Pure: the
 * desired backends and the pods' interfaces in, entries and refusals out.
 *
 * A backend names its pod by one address (the one in the VIP's status, which
 * the balancer encapsulates to). The pod's interface gives its other
 * addresses, so a dual-stack pod gets an entry for each outer family the
 * program can take off: an IPv4 VIP through the pod's IPv4 address (IPv4 in
 * IPv4) and through its IPv6 one (IPv4 in IPv6); an IPv6 VIP through its IPv6
 * address only (the program has no IPv6 in IPv4). The inner destination is
 * always the pod's address of the VIP's family.
 */
import { type BackendSvcKey, BackendSvcKeyCodec, type Endpoint } from '../../bpf/backend-structs.js';
import { IPPROTO_TCP, IPPROTO_UDP } from '../../bpf/consts.js';
import type { Protocol } from '../../api/types.js';
import { type IpAddress, parseIp } from '../../lib/ip.js';
import type { PodInterfaces } from './pod-interfaces.js';

/** One VIP port served by one pod on this node: what the controller gives from the VIP's status. */
export interface PodBackend {
  vip: string;
  /** The VIP's port; 0 (all ports) is not served in pod mode. */
  vipPort: number;
  protocol: Protocol;
  /** Any of the pod's addresses; the balancer encapsulates to it. */
  podAddress: string;
  /** The pod's port the VIP port is translated to. */
  targetPort: number;
  /**
   * Node addressing: the node's address the balancers encapsulate to (the
   * controller's status.backends[].nodeIP); this node then picks the pod.
   * Absent: Pod addressing, the balancers encapsulate to podAddress.
   */
  nodeAddress?: string;
  /** Node addressing: the pod's share of the node's new flows for the VIP port (0 while draining). Default 1. */
  weight?: number;
  /** Node addressing: the VIP hashes by client address only (spec.hashing.ignoreSourcePort), and so does the node. */
  ignoreSourcePort?: boolean;
}

export interface PlannedEntry {
  key: BackendSvcKey;
  value: Endpoint;
  /** The pod's host-side veth, which must carry the programs. */
  ifname: string;
}

export interface Refusal {
  backend: PodBackend;
  reason: string;
}

export interface ServicePlan {
  /** By svcKeyId(key). */
  entries: Map<string, PlannedEntry>;
  refused: Refusal[];
}

const MIN_PORT = 1;
const MAX_PORT = 65535;
export const PROTOCOLS: Record<Protocol, number> = { TCP: IPPROTO_TCP, UDP: IPPROTO_UDP };

/** A backend_svcs key as a string, to compare planned entries with the map's. */
export const svcKeyId = (k: BackendSvcKey): string => BackendSvcKeyCodec.encode(k).toString('hex');

/** "198.19.0.10:80/TCP -> 10.244.1.5:8080", for logs and refusals. */
export function describeBackend(b: PodBackend): string {
  return `${b.vip}:${b.vipPort}/${b.protocol} -> ${b.nodeAddress === undefined ? '' : `node ${b.nodeAddress}, `}${b.podAddress}:${b.targetPort}`;
}

export const validPort = (p: number): boolean => Number.isInteger(p) && p >= MIN_PORT && p <= MAX_PORT;

export function parseOrNull(text: string): IpAddress | null {
  try {
    return parseIp(text);
  } catch {
    return null;
  }
}

/** The entries of one backend, or why it cannot have any. */
function entriesOf(b: PodBackend, pods: PodInterfaces): PlannedEntry[] | string {
  const vip = parseOrNull(b.vip);
  if (!vip) return `VIP "${b.vip}" is not an IP address`;
  const pod = parseOrNull(b.podAddress);
  if (!pod) return `pod address "${b.podAddress}" is not an IP address`;
  if (!validPort(b.vipPort)) return `VIP port ${b.vipPort} is not in ${MIN_PORT}..${MAX_PORT} (all-port VIPs are not served to pods: give each port)`;
  if (!validPort(b.targetPort)) return `target port ${b.targetPort} is not in ${MIN_PORT}..${MAX_PORT}`;
  const proto = PROTOCOLS[b.protocol];
  if (proto === undefined) return `protocol "${String(b.protocol)}" is neither TCP nor UDP`;
  const iface = pods.of(pod);
  if (!iface) {
    return `pod address ${pod.text} is not local: no host route through a veth reaches it on this node (is the pod on this node, and its CNI one that routes each pod through its own veth?)`;
  }
  const inner = pod.family === vip.family ? pod : iface.addresses.find((a) => a.family === vip.family);
  if (!inner) return `the pod behind ${iface.ifname} has no IPv${vip.family} address for IPv${vip.family} VIP ${vip.text}`;
  // IPv6 in IPv4 is no tunnel the program takes off: an IPv6 VIP reaches the pod through its IPv6 address only.
  const tunnels = vip.family === 4 ? iface.addresses : iface.addresses.filter((a) => a.family === 6);
  const value: Endpoint = { address: inner, port: b.targetPort, proto };
  return tunnels.map((tunnelDst) => ({ key: { tunnelDst, vip, vipPort: b.vipPort, proto }, value, ifname: iface.ifname }));
}

const sameEndpoint = (a: Endpoint, b: Endpoint): boolean => a.address.text === b.address.text && a.port === b.port && a.proto === b.proto;

/**
 * The entries for these backends, and the backends refused with why. Two
 * backends that want one key with different values (the same VIP port on
 * one pod to two target ports) conflict: the first in input order keeps it.
 */
export function planServices(backends: readonly PodBackend[], pods: PodInterfaces): ServicePlan {
  const entries = new Map<string, PlannedEntry>();
  const refused: Refusal[] = [];
  for (const backend of backends) {
    const planned = entriesOf(backend, pods);
    if (typeof planned === 'string') {
      refused.push({ backend, reason: planned });
      continue;
    }
    const clash = planned.find((e) => {
      const had = entries.get(svcKeyId(e.key));
      return had && !sameEndpoint(had.value, e.value);
    });
    if (clash) {
      const had = entries.get(svcKeyId(clash.key))!;
      refused.push({ backend, reason: `conflicts with an earlier backend: ${clash.key.vip.text}:${clash.key.vipPort} through ${clash.key.tunnelDst.text} already goes to port ${had.value.port}` });
      continue;
    }
    for (const e of planned) entries.set(svcKeyId(e.key), e);
  }
  return { entries, refused };
}
