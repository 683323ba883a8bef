import { isIPv4, isIPv6 } from 'node:net';
import { LruCache, type LruCacheStats } from './lru-cache.js';

/** An IP address as 16 network-order bytes; IPv4 uses the first four. Shared: never modify. */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly bytes: Buffer;
  readonly text: string;
}

export const IP_BYTES = 16;

/**
 * Parsed addresses are immutable and the same ones recur in every apply: one
 * per real of every VIP. Sized for the scale aimed at (1000 VIPs x 100 pods,
 * 100,000 distinct reals, plus VIPs and node addresses) with room to spare:
 * an LRU misses on every lookup of a pass over more addresses than it holds.
 * An entry is about 300 bytes on the heap (object, 16-byte buffer, text),
 * so the cache holds at most about 40 MB; the addresses in use are shared
 * with the VIPs that name them.
 */
export const PARSED_MAX = 131072;
const parsed = new LruCache<string, IpAddress>({ budget: PARSED_MAX });

export function parseIp(text: string): IpAddress {
  let addr = parsed.get(text);
  if (!addr) {
    addr = parseIpUncached(text);
    parsed.set(text, addr);
  }
  return addr;
}

/** How the parse cache is doing: its size, hits and misses (each miss is one parse). */
export function parseCacheStats(): LruCacheStats {
  return parsed.stats();
}

function parseIpUncached(text: string): IpAddress {
  const bytes = Buffer.alloc(IP_BYTES);
  if (isIPv4(text)) {
    text.split('.').forEach((part, i) => bytes.writeUInt8(Number(part), i));
    return { family: 4, bytes, text };
  }
  if (isIPv6(text)) {
    writeIpv6(text, bytes);
    return { family: 6, bytes, text: formatIp({ family: 6, bytes }) };
  }
  throw new Error(`"${text}" is not an IPv4 or IPv6 address`);
}

function writeIpv6(text: string, out: Buffer): void {
  let s = text.split('%')[0] ?? '';
  const groups: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4?.[1]) {
    const [a, b, c, d] = v4[1].split('.').map(Number) as [number, number, number, number];
    s = `${s.slice(0, -v4[1].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = s.split('::');
  const parse = (part: string) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  groups.push(...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
}

export function formatIp(addr: { family: 4 | 6; bytes: Buffer }): string {
  if (addr.family === 4) return [...addr.bytes.subarray(0, 4)].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(addr.bytes.readUInt16BE(i * 2).toString(16));
  // RFC 5952: compress the longest run of two or more zero groups.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Canonical text of an address, so equal addresses compare equal. */
export function canonicalIp(text: string): string {
  return parseIp(text).text;
}

export function compareIp(a: IpAddress, b: IpAddress): number {
  return a.family - b.family || Buffer.compare(a.bytes, b.bytes);
}
