/**
 * A BPF map in process memory with the kernel map's byte semantics (as
 * Cilium's lbmap mock): arrays hold every index from the start, zero-filled,
 * and cannot delete; hashes hold what was written, up to max_entries. No
 * syscall, no root: code written against RawMap is unit-tested on these.
 * It imports nothing of libbpf, so loading it never needs libbpf.so.
 */
import { indexKey, perCpuStride, type RawMap, splitPerCpu } from './raw-map.js';

export type MemoryMapKind = 'hash' | 'array';

export interface MemoryMapSpec {
  name: string;
  kind: MemoryMapKind;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  perCpu: boolean;
  /** CPUs a per-CPU value has a copy for (the kernel's possible CPUs). */
  cpus: number;
  /** Where every write is recorded, in order, as "update NAME", "delete NAME" or "slots NAME". */
  journal?: string[];
}

const BPF_ANY = 0;
const BPF_NOEXIST = 1;
const BPF_EXIST = 2;
/** Array values are stored in pages of this many elements, allocated when first written. */
const PAGE_ELEMS = 4096;
const U32_BYTES = 4;

export class MemoryMap implements RawMap {
  writes = 0;
  readonly name: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly perCpu: boolean;
  readonly lookupSize: number;
  private readonly hash = new Map<string, Buffer>();
  private readonly pages = new Map<number, Buffer>();

  constructor(private readonly spec: MemoryMapSpec) {
    this.name = spec.name;
    this.keySize = spec.keySize;
    this.valueSize = spec.valueSize;
    this.maxEntries = spec.maxEntries;
    this.perCpu = spec.perCpu;
    this.lookupSize = spec.perCpu ? perCpuStride(spec.valueSize) * spec.cpus : spec.valueSize;
    if (spec.kind === 'array' && spec.keySize !== U32_BYTES) throw new Error(`array map ${this.name}: keys are u32, not ${spec.keySize} bytes`);
  }

  update(key: Buffer, value: Buffer, flags = BPF_ANY): void {
    this.checkKey(key);
    if (value.length !== this.lookupSize) {
      throw new Error(`map ${this.name}: value is ${value.length} bytes, the map takes ${this.lookupSize}`);
    }
    this.record('update');
    if (this.spec.kind === 'array') {
      if (flags === BPF_NOEXIST) throw new Error(`map ${this.name}: every array element exists (EEXIST)`);
      value.copy(this.element(this.index(key), true)!);
      return;
    }
    const k = key.toString('hex');
    const exists = this.hash.has(k);
    if (flags === BPF_NOEXIST && exists) throw new Error(`map ${this.name}: key exists (EEXIST)`);
    if (flags === BPF_EXIST && !exists) throw new Error(`map ${this.name}: no such key (ENOENT)`);
    if (!exists && this.hash.size >= this.maxEntries) throw new Error(`map ${this.name}: full at ${this.maxEntries} entries (E2BIG)`);
    this.hash.set(k, Buffer.from(value));
  }

  lookup(key: Buffer): Buffer | null {
    this.checkKey(key);
    if (this.spec.kind === 'hash') {
      const v = this.hash.get(key.toString('hex'));
      return v ? Buffer.from(v) : null;
    }
    const i = key.readUInt32LE(0);
    if (i >= this.maxEntries) return null;
    const e = this.element(i, false);
    return e ? Buffer.from(e) : Buffer.alloc(this.lookupSize);
  }

  lookupPerCpu(key: Buffer): Buffer[] | null {
    const all = this.lookup(key);
    return all && splitPerCpu(all, this.valueSize);
  }

  delete(key: Buffer): boolean {
    this.checkKey(key);
    if (this.spec.kind === 'array') throw new Error(`map ${this.name}: array elements cannot be deleted (EINVAL)`);
    this.record('delete');
    return this.hash.delete(key.toString('hex'));
  }

  lookupArrayRange(start: number, count: number): Buffer {
    this.checkRange(start, count);
    const out = Buffer.alloc(count * this.lookupSize);
    for (let i = 0; i < count; i++) this.element(start + i, false)?.copy(out, i * this.lookupSize);
    return out;
  }

  readU32Slots(start: number, count: number): Uint32Array {
    this.checkSlots(start, count);
    const out = new Uint32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.u32At(start + i);
    return out;
  }

  writeU32Slots(start: number, next: Uint32Array): number {
    this.checkSlots(start, next.length);
    let written = 0;
    for (let i = 0; i < next.length; i++) {
      if (this.u32At(start + i) === next[i]) continue;
      this.element(start + i, true)!.writeUInt32LE(next[i]!, 0);
      written++;
    }
    this.writes += written;
    if (written) this.spec.journal?.push(`slots ${this.name}`);
    return written;
  }

  keys(): Buffer[] {
    if (this.spec.kind === 'hash') return [...this.hash.keys()].map((k) => Buffer.from(k, 'hex'));
    return Array.from({ length: this.maxEntries }, (_, i) => indexKey(i));
  }

  private record(op: 'update' | 'delete'): void {
    this.writes++;
    this.spec.journal?.push(`${op} ${this.name}`);
  }

  /** An array element's bytes; null when its page was never written (all zero) and create is false. */
  private element(i: number, create: boolean): Buffer | null {
    const pageNo = Math.floor(i / PAGE_ELEMS);
    let page = this.pages.get(pageNo);
    if (!page) {
      if (!create) return null;
      page = Buffer.alloc(PAGE_ELEMS * this.lookupSize);
      this.pages.set(pageNo, page);
    }
    const at = (i % PAGE_ELEMS) * this.lookupSize;
    return page.subarray(at, at + this.lookupSize);
  }

  /** A u32 element without slicing its page (ring windows are 65537 slots). */
  private u32At(i: number): number {
    const page = this.pages.get(Math.floor(i / PAGE_ELEMS));
    return page ? page.readUInt32LE((i % PAGE_ELEMS) * this.lookupSize) : 0;
  }

  private index(key: Buffer): number {
    const i = key.readUInt32LE(0);
    if (i >= this.maxEntries) throw new Error(`map ${this.name}: index ${i} out of 0..${this.maxEntries - 1} (E2BIG)`);
    return i;
  }

  private checkRange(start: number, count: number): void {
    if (this.spec.kind !== 'array') throw new Error(`map ${this.name}: ranges are for array maps`);
    if (start < 0 || start + count > this.maxEntries) {
      throw new Error(`map ${this.name}: slots ${start}..${start + count - 1} out of 0..${this.maxEntries - 1}`);
    }
  }

  private checkSlots(start: number, count: number): void {
    if (this.valueSize !== U32_BYTES || this.perCpu) throw new Error(`map ${this.name}: values are ${this.valueSize} bytes, not u32`);
    this.checkRange(start, count);
  }

  private checkKey(key: Buffer): void {
    if (key.length !== this.keySize) {
      throw new Error(`map ${this.name}: key is ${key.length} bytes, the map takes ${this.keySize}`);
    }
  }
}
