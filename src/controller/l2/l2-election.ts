/**
 * L2 mode: which node answers ARP/NDP for a VIP. Pure.
 *
 * Candidates are the nodes whose agent is alive (holds its Lease) and reports
 * the VIP programmed without error. The node already announcing keeps it
 * while it stays a candidate: a move costs every client a gratuitous ARP and
 * a moment of doubt, so it happens only when the node leaves. Otherwise the
 * VIP goes to the candidate with the lowest hash of (address, node), as
 * MetalLB chooses: every controller replica picks the same node, and VIPs
 * spread over the nodes instead of piling onto the first one.
 */
import type { L2Status, LoadBalancerVip } from '../../api/loadbalancervip.js';
import type { NodeStatus } from '../../api/xdpnodereport.js';
import { stableHash } from '../../lib/stable-hash.js';

export interface L2Input {
  vip: LoadBalancerVip;
  /** What each node's agent reports of the VIP. */
  nodes: readonly NodeStatus[];
  /** The address the VIP is allowed to have; undefined: nothing to announce. */
  address: string | undefined;
  /** Nodes whose agent holds an unexpired Lease. */
  alive: ReadonlySet<string>;
  now: Date;
  /**
   * The node this controller last named, when it knows better than the VIP
   * it read: its own status write may not be in its cache yet, and the VIP
   * must not move because of that.
   */
  current?: L2Status;
}

export function l2Candidates(nodes: readonly NodeStatus[], alive: ReadonlySet<string>): string[] {
  return nodes
    .filter((n) => n.programmedGeneration !== undefined && !n.lastError && alive.has(n.node))
    .map((n) => n.node)
    .sort();
}

export function electL2Node(input: L2Input): L2Status | undefined {
  const { vip, address, alive, now } = input;
  if (address === undefined) return undefined;
  const candidates = l2Candidates(input.nodes, alive);
  const current = input.current ?? vip.status?.l2;
  if (current && candidates.includes(current.node)) return current;
  let best: string | undefined;
  let bestHash = Infinity;
  for (const node of candidates) {
    const h = stableHash(`${address}/${node}`);
    if (h < bestHash) [best, bestHash] = [node, h];
  }
  return best === undefined ? undefined : { node: best, since: now.toISOString() };
}
