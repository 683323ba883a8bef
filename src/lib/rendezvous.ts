/**
 * Rendezvous (highest random weight) hashing: which of a set of nodes owns a
 * key. Whoever has the same node list computes the same owner, with no
 * coordination; a node that joins or leaves moves only the keys it gains or
 * held (about 1/N of them). The health checks divide backends among the
 * balancer nodes with it (agents and controller alike). Pure.
 */
import { fmix32 } from './maglev.js';

/** FNV-1a, 32 bits: a cheap hash of a key, computed once per key and node. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}


/** The weight of one (node, key) pair; the highest weight owns the key (ties: the smaller node name). */
const weight = (nodeHash: number, keyHash: number) => fmix32(fmix32(keyHash) ^ nodeHash);

export class Rendezvous {
  private readonly nodes: { name: string; hash: number }[];

  /** `nodes`: the nodes that probe, in any order (duplicates ignored). */
  constructor(nodes: Iterable<string>) {
    this.nodes = [...new Set(nodes)].sort().map((name) => ({ name, hash: fnv1a(name) }));
  }

  get size(): number {
    return this.nodes.length;
  }

  /**
   * The node that owns `key`, or undefined when there is none; `excluding`
   * names a node that may own it only when it is the only node.
   */
  ownerOf(key: string, excluding?: string): string | undefined {
    const k = fnv1a(key);
    let best: string | undefined;
    let bestWeight = -1;
    const others = excluding !== undefined && this.nodes.some((n) => n.name !== excluding);
    for (const n of this.nodes) {
      if (others && n.name === excluding) continue;
      const w = weight(n.hash, k);
      if (w > bestWeight) {
        best = n.name;
        bestWeight = w;
      }
    }
    return best;
  }

  /** A short digest of the node list: two lists with the same digest assign alike. */
  digest(): string {
    return fnv1a(this.nodes.map((n) => n.name).join('\n')).toString(16).padStart(8, '0');
  }
}

export { fnv1a as hashKey };
