/**
 * Pools must not overlap. Of two pools that share addresses the older keeps
 * working and the newer is refused, with a message naming the older one.
 *
 * A pool is refused when one of its CIDRs overlaps a CIDR of any older pool,
 * whether that pool is accepted or not. So a pool's fate depends only on the
 * pools older than it: creating a pool never refuses an existing one, deleting
 * one never refuses another (it may let a newer one in). Only an edit that
 * grows an older pool into a newer one refuses the newer one; the VIPs that
 * then lose their addresses are reported on each VIP.
 */
import { PoolConditionReason } from '../../api/addresspool.js';
import type { XdpAddressPool } from '../../api/addresspool.js';
import type { Cidr } from './cidr.js';
import { olderFirst, parsePool, type Pool } from './pool.js';

interface Placed {
  cidr: Cidr;
  pool: Pool;
  /** The pool's place in age order. */
  age: number;
}

/**
 * Parses the pools and decides which are refused. Returns them oldest first,
 * `refused` set on the refused ones. O(n log n + overlapping pairs) in the
 * number of CIDRs: CIDRs either nest or are disjoint, so one sweep in address
 * order with a stack of the CIDRs still open finds every overlap.
 */
export function resolvePools(resources: readonly XdpAddressPool[]): Pool[] {
  const pools = resources.map(parsePool).sort(olderFirst);
  const placed: Placed[] = pools.flatMap((pool, age) => pool.cidrs.map((cidr) => ({ cidr, pool, age })));
  placed.sort((a, b) => a.cidr.family - b.cidr.family || (a.cidr.first < b.cidr.first ? -1 : a.cidr.first > b.cidr.first ? 1 : a.cidr.prefix - b.cidr.prefix));
  // Sorted by first address, wider first on a tie: each CIDR on the stack contains the ones pushed above it.
  const overlaps = new Map<Pool, string[]>();
  const note = (pool: Pool, what: string) => {
    const list = overlaps.get(pool) ?? [];
    if (!list.includes(what)) list.push(what);
    overlaps.set(pool, list);
  };
  const stack: Placed[] = [];
  for (const cur of placed) {
    while (stack.length > 0 && (stack.at(-1)!.cidr.family !== cur.cidr.family || stack.at(-1)!.cidr.last < cur.cidr.first)) stack.pop();
    for (const open of stack) {
      // open contains cur.
      if (open.pool === cur.pool) {
        note(cur.pool, `its own ${cur.cidr.text} and ${open.cidr.text} overlap`);
        continue;
      }
      const [older, newer] = open.age < cur.age ? [open, cur] : [cur, open];
      note(newer.pool, `${newer.cidr.text} overlaps ${older.cidr.text} of the older pool ${older.pool.name}`);
    }
    stack.push(cur);
  }
  for (const [pool, what] of overlaps) {
    if (!pool.refused) pool.refused = `overlaps: ${what.join('; ')}`;
  }
  return pools;
}

/** The pool's Accepted condition, without its time and generation. */
export function acceptedCondition(pool: Pool): { status: 'True' | 'False'; reason: string; message: string } {
  if (!pool.refused) return { status: 'True', reason: PoolConditionReason.Accepted, message: 'the pool overlaps no older pool; its addresses may be used' };
  const reason = pool.refused.startsWith('overlaps') ? PoolConditionReason.Overlaps : PoolConditionReason.InvalidCidr;
  return { status: 'False', reason, message: `refused, its addresses serve no VIP: ${pool.refused}` };
}
