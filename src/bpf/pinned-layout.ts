/**
 * The layout of every map as the kernel makes it for chosen capacities, and
 * how pinned maps differ from it: libbpf reuses a pinned map only when type,
 * key size, value size, max_entries and flags are all equal, so any
 * difference here means the pinned maps cannot be adopted and must be
 * rebuilt (src/agent/capacities).
 */
import { join } from 'node:path';
import { possibleCpus } from '../libbpf/libbpf.js';
import { type MapInfo, pinnedMapInfo } from '../libbpf/map-info.js';
import {
  type BackendCapacities,
  BALANCER_MAPS,
  BPF_F_NO_COMMON_LRU,
  type Capacities,
  DEFAULT_CAPACITIES,
  entriesOf,
  type MapCapacities,
  type MapSchema,
  MapType,
  maxEntriesFor,
  type Schema,
  usableRealIds,
} from './maps.js';

export type MapLayout = Pick<MapInfo, 'type' | 'keySize' | 'valueSize' | 'maxEntries' | 'flags'>;
const LAYOUT_FIELDS = ['type', 'keySize', 'valueSize', 'maxEntries', 'flags'] as const;

/** Capacities given on the command line (undefined: the compiled default) made whole. */
export function resolveCapacities(c: Partial<MapCapacities> = {}): MapCapacities {
  const defined = Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined));
  return { ...DEFAULT_CAPACITIES, ...defined };
}

/**
 * max_entries as the kernel sets it: an LRU hash with per-CPU lists gives
 * each possible CPU the same share, so it rounds up to a multiple of them.
 * Asking for the rounded size keeps libbpf's reuse check and ours equal.
 */
export function kernelMaxEntries(m: MapSchema<unknown, unknown>, entries: number): number {
  if (m.type !== MapType.LRU_HASH || !(m.flags & BPF_F_NO_COMMON_LRU)) return entries;
  return Math.ceil(entries / possibleCpus) * possibleCpus;
}

/** maxEntriesFor (the load's overrides) in the kernel's sizes. */
export function loadSizes(schema: Schema, c: Partial<Capacities>): Record<string, number> {
  const out = maxEntriesFor(schema, c);
  for (const m of Object.values(schema)) if (out[m.name] !== undefined) out[m.name] = kernelMaxEntries(m, out[m.name]!);
  return out;
}

export function wantedLayout(m: MapSchema<unknown, unknown>, c: MapCapacities & Partial<BackendCapacities>): MapLayout {
  return { type: m.type, keySize: m.key.size, valueSize: m.value.size, maxEntries: kernelMaxEntries(m, entriesOf(m, c)), flags: m.flags };
}

export interface LayoutChange {
  map: string;
  field: keyof MapLayout;
  pinned: number;
  wanted: number;
}

/** Where the maps pinned in pinDir differ from what these capacities make; [] when every pinned map fits (absent ones are created). */
export function pinnedLayoutChanges(pinDir: string, schema: Schema, capacities: Partial<Capacities>): LayoutChange[] {
  const { backendFlows } = capacities;
  const c = { ...resolveCapacities(capacities), ...(backendFlows === undefined ? {} : { backendFlows }) };
  const changes: LayoutChange[] = [];
  for (const m of Object.values(schema)) {
    const pinned = pinnedMapInfo(join(pinDir, m.name));
    if (!pinned) continue;
    const wanted = wantedLayout(m, c);
    for (const field of LAYOUT_FIELDS) {
      if (pinned[field] !== wanted[field]) changes.push({ map: m.name, field, pinned: pinned[field], wanted: wanted[field] });
    }
  }
  return changes;
}

/** Capacities as the kernel makes the balancer's maps for them (the connection table rounded: kernelMaxEntries). */
export function kernelCapacities(c: MapCapacities): MapCapacities {
  return { ...c, connectionTable: kernelMaxEntries(BALANCER_MAPS.connTable, c.connectionTable) };
}

/** The capacities the balancer maps pinned in pinDir were made with (undefined: that map is not pinned). */
export function pinnedCapacities(pinDir: string): Partial<MapCapacities> {
  const entries = (m: MapSchema<unknown, unknown>) => pinnedMapInfo(join(pinDir, m.name))?.maxEntries;
  return { vips: entries(BALANCER_MAPS.vips), reals: entries(BALANCER_MAPS.reals), connectionTable: entries(BALANCER_MAPS.connTable) };
}

/** "vips 512 -> 16, reals 4095 -> 63, connection table 65536 -> 131072": the capacities that differ, as an operator gives them. */
export function describeCapacityChange(from: Partial<MapCapacities>, to: MapCapacities): string {
  const shown = (k: keyof MapCapacities, v: number | undefined) => (v === undefined ? '?' : k === 'reals' ? usableRealIds(v) : v);
  const names: Record<keyof MapCapacities, string> = { vips: 'vips', reals: 'reals', connectionTable: 'connection table' };
  return (Object.keys(names) as (keyof MapCapacities)[])
    .filter((k) => from[k] !== to[k])
    .map((k) => `${names[k]} ${shown(k, from[k])} -> ${shown(k, to[k])}`)
    .join(', ');
}
