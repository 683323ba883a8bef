/**
 * One XdpBalancer per node: two agents on one node replace each other's XDP
 * program on its NIC. When two balancers may run on the same node, the older
 * keeps it and the newer one's DaemonSet is kept off it (a node affinity), and
 * the newer is told which nodes it lost (a condition). Pure.
 *
 * "May run on" is what the DaemonSet controller decides, read from the Nodes
 * (lib/daemon-placement.ts): the node matches the balancer's nodeSelector (and
 * kubernetes.io/os=linux) and its NoSchedule/NoExecute taints are tolerated.
 * It is read from the selectors and taints, not from where agent pods are now,
 * so a rolling update of the older balancer never lets the newer one in.
 */
import type { V1Affinity, V1Condition, V1Node, V1NodeSelectorTerm } from '@kubernetes/client-node';
import { BalancerConditionType, type XdpBalancer } from '../api/xdpbalancer.js';
import { daemonPodFits, NODE_NAME_FIELD } from '../lib/daemon-placement.js';
import { LINUX_NODES } from './agent-daemonset.js';
import { NODES_SHOWN } from './node-overlap.js';

/** Whether the balancer's DaemonSet would place an agent on the node. */
export function mayRunOn(b: XdpBalancer, node: V1Node): boolean {
  return daemonPodFits({ nodeSelector: { ...LINUX_NODES, ...b.spec.nodeSelector }, tolerations: b.spec.tolerations }, node);
}

const created = (b: XdpBalancer) => new Date(b.metadata.creationTimestamp ?? 0).getTime();
const olderFirst = (a: XdpBalancer, b: XdpBalancer) => created(a) - created(b) || (a.metadata.name! < b.metadata.name! ? -1 : 1);

/**
 * Per balancer, the nodes it must stay off and the older balancer that has
 * each: oldest first, a balancer takes every node it may run on that no older
 * one took. A balancer absent from the map loses nothing.
 */
export function excludedNodes(balancers: readonly XdpBalancer[], nodes: readonly V1Node[]): Map<string, Map<string, string>> {
  const takenBy = new Map<string, string>();
  const out = new Map<string, Map<string, string>>();
  for (const b of [...balancers].sort(olderFirst)) {
    const lost = new Map<string, string>();
    for (const node of nodes) {
      const name = node.metadata?.name;
      if (!name || !mayRunOn(b, node)) continue;
      const holder = takenBy.get(name);
      if (holder === undefined) takenBy.set(name, b.metadata.name!);
      else lost.set(name, holder);
    }
    if (lost.size) out.set(b.metadata.name!, lost);
  }
  return out;
}

/** Keeps what placement reads: name, labels, taints (a Node's images and conditions are most of its size). */
export function trimNodeForPlacement(n: V1Node): void {
  n.metadata = { name: n.metadata?.name, resourceVersion: n.metadata?.resourceVersion, labels: n.metadata?.labels };
  n.spec = { taints: n.spec?.taints };
  // Its InternalIPs: where Node addressing sends its pods' traffic.
  const internal = n.status?.addresses?.filter((a) => a.type === NODE_INTERNAL_IP).map((a) => ({ type: a.type, address: a.address }));
  if (internal?.length) n.status = { addresses: internal };
  else delete n.status;
}

/** The node address type Node addressing encapsulates to. */
export const NODE_INTERNAL_IP = 'InternalIP';

/** A node's InternalIPs, as the cache trimmed them. */
export const internalIps = (n: V1Node | undefined): string[] =>
  (n?.status?.addresses ?? []).filter((a) => a.type === NODE_INTERNAL_IP).map((a) => a.address);

/**
 * The agent pods' affinity: never on these nodes (by name); undefined when
 * none are excluded. A node field requirement takes one value (the API
 * refuses more), and a term's requirements all hold: one NotIn per node.
 */
export function excludeNodesAffinity(nodes: readonly string[]): V1Affinity | undefined {
  if (!nodes.length) return undefined;
  const term: V1NodeSelectorTerm = { matchFields: [...nodes].sort().map((n) => ({ key: NODE_NAME_FIELD, operator: 'NotIn', values: [n] })) };
  return { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [term] } } };
}


/** The NodesExcluded condition of a balancer, from what it lost (node -> older balancer); lastTransitionTime is the caller's. */
export function nodesExcludedCondition(lost: ReadonlyMap<string, string> | undefined, generation: number | undefined): Omit<V1Condition, 'lastTransitionTime'> {
  if (!lost?.size) {
    return { type: BalancerConditionType.NodesExcluded, status: 'False', reason: 'NoneExcluded', message: 'no older XdpBalancer selects its nodes', observedGeneration: generation };
  }
  const byHolder = new Map<string, string[]>();
  for (const [node, holder] of [...lost].sort(([a], [b]) => a.localeCompare(b))) byHolder.set(holder, [...(byHolder.get(holder) ?? []), node]);
  const each = [...byHolder].map(([holder, nodes]) => {
    const more = nodes.length > NODES_SHOWN ? ` and ${nodes.length - NODES_SHOWN} more` : '';
    return `${nodes.slice(0, NODES_SHOWN).join(', ')}${more} to XdpBalancer "${holder}"`;
  });
  return {
    type: BalancerConditionType.NodesExcluded,
    status: 'True',
    reason: 'OlderBalancer',
    message: `${lost.size} node(s) it selects belong to an older balancer that selects them too (${each.join('; ')}): `
      + 'its agents are kept off them (one balancer per node); make the nodeSelectors exclude each other, or taint and tolerate',
    observedGeneration: generation,
  };
}
