/**
 * VIPs served by the lab's pods (Lab.up({ pods })): the balancers' VIP file
 * and each worker's backend file, from one list, as the controller derives
 * both from a LoadBalancerVip with delivery Node. Port translation on every
 * VIP: the client's port (80, 53) reaches the pods' POD_PORT. A routed
 * worker's pods are reals by their own address (Pod addressing); an unrouted
 * worker's are reached through the worker's address (Node addressing: the
 * node is one real, weighted by its pods, and picks the pod).
 */
import { isIPv6 } from 'node:net';
import type { StandaloneVip } from '../../src/agent/sources/standalone-config.js';
import type { Protocol } from '../../src/api/types.js';
import { type Lab, type LabPod, POD_PORT, type StandaloneBackend } from './lab.js';

/** IPv4 VIP, pods' IPv4 addresses (IPv4 in IPv4). */
export const POD_VIP4 = '198.19.0.20';
/** IPv4 VIP, pods' IPv6 addresses (IPv4 in IPv6, as in an IPv6 cluster). */
export const POD_VIP4_V6PODS = '198.19.0.21';
/** IPv6 VIP, pods' IPv6 addresses (IPv6 in IPv6). */
export const POD_VIP6 = '2001:db8:19::20';
export const POD_VIP_TCP_PORT = 80;
export const POD_VIP_UDP_PORT = 53;

export interface PodVip {
  name: string;
  address: string;
  ports: { port: number; protocol: Protocol }[];
  /** Which of a pod's addresses the balancer encapsulates to. */
  podAddress: (p: LabPod) => string;
}

const BOTH = [{ port: POD_VIP_TCP_PORT, protocol: 'TCP' as const }, { port: POD_VIP_UDP_PORT, protocol: 'UDP' as const }];
export const POD_VIPS: readonly PodVip[] = [
  { name: 'pods4', address: POD_VIP4, ports: BOTH, podAddress: (p) => p.v4 },
  { name: 'pods4-v6pods', address: POD_VIP4_V6PODS, ports: [BOTH[0]!], podAddress: (p) => p.v6 },
  { name: 'pods6', address: POD_VIP6, ports: BOTH, podAddress: (p) => p.v6 },
];

/** Where a balancer encapsulates a VIP's packets for this pod: its address, or (unrouted worker) its node's of the same family. */
export function tunnelOf(v: PodVip, p: LabPod): string {
  const own = v.podAddress(p);
  if (p.worker.routed) return own;
  return isIPv6(own) ? p.worker.v6 : p.worker.v4;
}

/**
 * The balancers' VIPs: the given pods as reals of each (a node real for an
 * unrouted worker's pods, weighted by how many); `draining` pods at weight 0
 * (their flows stay, no new ones).
 */
export function podVips(pods: readonly LabPod[], draining: readonly LabPod[] = []): StandaloneVip[] {
  return POD_VIPS.map((v) => {
    const reals = new Map<string, number>();
    for (const p of pods) reals.set(tunnelOf(v, p), (reals.get(tunnelOf(v, p)) ?? 0) + (draining.includes(p) ? 0 : 1));
    return { name: v.name, address: v.address, ports: v.ports, reals: [...reals].map(([address, weight]) => ({ address, weight })) };
  });
}

/** A worker's backend file: each of its given pods serves each VIP port on POD_PORT (through the node's address when unrouted). */
export function podBackends(pods: readonly LabPod[]): StandaloneBackend[] {
  return POD_VIPS.flatMap((v) => v.ports.flatMap(({ port, protocol }) => pods.map((p) => ({
    vip: v.address, vipPort: port, protocol, podAddress: v.podAddress(p), targetPort: POD_PORT,
    ...(p.worker.routed ? {} : { nodeAddress: tunnelOf(v, p) }),
  }))));
}

/** Each worker's backend file: the given pods of that worker; waits until the running backend agents applied them. */
export async function applyPodBackends(lab: Lab, pods: readonly LabPod[]): Promise<void> {
  for (const w of lab.workers) await lab.applyBackends(w, podBackends(pods.filter((p) => p.worker === w)));
}

/**
 * Serves the pod VIPs by these pods: the workers' backend files first, then
 * the balancers' VIPs, so no tunnel packet reaches a pod before its node can
 * hand it over.
 */
export async function servePods(lab: Lab, pods: readonly LabPod[], draining: readonly LabPod[] = []): Promise<void> {
  await applyPodBackends(lab, pods);
  if (lab.balancers.some((b) => b.agent)) await lab.applyVips(podVips(pods, draining));
  else lab.writeVips(podVips(pods, draining));
}
