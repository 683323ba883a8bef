/**
 * A map whose keys and values go through codecs, so callers write
 * `vips.set(key, meta)` instead of picking an encoder at every call.
 */
import { perCpuStride, type RawMap } from './raw-map.js';

/** How one C type is laid out in a map key or value. */
export interface Codec<T> {
  /** The C type as the object's BTF names it ("struct vip_key", "__u32"); "" for none (ring buffers). */
  readonly cType: string;
  readonly size: number;
  encode(value: T): Buffer;
  decode(bytes: Buffer): T;
}

export class TypedMap<K, V> {
  constructor(
    readonly raw: RawMap,
    private readonly keyCodec: Codec<K>,
    private readonly valueCodec: Codec<V>,
  ) {}

  get(key: K): V | null {
    const v = this.raw.lookup(this.keyCodec.encode(key));
    return v && this.valueCodec.decode(v);
  }

  /** Writes the value (on a per-CPU map: the same value on every CPU). */
  set(key: K, value: V): void {
    const one = this.valueCodec.encode(value);
    if (!this.raw.perCpu) return this.raw.update(this.keyCodec.encode(key), one);
    const all = Buffer.alloc(this.raw.lookupSize);
    const stride = perCpuStride(this.raw.valueSize);
    for (let at = 0; at < all.length; at += stride) one.copy(all, at);
    this.raw.update(this.keyCodec.encode(key), all);
  }

  /** Zeroes the value (every CPU's copy): fresh counters. */
  clear(key: K): void {
    this.raw.update(this.keyCodec.encode(key), Buffer.alloc(this.raw.lookupSize));
  }

  delete(key: K): boolean {
    return this.raw.delete(this.keyCodec.encode(key));
  }

  keys(): K[] {
    return this.raw.keys().map((k) => this.keyCodec.decode(k));
  }

  /** Each CPU's copy of a per-CPU value. */
  getPerCpu(key: K): V[] | null {
    return this.raw.lookupPerCpu(this.keyCodec.encode(key))?.map((b) => this.valueCodec.decode(b)) ?? null;
  }

  /** Values of array indexes start..start+count-1. */
  range(start: number, count: number): V[] {
    const all = this.raw.lookupArrayRange(start, count);
    const size = this.raw.lookupSize;
    return Array.from({ length: count }, (_, i) => this.valueCodec.decode(all.subarray(i * size, (i + 1) * size)));
  }

  /** Whether two values are stored as the same bytes. */
  same(a: V, b: V): boolean {
    return this.valueCodec.encode(a).equals(this.valueCodec.encode(b));
  }
}

/**
 * An array of u32 cut into fixed windows (a Maglev ring per VIP): read and
 * write one window at a time, only the slots that differ.
 */
export class U32Windows {
  constructor(
    readonly raw: RawMap,
    readonly windowSize: number,
  ) {}

  read(window: number): Uint32Array {
    return this.raw.readU32Slots(window * this.windowSize, this.windowSize);
  }

  /** Returns how many slots changed. */
  write(window: number, slots: Uint32Array): number {
    if (slots.length !== this.windowSize) throw new Error(`map ${this.raw.name}: a window is ${this.windowSize} slots, not ${slots.length}`);
    return this.raw.writeU32Slots(window * this.windowSize, slots);
  }
}
