/**
 * Two VIPs of one balancer claiming the same address, port and protocol: the
 * older keeps it (creation time, then namespace/name), the newer is in
 * conflict and is not programmed anywhere.
 *
 * The claims are indexed and kept up to date on every VIP event, so a
 * reconcile looks only at the few VIPs that share one of its claims, never at
 * every VIP of the cluster.
 */
import { DEFAULT_BALANCER, type LoadBalancerVip } from '../api/loadbalancervip.js';
import { canonicalIp } from '../lib/ip.js';
import { MultiMap } from './indexes.js';

export interface ConflictInfo {
  /** "address:port/protocol" claims lost, each with the VIP that holds it. */
  lost: { claim: string; heldBy: string }[];
}

const ref = (v: LoadBalancerVip) => `${v.metadata.namespace}/${v.metadata.name}`;

function olderFirst(a: LoadBalancerVip, b: LoadBalancerVip): number {
  const ta = new Date(a.metadata.creationTimestamp ?? 0).getTime();
  const tb = new Date(b.metadata.creationTimestamp ?? 0).getTime();
  return ta - tb || (ref(a) < ref(b) ? -1 : ref(a) > ref(b) ? 1 : 0);
}

/** A claim: balancer, canonical address, port and protocol. */
interface Claim {
  key: string;
  /** As conditions and events show it: "address:port/protocol". */
  shown: string;
}

function claimsOf(v: LoadBalancerVip): Claim[] {
  let address: string;
  try {
    address = canonicalIp(v.spec.address);
  } catch {
    return []; // the schema rejects bad addresses; nothing to claim
  }
  const balancer = v.spec.balancer ?? DEFAULT_BALANCER;
  return v.spec.ports.map((p) => ({ key: `${balancer}|${address}|${p.port}/${p.protocol}`, shown: `${address}:${p.port}/${p.protocol}` }));
}

/** Every VIP's claims, by claim: who holds one is the oldest of its few claimants. */
export class ClaimIndex {
  private readonly claimants = new MultiMap<LoadBalancerVip>();
  private readonly entries = new Map<string, { vip: LoadBalancerVip; claims: Claim[] }>();

  /**
   * Follows a VIP event. Returns the keys of the other VIPs whose conflicts
   * this may change: those sharing a claim it had or has now.
   */
  update(vip: LoadBalancerVip, deleted: boolean): Set<string> {
    const key = ref(vip);
    const rivals = new Set<string>();
    const old = this.entries.get(key);
    if (old) {
      for (const c of old.claims) {
        this.claimants.delete(c.key, old.vip);
        for (const other of this.claimants.get(c.key)) rivals.add(ref(other));
      }
      this.entries.delete(key);
    }
    if (deleted) return rivals;
    const claims = claimsOf(vip);
    for (const c of claims) {
      for (const other of this.claimants.get(c.key)) rivals.add(ref(other));
      this.claimants.add(c.key, vip);
    }
    this.entries.set(key, { vip, claims });
    return rivals;
  }

  /** The claims the VIP keyed namespace/name lost, and to whom; undefined when it holds all of them. */
  conflictOf(key: string): ConflictInfo | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    const lost: ConflictInfo['lost'] = [];
    for (const c of entry.claims) {
      const holder = this.holderOf(c.key);
      if (holder !== entry.vip) lost.push({ claim: c.shown, heldBy: ref(holder) });
    }
    return lost.length ? { lost } : undefined;
  }

  /** Conflicts of every VIP that has one, keyed by namespace/name, oldest VIP first. */
  conflicts(): Map<string, ConflictInfo> {
    const out = new Map<string, ConflictInfo>();
    for (const { vip } of [...this.entries.values()].sort((a, b) => olderFirst(a.vip, b.vip))) {
      const info = this.conflictOf(ref(vip));
      if (info) out.set(ref(vip), info);
    }
    return out;
  }

  private holderOf(claim: string): LoadBalancerVip {
    let holder: LoadBalancerVip | undefined;
    for (const v of this.claimants.get(claim)) if (!holder || olderFirst(v, holder) < 0) holder = v;
    return holder!;
  }
}
