/**
 * The encapsulation settings to program while part of what they come from is
 * missing for a while: a source address removed from the NIC, a gateway with
 * no route or no MAC. Programming without them would refuse, and so remove,
 * every VIP whose reals need them; the last good values keep traffic flowing
 * and the loss is reported instead. A value that comes back, changed or not,
 * replaces the kept one.
 */
import type { EncapConfig } from '../../bpf/structs.js';

/** The source addresses are what can be kept; the rest of a next hop (next-hop.ts) rides along. */
type WithSources = Pick<EncapConfig, 'srcV4' | 'srcV6'>;

/** The settings that can be lost (metric label values). */
export type EncapSetting = 'source_v4' | 'source_v6' | 'next_hop';
export const ENCAP_SETTINGS: readonly EncapSetting[] = ['source_v4', 'source_v6', 'next_hop'];

export interface KeptNextHop<T extends WithSources> {
  /** What to program: the observation, with the last good value where it lacks one. */
  nextHop: T;
  /** The settings whose values are kept from before, not seen now. */
  stale: EncapSetting[];
}

/**
 * @param last what is programmed now (itself possibly kept values)
 * @param observed what discovery found now; null: no next hop could be
 *   discovered (no gateway route, no MAC), so nothing of it is trusted
 */
export function withLastGood<T extends WithSources>(last: T, observed: T | null): KeptNextHop<T> {
  if (!observed) return { nextHop: last, stale: ['next_hop'] };
  const stale: EncapSetting[] = [];
  const keep = (now: string | undefined, before: string | undefined, setting: EncapSetting): string | undefined => {
    if (now !== undefined || before === undefined) return now;
    stale.push(setting);
    return before;
  };
  const srcV4 = keep(observed.srcV4, last.srcV4, 'source_v4');
  const srcV6 = keep(observed.srcV6, last.srcV6, 'source_v6');
  return { nextHop: { ...observed, srcV4, srcV6 }, stale };
}
