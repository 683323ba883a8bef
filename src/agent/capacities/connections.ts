/**
 * Copies connection-table entries from the maps of one layout into the maps
 * of another. An entry is a flow and the id of its real; ids are per map
 * set, so each is translated through the reals maps: old id -> the real's
 * address (old reals) -> that real's id in the new reals. An entry whose real
 * is not in the new maps is dropped: its flow would re-hash anyway.
 *
 * The table is an LRU hash with per-CPU lists (BPF_F_NO_COMMON_LRU): an
 * insert takes an element of the inserting CPU's list, and each CPU's list
 * holds max_entries / possible CPUs. The copy therefore inserts a share from
 * each CPU this thread may run on; what does not fit is dropped (counted),
 * not silently evicted.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { BpfMap } from '../../libbpf/bpf-map.js';
import { allowedCpus, onCpu } from '../../libbpf/cpus.js';
import { monotonicSeconds } from '../../libbpf/ktime.js';
import { possibleCpus } from '../../libbpf/libbpf.js';
import { AddrLayout, FlowKeyLayout, FlowValueLayout, RealSlotCodec } from '../../bpf/structs.js';
import { NO_REAL_ID } from '../../bpf/consts.js';

/** The two maps an entry's meaning depends on. */
export interface ConnectionMaps {
  connTable: BpfMap;
  reals: BpfMap;
}

export interface CopyResult {
  /** Entries read from the old table (the gap pass: only those the first pass had not seen). */
  read: number;
  /** Written into the new table. */
  copied: number;
  /** Dropped: their real is not in the new maps. */
  realGone: number;
  /** Dropped: beyond what the new table's per-CPU lists hold. */
  tableFull: number;
  /** The gap pass: already in the new table (the new program made it since), kept as it is. */
  newer: number;
  /** Dropped: the old table or reals have a layout this version cannot read. */
  unreadable: number;
}

export const emptyCopy = (): CopyResult => ({ read: 0, copied: 0, realGone: 0, tableFull: 0, newer: 0, unreadable: 0 });

/** Entries per syscall, and between turns of the event loop (probes and scrapes go on during a long copy). */
const CHUNK = 8192;

/** struct flow_value before it had atime_s (real_id only): an upgrade copies such tables too. */
const FLOW_VALUE_REAL_ID_ONLY_SIZE = 4;

/** Whether the maps hold entries and reals in a layout this version reads (struct flow_key, flow_value, xdplb_addr). */
function readable(m: ConnectionMaps): boolean {
  const value = m.connTable.valueSize;
  return m.connTable.keySize === FlowKeyLayout.size && (value === FlowValueLayout.size || value === FLOW_VALUE_REAL_ID_ONLY_SIZE) &&
    m.reals.valueSize === AddrLayout.size;
}

/**
 * Writes entry i of an old table's batch values into out at outOffset with
 * its real's new id. atime_s is kept; a value from before atime_s gets now,
 * so a UDP flow copied on an upgrade is not taken for idle.
 */
function translateValue(from: BpfMap, values: Buffer, i: number, newId: number, out: Buffer, outOffset: number, now: number): void {
  const at = i * from.lookupSize;
  const atime = from.valueSize >= FlowValueLayout.size ? values.readUInt32LE(at + FlowValueLayout.offsets.atime_s) : now;
  out.writeUInt32LE(newId, outOffset + FlowValueLayout.offsets.real_id);
  out.writeUInt32LE(atime, outOffset + FlowValueLayout.offsets.atime_s);
}

/** Old real id -> new real id (NO_REAL_ID: the real is not in the new maps). */
function realIdTranslation(from: BpfMap, to: BpfMap): Uint32Array {
  const addresses = (reals: BpfMap): (string | null)[] => {
    const all = reals.lookupArrayRange(0, reals.maxEntries);
    return Array.from({ length: reals.maxEntries }, (_, id) =>
      RealSlotCodec.decode(all.subarray(id * reals.lookupSize, id * reals.lookupSize + reals.valueSize))?.text ?? null);
  };
  const newIds = new Map<string, number>();
  addresses(to).forEach((a, id) => a !== null && id !== NO_REAL_ID && newIds.set(a, id));
  const out = new Uint32Array(from.maxEntries);
  addresses(from).forEach((a, id) => {
    if (a !== null && id !== NO_REAL_ID) out[id] = newIds.get(a) ?? NO_REAL_ID;
  });
  return out;
}

/**
 * The keys one pass saw, as 52-bit hashes (sorted, searched by bisection):
 * ~8 bytes a key where a Set of strings would take ~100. Two keys sharing a
 * hash (about n / 2^52 per lookup) make the gap pass skip a flow, which then
 * re-hashes.
 */
export class SeenKeys {
  private readonly hashes: Float64Array;

  constructor(keys: Buffer, keySize: number, count: number) {
    this.hashes = new Float64Array(count);
    for (let i = 0; i < count; i++) this.hashes[i] = keyHash(keys, i * keySize, keySize);
    this.hashes.sort();
  }

  get size(): number {
    return this.hashes.length;
  }

  has(keys: Buffer, offset: number, keySize: number): boolean {
    const h = keyHash(keys, offset, keySize);
    let lo = 0;
    let hi = this.hashes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.hashes[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.hashes.length && this.hashes[lo] === h;
  }
}

/** FNV-1a and djb2 over the bytes: 32 + 20 bits, exact in a double. */
function keyHash(buf: Buffer, offset: number, size: number): number {
  let a = 0x811c9dc5;
  let b = 5381;
  for (let i = offset; i < offset + size; i++) {
    const x = buf[i]!;
    a = Math.imul(a ^ x, 0x01000193);
    b = Math.imul(b, 33) ^ x;
  }
  return (a >>> 0) * 0x100000 + ((b >>> 0) >>> 12);
}

/**
 * The first pass, into an empty new table before the swap: every entry of
 * the old table, translated, spread over the CPUs. Returns what it did and
 * the keys it saw (for the gap pass).
 */
export async function copyConnections(from: ConnectionMaps, to: ConnectionMaps): Promise<{ result: CopyResult; seen: SeenKeys }> {
  const result = emptyCopy();
  const keySize = FlowKeyLayout.size;
  if (!readable(from)) {
    for (const b of from.connTable.batches(CHUNK)) result.unreadable += b.count;
    result.read = result.unreadable;
    return { result, seen: new SeenKeys(Buffer.alloc(0), keySize, 0) };
  }
  const ids = realIdTranslation(from.reals, to.reals);
  const batches = [...from.connTable.batches(CHUNK)];
  result.read = batches.reduce((n, b) => n + b.count, 0);
  const keys = Buffer.concat(batches.map((b) => b.keys.subarray(0, b.count * keySize)));
  const seen = new SeenKeys(keys, keySize, result.read);
  // Translated entries that keep their real, packed at the front.
  const values = Buffer.alloc(result.read * FlowValueLayout.size);
  const now = monotonicSeconds();
  let valid = 0;
  let at = 0;
  for (const b of batches) {
    for (let i = 0; i < b.count; i++, at++) {
      const oldId = b.values.readUInt32LE(i * from.connTable.lookupSize + FlowValueLayout.offsets.real_id);
      const newId = oldId < ids.length ? ids[oldId]! : NO_REAL_ID;
      if (newId === NO_REAL_ID) {
        result.realGone++;
        continue;
      }
      if (valid !== at) keys.copy(keys, valid * keySize, at * keySize, (at + 1) * keySize);
      translateValue(from.connTable, b.values, i, newId, values, valid * FlowValueLayout.size, now);
      valid++;
    }
  }
  result.copied = await writeSpread(to.connTable, keys, values, valid);
  result.tableFull = valid - result.copied;
  return { result, seen };
}

/**
 * Writes n packed entries into an empty LRU table with per-CPU lists, an
 * equal part from each CPU this thread may run on, no more than a CPU's list
 * holds; returns how many were written (the first ones).
 */
async function writeSpread(table: BpfMap, keys: Buffer, values: Buffer, n: number): Promise<number> {
  let cpus: (number | null)[];
  try {
    cpus = allowedCpus();
  } catch {
    cpus = [null]; // cannot tell: this CPU's list only
  }
  const share = Math.floor(table.maxEntries / possibleCpus);
  const total = Math.min(n, share * cpus.length);
  const per = Math.ceil(total / cpus.length);
  const write = async (first: number, end: number) => {
    for (let i = first; i < end; i += CHUNK) {
      const count = Math.min(CHUNK, end - i);
      table.updateBatch(keys.subarray(i * table.keySize, (i + count) * table.keySize),
        values.subarray(i * table.lookupSize, (i + count) * table.lookupSize), count);
      await yieldToLoop();
    }
  };
  for (const [i, cpu] of cpus.entries()) {
    const first = i * per;
    const end = Math.min(total, first + per);
    if (first >= end) break;
    if (cpu === null) await write(first, end);
    else await onCpu(cpu, () => write(first, end));
  }
  return total;
}

/**
 * The gap pass, after the swap: entries the old program made after the
 * first pass read its table (not in `seen`), added where the new table has
 * no entry for the flow yet; one the new program made since is newer and
 * stays.
 */
export async function copyGapConnections(from: ConnectionMaps, to: ConnectionMaps, seen: SeenKeys): Promise<CopyResult> {
  const result = emptyCopy();
  if (!readable(from)) return result; // the first pass counted them
  const ids = realIdTranslation(from.reals, to.reals);
  const keySize = FlowKeyLayout.size;
  const value = Buffer.alloc(FlowValueLayout.size);
  const now = monotonicSeconds();
  for (const b of from.connTable.batches(CHUNK)) {
    for (let i = 0; i < b.count; i++) {
      if (seen.has(b.keys, i * keySize, keySize)) continue;
      result.read++;
      const oldId = b.values.readUInt32LE(i * from.connTable.lookupSize + FlowValueLayout.offsets.real_id);
      const newId = oldId < ids.length ? ids[oldId]! : NO_REAL_ID;
      if (newId === NO_REAL_ID) {
        result.realGone++;
        continue;
      }
      translateValue(from.connTable, b.values, i, newId, value, 0, now);
      if (to.connTable.insert(b.keys.subarray(i * keySize, (i + 1) * keySize), value)) result.copied++;
      else result.newer++;
    }
    await yieldToLoop();
  }
  return result;
}
