/**
 * Splits a validated desired state into the VIPs the dataplane would program
 * together and those it refuses, in one pass: groups (the ports of one
 * LoadBalancerVip) are taken whole, in input order, while they fit the
 * capacity. Callers pass the oldest first, so the newest are refused.
 */
import {
  type Acceptance,
  type Capacity,
  isValid,
  type NormalizedVip,
  peakOverCapacity,
  type Problem,
  tooManyReals,
  tooManyVips,
  type ValidatedState,
} from './desired-state.js';

/** Given to the members of a group refused because another member has problems (compare by identity). */
export const REFUSED_WITH_GROUP: Problem = Object.freeze({ path: '', reason: 'another VIP of its group is refused' });

/** What the maps hold now, as acceptVips needs it. */
export interface Installed {
  /**
   * The VIP in the maps now, by id: a changed VIP holds its old and new reals
   * for a moment during an apply. An unchanged one is the very object
   * validated again (the validation cache keeps it), so it adds none.
   */
  vip(id: string): NormalizedVip | undefined;
  /** Distinct reals in the maps. */
  readonly realCount: number;
  hasReal(address: string): boolean;
}

/** @param groups groups[i] names the group of vips[i]; absent: each VIP alone. */
export function acceptVips(state: ValidatedState, capacity: Capacity, installed: Installed, groups?: readonly number[]): Acceptance {
  const { vips } = state;
  if (groups && groups.length !== vips.length) throw new Error(`${groups.length} groups for ${vips.length} VIPs`);
  const refused = new Map<number, Problem[]>();
  vips.forEach((v, i) => {
    if (!isValid(v)) refused.set(i, v);
  });

  const members = new Map<number, number[]>(); // in order of first appearance
  vips.forEach((_, i) => {
    const g = groups ? groups[i]! : i;
    const list = members.get(g);
    if (list) list.push(i);
    else members.set(g, [i]);
  });

  // Cheap bound first, O(VIPs + changed reals): the reals installed now plus each real of a new or changed
  // VIP that is not. Every real of the peak (wanted, and installed of a VIP accepted) is one of these. Where
  // it fits (capacities have room) no group can overflow, and the sets below, O(all reals) a sync, are not built.
  let realsBound = installed.realCount;
  for (const v of vips) {
    if (!isValid(v) || installed.vip(v.id) === v) continue;
    for (const r of v.reals) if (!installed.hasReal(r.address.text)) realsBound++;
  }
  const realsFit = realsBound <= capacity.reals;
  const installedReals = (id: string) => installed.vip(id)?.reals.map((r) => r.address.text);

  const accepted: number[] = [];
  let vipCount = 0;
  const wanted = new Set<string>(); // reals of the accepted VIPs
  const peak = new Set<string>(); // ... and the old reals of those already installed
  for (const indexes of members.values()) {
    if (indexes.some((i) => refused.has(i))) {
      for (const i of indexes) if (!refused.has(i)) refused.set(i, [REFUSED_WITH_GROUP]);
      continue;
    }
    if (state.general.length) continue; // nothing is accepted; only VIPs' own problems are reported
    const group = indexes.map((i) => vips[i] as NormalizedVip);
    const why = realsFit ? vipsOverCapacity(group, capacity, vipCount) : overCapacity(group, capacity, vipCount, wanted, peak, installedReals);
    if (why) {
      for (const i of indexes) refused.set(i, [{ path: '', reason: why }]);
      continue;
    }
    vipCount += group.length;
    if (realsFit) {
      accepted.push(...indexes);
      continue;
    }
    for (const v of group) {
      for (const r of v.reals) {
        wanted.add(r.address.text);
        peak.add(r.address.text);
      }
      for (const r of installedReals(v.id) ?? []) peak.add(r);
    }
    accepted.push(...indexes);
  }
  accepted.sort((a, b) => a - b);
  return { accepted, refused, general: state.general };
}

/** Why a group's VIPs do not fit beside the vipCount accepted so far; null when they do. */
function vipsOverCapacity(group: readonly NormalizedVip[], capacity: Capacity, vipCount: number): string | null {
  return vipCount + group.length > capacity.vips ? tooManyVips(vipCount + group.length, capacity) : null;
}

/** Why a group does not fit beside what is accepted so far; null when it does. */
function overCapacity(
  group: readonly NormalizedVip[],
  capacity: Capacity,
  vipCount: number,
  wanted: ReadonlySet<string>,
  peak: ReadonlySet<string>,
  installedReals: (id: string) => readonly string[] | undefined,
): string | null {
  const vips = vipsOverCapacity(group, capacity, vipCount);
  if (vips) return vips;
  const newWanted = new Set<string>();
  for (const v of group) for (const r of v.reals) if (!wanted.has(r.address.text)) newWanted.add(r.address.text);
  if (wanted.size + newWanted.size > capacity.reals) {
    return tooManyReals(wanted.size + newWanted.size, capacity);
  }
  const newPeak = new Set<string>();
  for (const r of newWanted) if (!peak.has(r)) newPeak.add(r);
  for (const v of group) for (const r of installedReals(v.id) ?? []) if (!peak.has(r)) newPeak.add(r);
  if (peak.size + newPeak.size > capacity.reals) {
    return peakOverCapacity(peak.size + newPeak.size, capacity);
  }
  return null;
}
