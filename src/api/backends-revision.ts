/**
 * status.backendsRevision: a digest of what a balancer agent programs from a
 * VIP's status (its address and its reals, with their weights), so that
 * Programmed can ask every agent to confirm the backends it holds, not only
 * the spec generation (a backend change does not bump metadata.generation).
 */
import { createHash } from 'node:crypto';
import type { LoadBalancerVip } from './loadbalancervip.js';
import { realsOf } from './programmed-reals.js';

/** Hex digits kept of the sha256: 64 bits, ample to tell one VIP's revisions apart, short enough to read in a message. */
const REVISION_HEX_DIGITS = 16;

/**
 * The revision of what agents program from this status. The same reals in
 * another order are the same revision: the dataplane sorts them by address
 * before building the ring. A field agents do not program (a pod name,
 * drainingSince, an unhealthy reason) changes nothing.
 */
export function backendsRevision(v: Pick<LoadBalancerVip, 'status'>): string {
  const reals = realsOf(v).map((r) => (r.quicServerId === undefined ? `${r.address}=${r.weight}` : `${r.address}=${r.weight}#${r.quicServerId}`)).sort();
  const programmed = JSON.stringify({ address: v.status?.address ?? null, reals });
  return createHash('sha256').update(programmed).digest('hex').slice(0, REVISION_HEX_DIGITS);
}
