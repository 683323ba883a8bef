/**
 * A map as bytes in, bytes out: what the kernel map (BpfMap) and its
 * in-memory stand-in (MemoryMap) both offer, so that code above them (typed
 * handles, the dataplane) runs unchanged on either.
 */
export interface RawMap {
  readonly name: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly perCpu: boolean;
  /** Element writes issued (updates, deletes, batch elements, changed slots). */
  readonly writes: number;
  /** Bytes one lookup returns: per-CPU maps return one aligned copy per possible CPU. */
  readonly lookupSize: number;
  update(key: Buffer, value: Buffer, flags?: number): void;
  lookup(key: Buffer): Buffer | null;
  /** Per-CPU lookup split into one buffer per CPU. */
  lookupPerCpu(key: Buffer): Buffer[] | null;
  /** Returns false when the key was not there. */
  delete(key: Buffer): boolean;
  /** Values of array indexes start..start+count-1, back to back. */
  lookupArrayRange(start: number, count: number): Buffer;
  /** Slots start..start+count-1 of an array of u32. */
  readU32Slots(start: number, count: number): Uint32Array;
  /** Writes next into slots start.. where it differs from what they hold; returns how many. */
  writeU32Slots(start: number, next: Uint32Array): number;
  /** Every key (of a hash map: for adoption and cleanup). */
  keys(): Buffer[];
}

/** The kernel keeps each CPU's copy of a per-CPU value 8-byte aligned. */
const PERCPU_VALUE_ALIGN = 8;

export function perCpuStride(valueSize: number): number {
  return Math.ceil(valueSize / PERCPU_VALUE_ALIGN) * PERCPU_VALUE_ALIGN;
}

/** Splits a per-CPU value as lookup returns it into one buffer per CPU. */
export function splitPerCpu(all: Buffer, valueSize: number): Buffer[] {
  const stride = perCpuStride(valueSize);
  return Array.from({ length: all.length / stride }, (_, i) => all.subarray(i * stride, i * stride + valueSize));
}

/** Array map keys are u32 indexes in host order (little-endian hosts only: see src/bpf/structs.ts). */
export function indexKey(n: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE(n);
  return buf;
}
