/**
 * CIDRs and addresses as integers (bigint, so IPv6 fits), for range arithmetic:
 * containment, overlap, the n-th address of a range. Text goes through
 * src/lib/ip.ts, so every spelling of an address compares equal.
 */
import { formatIp, IP_BYTES, parseIp } from '../../lib/ip.js';

export type Family = 4 | 6;

/** An address as a number within its family. */
export interface NumericIp {
  readonly family: Family;
  readonly value: bigint;
}

/** first..last inclusive, one family. */
export interface IpRange {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

export interface Cidr extends IpRange {
  readonly prefix: number;
  /** Canonical text: network address and prefix. */
  readonly text: string;
}

export const familyBits = (family: Family): number => (family === 4 ? 32 : 128);

/** Throws on text that is not an address. */
export function toNumeric(text: string): NumericIp {
  const ip = parseIp(text);
  const n = ip.family === 4 ? 4 : IP_BYTES;
  let value = 0n;
  for (let i = 0; i < n; i++) value = (value << 8n) | BigInt(ip.bytes[i]!);
  return { family: ip.family, value };
}

export function fromNumeric(family: Family, value: bigint): string {
  const bytes = Buffer.alloc(IP_BYTES);
  const n = family === 4 ? 4 : IP_BYTES;
  for (let i = n - 1; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return formatIp({ family, bytes });
}

/**
 * Parses "address/prefix". `strict` (the default) refuses host bits, as the
 * CRD does; otherwise the address is masked (a node's podCIDR, a ServiceCIDR).
 * Throws with the reason.
 */
export function parseCidr(text: string, strict = true): Cidr {
  const slash = text.indexOf('/');
  if (slash < 0 || !/^\d{1,3}$/.test(text.slice(slash + 1))) throw new Error(`"${text}" is not a CIDR (address/prefix)`);
  const addr = toNumeric(text.slice(0, slash));
  const prefix = Number(text.slice(slash + 1));
  const bits = familyBits(addr.family);
  if (prefix > bits) throw new Error(`"${text}": prefix longer than ${bits}`);
  const hostBits = BigInt(bits - prefix);
  const first = (addr.value >> hostBits) << hostBits;
  if (strict && first !== addr.value) throw new Error(`"${text}" has host bits set: its network address is ${fromNumeric(addr.family, first)}/${prefix}`);
  return { family: addr.family, prefix, first, last: first + (1n << hostBits) - 1n, text: `${fromNumeric(addr.family, first)}/${prefix}` };
}

/** A single address as a range (a /32 or /128). */
export function singleAddress(ip: NumericIp): IpRange {
  return { family: ip.family, first: ip.value, last: ip.value };
}

export function rangeContains(r: IpRange, ip: NumericIp): boolean {
  return r.family === ip.family && r.first <= ip.value && ip.value <= r.last;
}

export function rangesOverlap(a: IpRange, b: IpRange): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last;
}

export const rangeSize = (r: IpRange): bigint => r.last - r.first + 1n;
