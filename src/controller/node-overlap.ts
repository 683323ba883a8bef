/**
 * Which XdpBalancers share nodes. Two answers, for two questions:
 *
 * - May two balancers ever run on one node? Asked to decide VIP conflicts, so
 *   it must not flap with scheduling: it is read from the nodeSelectors alone.
 *   Two selectors exclude each other only when they require one label key with
 *   different values (a node has one value per key); otherwise some node may
 *   carry both, so the balancers are taken to overlap. Taints and tolerations
 *   are not looked at (the controller does not watch Nodes): balancers kept
 *   apart by taints alone still count as overlapping.
 * - Do two balancers run on one node now? Read from the agent pods the
 *   DaemonSets placed, and reported on the XdpBalancers: two agents on one
 *   node replace each other's XDP program on its NIC.
 */
import type { V1Condition, V1Pod } from '@kubernetes/client-node';
import { BALANCER_LABEL } from '../api/agent-pod.js';
import { BalancerConditionType } from '../api/xdpbalancer.js';

/** Whether no node can match both selectors: they require one label key with different values. */
export function nodeSelectorsDisjoint(a: Record<string, string> = {}, b: Record<string, string> = {}): boolean {
  return Object.entries(a).some(([k, v]) => Object.prototype.hasOwnProperty.call(b, k) && b[k] !== v);
}

const podKey = (p: V1Pod) => `${p.metadata?.namespace}/${p.metadata?.name}`;

/** The nodes each balancer's agent pods are on, from pod events. */
export class AgentNodes {
  /** balancer -> node -> agent pods there (two during a rolling update). */
  private readonly nodes = new Map<string, Map<string, number>>();
  private readonly placed = new Map<string, { balancer: string; node: string }>();

  /** Follows an agent pod event; returns the balancers whose shared nodes may have changed. */
  update(pod: V1Pod, deleted: boolean): Set<string> {
    const key = podKey(pod);
    const touched = new Set<string>();
    const old = this.placed.get(key);
    if (old) {
      this.count(old.balancer, old.node, -1);
      this.placed.delete(key);
      for (const b of this.on(old.node, old.balancer)) touched.add(b);
    }
    const balancer = pod.metadata?.labels?.[BALANCER_LABEL];
    const node = pod.spec?.nodeName;
    if (deleted || !balancer || !node) return touched;
    this.placed.set(key, { balancer, node });
    this.count(balancer, node, 1);
    for (const b of this.on(node, balancer)) touched.add(b);
    return touched;
  }

  /** Other balancers with an agent on one of this balancer's nodes, each with those nodes (sorted). */
  sharedWith(balancer: string): Map<string, string[]> {
    const mine = this.nodes.get(balancer);
    const out = new Map<string, string[]>();
    if (!mine) return out;
    for (const [other, theirs] of [...this.nodes].sort(([a], [b]) => a.localeCompare(b))) {
      if (other === balancer) continue;
      const both = [...mine.keys()].filter((n) => theirs.has(n)).sort();
      if (both.length) out.set(other, both);
    }
    return out;
  }

  /** Balancers with an agent on the node, and the one just moved there or away. */
  private on(node: string, balancer: string): string[] {
    return [balancer, ...[...this.nodes].filter(([b, ns]) => b !== balancer && ns.has(node)).map(([b]) => b)];
  }

  private count(balancer: string, node: string, delta: number): void {
    let ns = this.nodes.get(balancer);
    if (!ns) this.nodes.set(balancer, (ns = new Map()));
    const n = (ns.get(node) ?? 0) + delta;
    if (n > 0) ns.set(node, n);
    else ns.delete(node);
    if (!ns.size) this.nodes.delete(balancer);
  }
}

/** Nodes named in a message, at most: a large overlap is summarised. */
export const NODES_SHOWN = 3;

/** The NodeOverlap condition of a balancer (lastTransitionTime is the caller's). */
export function nodeOverlapCondition(shared: Map<string, string[]>, generation: number | undefined): Omit<V1Condition, 'lastTransitionTime'> {
  if (!shared.size) {
    return { type: BalancerConditionType.NodeOverlap, status: 'False', reason: 'NoSharedNodes', message: 'no other XdpBalancer has an agent on its nodes', observedGeneration: generation };
  }
  const each = [...shared].map(([b, nodes]) => {
    const more = nodes.length > NODES_SHOWN ? ` and ${nodes.length - NODES_SHOWN} more` : '';
    return `XdpBalancer "${b}" on ${nodes.slice(0, NODES_SHOWN).join(', ')}${more}`;
  });
  return {
    type: BalancerConditionType.NodeOverlap,
    status: 'True',
    reason: 'SharedNodes',
    message: `agents of another balancer run on its nodes (${each.join('; ')}): two agents on one node replace each other's XDP program; `
      + 'make the nodeSelectors exclude each other (one label key, different values)',
    observedGeneration: generation,
  };
}
