/** Keeps the decap program's set of local tunnel addresses equal to a list. */
import { parseIp } from '../lib/ip.js';
import { MAX_DECAP_ADDRS } from '../bpf/consts.js';
import { DECAP_MAPS, typedMap } from '../bpf/maps.js';
import type { DecapMapSet } from '../bpf/programs.js';

/** decap_addrs value of a local address: the program tests for the key only. */
const PRESENT = 1;

export function setDecapAddrs(maps: DecapMapSet, addresses: readonly string[]): { added: number; removed: number } {
  const addrs = typedMap(DECAP_MAPS.addrs, maps.addrs);
  // Canonical text on both sides: the map's keys decode to parsed addresses too.
  const wanted = new Map(addresses.map((text) => {
    const a = parseIp(text);
    return [a.text, a] as const;
  }));
  if (wanted.size > MAX_DECAP_ADDRS) {
    throw new Error(`${wanted.size} decap addresses exceed the capacity of ${MAX_DECAP_ADDRS}`);
  }
  const present = new Map(addrs.keys().map((a) => [a.text, a] as const));
  let added = 0;
  let removed = 0;
  for (const [text, a] of wanted) {
    if (present.has(text)) continue;
    addrs.set(a, PRESENT);
    added++;
  }
  for (const [text, a] of present) {
    if (wanted.has(text)) continue;
    addrs.delete(a);
    removed++;
  }
  return { added, removed };
}
