/**
 * Two VIPs of one balancer claiming the same address, port and protocol: the
 * older keeps it (creation time, then namespace/name), the newer is in
 * conflict and is not programmed anywhere.
 */
import { DEFAULT_BALANCER, type LoadBalancerVip } from '../api/loadbalancervip.js';
import { canonicalIp } from '../lib/ip.js';

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

function claims(v: LoadBalancerVip): string[] {
  let address: string;
  try {
    address = canonicalIp(v.spec.address);
  } catch {
    return []; // the schema rejects bad addresses; nothing to claim
  }
  const balancer = v.spec.balancer ?? DEFAULT_BALANCER;
  return v.spec.ports.map((p) => `${balancer}|${address}|${p.port}/${p.protocol}`);
}

/** Conflicts of every VIP that has one, keyed by namespace/name. */
export function findConflicts(vips: readonly LoadBalancerVip[]): Map<string, ConflictInfo> {
  const holder = new Map<string, LoadBalancerVip>();
  const out = new Map<string, ConflictInfo>();
  for (const v of [...vips].sort(olderFirst)) {
    for (const claim of claims(v)) {
      const held = holder.get(claim);
      if (!held) {
        holder.set(claim, v);
        continue;
      }
      const info = out.get(ref(v)) ?? { lost: [] };
      const [, address, portProto] = claim.split('|');
      info.lost.push({ claim: `${address}:${portProto}`, heldBy: ref(held) });
      out.set(ref(v), info);
    }
  }
  return out;
}
