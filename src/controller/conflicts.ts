/**
 * VIPs claiming the same address, port and protocol on balancers that may
 * share a node: the older keeps the claim (creation time, then
 * namespace/name), the newer is in conflict and is not programmed anywhere.
 *
 * A claim is keyed by the canonical address (one key for every spelling of an
 * IPv6 address), port and protocol, not by balancer: two balancers whose
 * nodes may overlap would otherwise both program the address on one node.
 * Whether two balancers may share a node is asked at decision time (their
 * nodeSelectors change), so nothing here goes stale when a balancer changes.
 *
 * The claims are indexed and kept up to date on every VIP event, so a
 * reconcile looks only at the few VIPs that share one of its claims, never at
 * every VIP of the cluster.
 */
import { DEFAULT_BALANCER, type LoadBalancerVip, vipAddress } from '../api/loadbalancervip.js';
import { canonicalIp } from '../lib/ip.js';
import { MultiMap } from './indexes.js';

/** One claim a VIP lost. heldBy always names the holder (for logs); lossMessage decides what the loser's namespace is shown. */
export interface LostClaim {
  /** As conditions and events show it: "address:port/protocol". */
  claim: string;
  /** The holder, namespace/name. */
  heldBy: string;
  /** Set when the holder is in another namespace than the loser: its name is not shown there. */
  otherNamespace?: true;
  /** The holder's XdpBalancer, when it is not the loser's. */
  balancer?: string;
}

export interface ConflictInfo {
  lost: LostClaim[];
}

/**
 * Whether VIPs of two different balancers may be programmed on one node.
 * A VIP's own balancer always shares its nodes: that is never asked.
 */
export type SharesNodes = (a: string, b: string) => boolean;

/**
 * Whether a VIP may have its address at all (a pool allows it): one that may
 * not is programmed nowhere, so it holds no claim, however old it is.
 */
export type MayClaim = (vip: LoadBalancerVip) => boolean;

/** A lost claim as the loser's condition says it: another namespace's VIP is never named. */
export function lossMessage(l: LostClaim): string {
  const where = l.balancer ? ` on XdpBalancer "${l.balancer}", which may run on the same nodes (the nodeSelectors do not exclude each other)` : '';
  return l.otherNamespace ? `${l.claim} is in use by another namespace${where}` : `${l.claim} is held by ${l.heldBy}${where}`;
}

const ref = (v: LoadBalancerVip) => `${v.metadata.namespace}/${v.metadata.name}`;
const balancerOf = (v: LoadBalancerVip) => v.spec.balancer ?? DEFAULT_BALANCER;

function olderFirst(a: LoadBalancerVip, b: LoadBalancerVip): number {
  const ta = new Date(a.metadata.creationTimestamp ?? 0).getTime();
  const tb = new Date(b.metadata.creationTimestamp ?? 0).getTime();
  return ta - tb || (ref(a) < ref(b) ? -1 : ref(a) > ref(b) ? 1 : 0);
}

/** A claim: canonical address, port and protocol. */
interface Claim {
  key: string;
  /** As conditions and events show it: "address:port/protocol". */
  shown: string;
}

function claimsOf(v: LoadBalancerVip): Claim[] {
  let address: string;
  try {
    address = canonicalIp(vipAddress(v) ?? '');
  } catch {
    return []; // no address yet (to be assigned), or one the schema rejects: nothing to claim
  }
  return v.spec.ports.map((p) => {
    const protocol = p.protocol ?? 'TCP'; // the schema's default, for objects it has not defaulted
    return { key: `${address}|${p.port}/${protocol}`, shown: `${address}:${p.port}/${protocol}` };
  });
}

/** Every VIP's claims, by claim: who holds one is decided among its few claimants. */
export class ClaimIndex {
  private readonly claimants = new MultiMap<LoadBalancerVip>();
  private readonly entries = new Map<string, { vip: LoadBalancerVip; claims: Claim[] }>();

  /** sharesNodes: by default, VIPs of different balancers never conflict. mayClaim: by default every VIP may. */
  constructor(private readonly sharesNodes: SharesNodes = () => false, private readonly mayClaim: MayClaim = () => true) {}

  /** An index of these VIPs, as if each had just been added. */
  static of(vips: Iterable<LoadBalancerVip>, sharesNodes?: SharesNodes, mayClaim?: MayClaim): ClaimIndex {
    const index = new ClaimIndex(sharesNodes, mayClaim);
    for (const v of vips) index.update(v, false);
    return index;
  }

  /**
   * Follows a VIP event. Returns the keys of the other VIPs whose conflicts
   * this may change: every claimant of a claim it had or has now, whatever its
   * balancer (an address moved off a port frees it for all of them).
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

  /** The other VIPs sharing a claim with the VIP keyed namespace/name: they decide each other's conflicts. */
  rivalsOf(key: string): Set<string> {
    const rivals = new Set<string>();
    for (const c of this.entries.get(key)?.claims ?? []) {
      for (const other of this.claimants.get(c.key)) if (ref(other) !== key) rivals.add(ref(other));
    }
    return rivals;
  }

  /** The claims the VIP keyed namespace/name lost, and to whom; undefined when it holds all of them. */
  conflictOf(key: string): ConflictInfo | undefined {
    const entry = this.entries.get(key);
    if (!entry || !this.mayClaim(entry.vip)) return undefined;
    const lost: LostClaim[] = [];
    for (const c of entry.claims) {
      const holder = this.lostTo(c.key, entry.vip);
      if (!holder) continue;
      const loss: LostClaim = { claim: c.shown, heldBy: ref(holder) };
      if (holder.metadata.namespace !== entry.vip.metadata.namespace) loss.otherNamespace = true;
      if (balancerOf(holder) !== balancerOf(entry.vip)) loss.balancer = balancerOf(holder);
      lost.push(loss);
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

  /**
   * Who holds the claim against `vip`, if anyone: oldest first, each claimant
   * keeps the claim unless an older keeper's balancer may share a node with
   * its own. A claimant whose address is not allowed holds nothing (an
   * old VIP cannot squat an address its namespace may not have). A claimant that lost does not block younger ones: it is not
   * programmed, so with "a overlaps b, b overlaps c, a does not overlap c"
   * both a and c keep the claim.
   */
  private lostTo(claim: string, vip: LoadBalancerVip): LoadBalancerVip | undefined {
    const keepers: LoadBalancerVip[] = [];
    for (const v of [...this.claimants.get(claim)].sort(olderFirst)) {
      if (v !== vip && !this.mayClaim(v)) continue;
      const blocker = keepers.find((k) => this.overlap(balancerOf(k), balancerOf(v)));
      if (v === vip) return blocker;
      if (!blocker) keepers.push(v);
    }
    return undefined;
  }

  private overlap(a: string, b: string): boolean {
    return a === b || this.sharesNodes(a, b);
  }
}
