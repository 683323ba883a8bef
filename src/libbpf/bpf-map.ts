/** A BPF map by file descriptor: typed-less byte access plus a write counter. */
import koffi from 'koffi';
import { c, check, possibleCpus } from './libbpf.js';
import { indexKey, perCpuStride, type RawMap, splitPerCpu } from './raw-map.js';

const BPF_ANY = 0;
const BPF_NOEXIST = 1;
const ENOENT = 2;
const EEXIST = 17;
const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x01;
const MAP_FAILED = 0xffffffffffffffffn;
/** Array maps store each value in a multiple of 8 bytes. */
const ARRAY_ELEM_ALIGN = 8;

export class BpfMap implements RawMap {
  /** Element writes issued (updates, deletes, batch elements): lets tests prove "no change, no writes". */
  writes = 0;

  constructor(
    readonly name: string,
    readonly fd: number,
    readonly keySize: number,
    readonly valueSize: number,
    readonly maxEntries: number,
    readonly perCpu: boolean,
  ) {}

  /**
   * A map of no object (e.g. a map of an earlier layout, as an older agent
   * left it pinned); not per-CPU, no flags. The caller closes its fd.
   */
  static create(name: string, type: number, keySize: number, valueSize: number, maxEntries: number): BpfMap {
    const fd = check('bpf_map_create', c.mapCreate(type, name, keySize, valueSize, maxEntries, null) as number, name);
    return new BpfMap(name, fd, keySize, valueSize, maxEntries, false);
  }

  /** Bytes one lookup returns: per-CPU maps return one aligned copy per possible CPU. */
  get lookupSize(): number {
    return this.perCpu ? this.perCpuStride * possibleCpus : this.valueSize;
  }

  get perCpuStride(): number {
    return perCpuStride(this.valueSize);
  }

  update(key: Buffer, value: Buffer, flags = BPF_ANY): void {
    this.checkKey(key);
    if (value.length !== this.lookupSize) {
      throw new Error(`map ${this.name}: value is ${value.length} bytes, the map takes ${this.lookupSize}`);
    }
    this.writes++;
    check(`bpf_map_update_elem(${this.name})`, c.mapUpdate(this.fd, key, value, flags) as number);
  }

  lookup(key: Buffer): Buffer | null {
    this.checkKey(key);
    const value = Buffer.alloc(this.lookupSize);
    const rc = c.mapLookup(this.fd, key, value) as number;
    if (rc === -2 /* ENOENT */) return null;
    check(`bpf_map_lookup_elem(${this.name})`, rc);
    return value;
  }

  /** Per-CPU lookup split into one buffer per CPU. */
  lookupPerCpu(key: Buffer): Buffer[] | null {
    const all = this.lookup(key);
    return all && splitPerCpu(all, this.valueSize);
  }

  /** Adds the element unless the key is there; returns false (and leaves the map as it was) when it is. */
  insert(key: Buffer, value: Buffer): boolean {
    this.checkKey(key);
    this.writes++;
    const rc = c.mapUpdate(this.fd, key, value, BPF_NOEXIST) as number;
    if (rc === -EEXIST) return false;
    check(`bpf_map_update_elem(${this.name}, BPF_NOEXIST)`, rc);
    return true;
  }

  /**
   * Every element of a hash map, up to `chunk` per syscall: keys and values
   * (lookupSize each) back to back. The kernel walks the buckets in order;
   * elements added or removed meanwhile may or may not be seen.
   */
  *batches(chunk = 8192): Generator<{ keys: Buffer; values: Buffer; count: number }> {
    let inBatch: Buffer | null = null;
    for (;;) {
      // A hash map's batch token is its next bucket (a u32); the buffer is larger for any map type.
      const outBatch = Buffer.alloc(Math.max(this.keySize, 8));
      const keys = Buffer.alloc(chunk * this.keySize);
      const values = Buffer.alloc(chunk * this.lookupSize);
      const n = [chunk];
      const rc = c.mapLookupBatch(this.fd, inBatch, outBatch, keys, values, n, null) as number;
      if (rc < 0 && rc !== -ENOENT /* the last batch */) check(`bpf_map_lookup_batch(${this.name})`, rc);
      const count = n[0] ?? 0;
      if (count) yield { keys, values, count };
      if (rc === -ENOENT) return;
      inBatch = outBatch;
    }
  }

  /** Returns false when the key was not there. */
  delete(key: Buffer): boolean {
    this.checkKey(key);
    this.writes++;
    const rc = c.mapDelete(this.fd, key) as number;
    if (rc === -2 /* ENOENT */) return false;
    check(`bpf_map_delete_elem(${this.name})`, rc);
    return true;
  }

  /** One syscall for many elements: keys and values packed back to back. */
  updateBatch(keys: Buffer, values: Buffer, count: number): void {
    if (count === 0) return;
    if (keys.length < count * this.keySize || values.length < count * this.lookupSize) {
      throw new Error(`map ${this.name}: batch of ${count} needs larger key/value buffers`);
    }
    const n = [count];
    this.writes += count;
    check(`bpf_map_update_batch(${this.name})`, c.mapUpdateBatch(this.fd, keys, values, n, null) as number,
      `${n[0]} of ${count} elements written`);
    if (n[0] !== count) throw new Error(`map ${this.name}: batch wrote ${n[0]} of ${count} elements`);
  }

  /**
   * Values of array indexes start..start+count-1, in one syscall per chunk.
   * The kernel resumes a batch *after* the key it is given, hence start - 1.
   */
  lookupArrayRange(start: number, count: number): Buffer {
    const values = Buffer.alloc(count * this.lookupSize);
    let done = 0;
    while (done < count) {
      const first = start + done;
      const inBatch = first === 0 ? null : indexKey(first - 1);
      const n = [count - done];
      const keys = Buffer.alloc(n[0]! * this.keySize);
      const chunk = Buffer.alloc(n[0]! * this.lookupSize);
      const rc = c.mapLookupBatch(this.fd, inBatch, Buffer.alloc(this.keySize), keys, chunk, n, null) as number;
      if (rc < 0 && rc !== -2 /* ENOENT: reached the end */) check(`bpf_map_lookup_batch(${this.name})`, rc);
      const got = n[0] ?? 0;
      if (got === 0) throw new Error(`map ${this.name}: no elements from index ${first} (has ${this.maxEntries})`);
      chunk.copy(values, done * this.lookupSize, 0, got * this.lookupSize);
      done += got;
    }
    return values;
  }

  /**
   * Runs fn over slots start..start+count-1 of a BPF_F_MMAPABLE array of u32,
   * mapped for the duration of the call: memory shared with the kernel, so a
   * store is what the program reads next (aligned 4-byte stores are atomic).
   * Only that window is mapped: the kernel maps every page of a mapping at
   * once, and a whole ring map would count hundreds of MB to our RSS.
   * The kernel keeps each element in round_up(value_size, 8) bytes: slot
   * start + i is at u32 index first + i * stride.
   */
  private withSlots<T>(start: number, count: number, fn: (u32: Uint32Array, first: number, stride: number) => T): T {
    if (this.valueSize !== 4) throw new Error(`map ${this.name}: values are ${this.valueSize} bytes, not u32`);
    if (start < 0 || start + count > this.maxEntries) {
      throw new Error(`map ${this.name}: slots ${start}..${start + count - 1} out of 0..${this.maxEntries - 1}`);
    }
    const elemSize = Math.ceil(this.valueSize / ARRAY_ELEM_ALIGN) * ARRAY_ELEM_ALIGN;
    const page = c.getpagesize() as number;
    const from = start * elemSize;
    const offset = Math.floor(from / page) * page;
    const length = Math.ceil((from + count * elemSize - offset) / page) * page;
    const ptr = c.mmap(null, length, PROT_READ | PROT_WRITE, MAP_SHARED, this.fd, offset);
    if (ptr === null || koffi.address(ptr) === MAP_FAILED) {
      throw new Error(`mmap of map ${this.name} failed (errno ${koffi.errno()}): is it a BPF_F_MMAPABLE array?`);
    }
    try {
      return fn(new Uint32Array(koffi.view(ptr, length)), (from - offset) / 4, elemSize / 4);
    } finally {
      c.munmap(ptr, length);
    }
  }

  readU32Slots(start: number, count: number): Uint32Array {
    return this.withSlots(start, count, (u32, first, stride) => {
      const out = new Uint32Array(count);
      for (let i = 0; i < count; i++) out[i] = u32[first + i * stride]!;
      return out;
    });
  }

  /** Writes next into slots start.. where it differs from what they hold; returns how many. */
  writeU32Slots(start: number, next: Uint32Array): number {
    const n = this.withSlots(start, next.length, (u32, first, stride) => {
      let written = 0;
      for (let i = 0; i < next.length; i++) {
        const at = first + i * stride;
        if (u32[at] !== next[i]) {
          u32[at] = next[i]!;
          written++;
        }
      }
      return written;
    });
    this.writes += n;
    return n;
  }

  /** All keys of a hash map (for adoption and cleanup). */
  keys(): Buffer[] {
    const out: Buffer[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const rc = c.mapGetNextKey(this.fd, prev, next) as number;
      if (rc === -2 /* ENOENT: end */) return out;
      check(`bpf_map_get_next_key(${this.name})`, rc);
      out.push(next);
      prev = next;
    }
  }

  private checkKey(key: Buffer): void {
    if (key.length !== this.keySize) {
      throw new Error(`map ${this.name}: key is ${key.length} bytes, the map takes ${this.keySize}`);
    }
  }
}
