/** Keeps the decap program's set of local tunnel addresses equal to a list. */
import { parseIp } from '../lib/ip.js';
import { encodeAddr, u32Key } from '../bpf/structs.js';
import { type Family, MAX_DECAP_ADDRS } from '../bpf/consts.js';
import type { DecapMapSet } from '../bpf/programs.js';

const PRESENT = 1;

export function setDecapAddrs(maps: DecapMapSet, addresses: readonly string[]): { added: number; removed: number } {
  const wanted = new Map(
    addresses.map((text) => {
      const a = parseIp(text);
      return [encodeAddr({ family: a.family as Family, bytes: a.bytes }).toString('hex'), a] as const;
    }),
  );
  if (wanted.size > MAX_DECAP_ADDRS) {
    throw new Error(`${wanted.size} decap addresses exceed the capacity of ${MAX_DECAP_ADDRS}`);
  }
  const present = new Set(maps.addrs.keys().map((k) => k.toString('hex')));
  let added = 0;
  let removed = 0;
  for (const [hex, a] of wanted) {
    if (present.has(hex)) continue;
    maps.addrs.update(encodeAddr({ family: a.family as Family, bytes: a.bytes }), u32Key(PRESENT));
    added++;
  }
  for (const hex of present) {
    if (wanted.has(hex)) continue;
    maps.addrs.delete(Buffer.from(hex, 'hex'));
    removed++;
  }
  return { added, removed };
}
