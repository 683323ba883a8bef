/**
 * Node addressing: what backend_node_svcs must hold for the backends on this
 * node that the balancers reach through the node's address. Pure: the desired
 * backends, the pods' interfaces, the node's addresses and the pod plan in,
 * entries and refusals out.
 *
 * One entry per (node address, VIP, port, protocol): the local pods that
 * serve it as slots, each pod in as many slots as its weight gives it
 * (weights divided by their greatest common divisor, so equal weights give
 * one slot a pod), at most NODE_SVC_SLOTS. A draining pod (weight 0) has no
 * slot but keeps its own backend_svcs entry, so its flows go on. A backend is
 * refused, with why, when its pod is (the pod plan), its node address is
 * malformed or not this node's, or it is an IPv6 VIP through an IPv4 node
 * address (no IPv6 in IPv4).
 */
import type { BackendNodeSvc, BackendSvcKey } from '../../bpf/backend-structs.js';
import { NODE_SVC_SLOTS } from '../../bpf/consts.js';
import { compareIp, type IpAddress } from '../../lib/ip.js';
import { type Link, linksWithAddresses } from '../net/iproute.js';
import type { PodInterfaces } from './pod-interfaces.js';
import type { LinkTarget } from './pod-links.js';
import { type PodBackend, parseOrNull, PROTOCOLS, type Refusal, svcKeyId } from './service-plan.js';

/** A pod's weight when the backend gives none. */
export const DEFAULT_POD_WEIGHT = 1;

/** The node's addresses and the devices that carry them (`ip -j addr`). */
export class LocalAddresses {
  private readonly byAddress = new Map<string, LinkTarget>();
  private readonly byName = new Map<string, LinkTarget>();

  constructor(links: readonly (Pick<Link, 'ifname' | 'ifindex'> & { addr_info?: { local?: string }[] })[]) {
    for (const l of links) {
      this.byName.set(l.ifname, { ifname: l.ifname, ifindex: l.ifindex });
      for (const a of l.addr_info ?? []) {
        const address = a.local === undefined ? null : parseOrNull(a.local);
        if (address && !this.byAddress.has(address.text)) this.byAddress.set(address.text, { ifname: l.ifname, ifindex: l.ifindex });
      }
    }
  }

  /** The device that carries the address; null when it is none of this node's. */
  deviceOf(address: IpAddress): LinkTarget | null {
    return this.byAddress.get(address.text) ?? null;
  }

  /** The device of that name; null when there is none. */
  deviceNamed(ifname: string): LinkTarget | null {
    return this.byName.get(ifname) ?? null;
  }
}

/** Reads the node's addresses now (`ip -j addr`). */
export async function readLocalAddresses(): Promise<LocalAddresses> {
  return new LocalAddresses(await linksWithAddresses());
}

export interface PlannedNodeEntry {
  key: BackendSvcKey;
  value: BackendNodeSvc;
  /** The device that carries the node address: the NIC the program goes on. */
  nic: LinkTarget;
}

export interface NodePlan {
  /** By svcKeyId(key). */
  entries: Map<string, PlannedNodeEntry>;
  refused: Refusal[];
}

interface Member {
  backend: PodBackend;
  pod: IpAddress;
  weight: number;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * The slots of these pods (sorted by address, each once): each pod as many
 * times as its weight over the weights' greatest common divisor when that fits
 * in NODE_SVC_SLOTS; else one slot each and the rest shared by weight (largest
 * remainders). Pods past NODE_SVC_SLOTS get none: returned as `left`.
 */
export function apportionSlots(pods: readonly { pod: IpAddress; weight: number }[]): { slots: IpAddress[]; left: IpAddress[] } {
  const active = pods.filter((p) => p.weight > 0);
  const served = active.slice(0, NODE_SVC_SLOTS);
  const left = active.slice(NODE_SVC_SLOTS).map((p) => p.pod);
  if (!served.length) return { slots: [], left };
  const divisor = served.reduce((g, p) => gcd(g, p.weight), 0);
  const units = served.map((p) => p.weight / divisor);
  const total = units.reduce((a, b) => a + b, 0);
  let counts: number[];
  if (total <= NODE_SVC_SLOTS) counts = units;
  else {
    const spare = NODE_SVC_SLOTS - served.length;
    const shares = units.map((u) => (spare * u) / total);
    counts = shares.map((s) => 1 + Math.floor(s));
    let rest = NODE_SVC_SLOTS - counts.reduce((a, b) => a + b, 0);
    const byRemainder = shares.map((s, i) => ({ i, r: s - Math.floor(s) })).sort((a, b) => b.r - a.r || a.i - b.i);
    for (const { i } of byRemainder) {
      if (rest-- <= 0) break;
      counts[i]!++;
    }
  }
  return { slots: served.flatMap((p, i) => Array<IpAddress>(counts[i]!).fill(p.pod)), left };
}

/** The node entry's key and device of one backend, or why it has none. */
function keyOf(b: PodBackend, pods: PodInterfaces, local: LocalAddresses): { key: BackendSvcKey; pod: IpAddress; nic: LinkTarget } | string {
  const node = parseOrNull(b.nodeAddress!);
  if (!node) return `node address "${b.nodeAddress}" is not an IP address`;
  const vip = parseOrNull(b.vip)!;
  if (vip.family === 6 && node.family === 4) return `IPv6 VIP ${vip.text} through IPv4 node address ${node.text}: no IPv6 in IPv4 tunnel is taken off`;
  const nic = local.deviceOf(node);
  if (!nic) return `node address ${node.text} is not this node's: no device here has it`;
  const weight = b.weight ?? DEFAULT_POD_WEIGHT;
  if (!Number.isInteger(weight) || weight < 0) return `weight ${weight} is not a non-negative integer`;
  const iface = pods.of(parseOrNull(b.podAddress)!)!;
  const pod = iface.addresses.find((a) => a.family === vip.family)!;
  return { key: { tunnelDst: node, vip, vipPort: b.vipPort, proto: PROTOCOLS[b.protocol] }, pod, nic };
}

/**
 * The node entries for these backends. `podRefused` are the backends the pod
 * plan refused (their pods cannot be reached): they are left out, not refused twice.
 */
export function planNodeServices(backends: readonly PodBackend[], pods: PodInterfaces, local: LocalAddresses,
  podRefused: ReadonlySet<PodBackend>): NodePlan {
  const groups = new Map<string, { key: BackendSvcKey; nic: LinkTarget; ignoreSourcePort: boolean; members: Member[] }>();
  const refused: Refusal[] = [];
  for (const backend of backends) {
    if (backend.nodeAddress === undefined || podRefused.has(backend)) continue;
    const k = keyOf(backend, pods, local);
    if (typeof k === 'string') {
      refused.push({ backend, reason: k });
      continue;
    }
    const id = svcKeyId(k.key);
    const group = groups.get(id) ?? { key: k.key, nic: k.nic, ignoreSourcePort: backend.ignoreSourcePort ?? false, members: [] };
    groups.set(id, group);
    // The same pod twice (two backends, one pod): the first one's weight counts.
    if (!group.members.some((m) => m.pod.text === k.pod.text)) group.members.push({ backend, pod: k.pod, weight: backend.weight ?? DEFAULT_POD_WEIGHT });
  }
  const entries = new Map<string, PlannedNodeEntry>();
  for (const [id, g] of groups) {
    const members = [...g.members].sort((a, b) => compareIp(a.pod, b.pod));
    const { slots, left } = apportionSlots(members);
    for (const m of members.filter((x) => left.some((a) => a.text === x.pod.text))) {
      refused.push({ backend: m.backend, reason: `more than ${NODE_SVC_SLOTS} pods serve ${g.key.vip.text}:${g.key.vipPort} on this node: this one gets no new flows` });
    }
    entries.set(id, { key: g.key, value: { family: g.key.vip.family as 4 | 6, slots, hashNoSrcPort: g.ignoreSourcePort }, nic: g.nic });
  }
  return { entries, refused };
}
