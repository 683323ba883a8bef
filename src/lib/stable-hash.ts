/** A 32-bit hash of a text that every process and version computes alike, and that spreads similar texts (node-1, node-2) well. */
import { createHash } from 'node:crypto';

const HASH_BYTES = 4;

export function stableHash(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0);
}

/** stableHash as 8 hex digits: a short suffix that keeps names distinct. */
export function stableHashHex(text: string): string {
  return createHash('sha256').update(text).digest().subarray(0, HASH_BYTES).toString('hex');
}
