/**
 * The kernel memory a program's maps take, from each map's type, key and
 * value size and max_entries, as the kernel allocates them (kernel/bpf/
 * arraymap.c, hashtab.c, ringbuf.c; 64-bit, 4 KiB pages). Since Linux 5.11
 * this memory is charged to the memory cgroup of the process that made the
 * maps, so an agent's memory limit has to hold it. An estimate from above:
 * test/bpf/map-memory.test.ts holds it against what the kernel reports.
 */
import { BPF_F_MMAPABLE, BPF_F_NO_COMMON_LRU, entriesOf, type MapCapacities, type MapSchema, MapType, type Schema } from './maps.js';

/** The kernel rounds keys and values up to this (round_up(size, 8)). */
const VALUE_ALIGN = 8;
const PAGE_BYTES = 4096;
const POINTER_BYTES = 8;
/**
 * A map's own structure (struct bpf_array, bpf_htab, bpf_ringbuf_map: a few hundred bytes, a
 * page where it is mmap()ed), counted as one page per map.
 */
const MAP_STRUCT_BYTES = PAGE_BYTES;
/**
 * sizeof(struct htab_elem), each hash element's header: its list node (16 bytes), the LRU node
 * (24) or a per-CPU pointer, the hash (4), aligned to 8.
 */
export const HTAB_ELEM_BYTES = 48;
/** sizeof(struct bucket): a list head and a spinlock. */
const HTAB_BUCKET_BYTES = 16;
/** HASHTAB_MAP_LOCK_COUNT ints per CPU: a hash map's per-CPU recursion guards. */
const HTAB_LOCK_BYTES_PER_CPU = 8 * 4;
/** A ring buffer's pages before its data: the consumer and producer positions, a page each. */
const RINGBUF_META_PAGES = 2;
/** struct bpf_ringbuf_map and the ring's own header (wait queue, locks): the kernel reports a little over a page. */
const RINGBUF_STRUCT_BYTES = 2 * PAGE_BYTES;

const alignUp = (n: number, to: number): number => Math.ceil(n / to) * to;
const nextPowerOfTwo = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));

/** The entries the kernel makes: an LRU with per-CPU lists rounds max_entries up to a multiple of the CPUs. */
export function kernelEntries(m: MapSchema<unknown, unknown>, requested: number, cpus: number): number {
  return m.type === MapType.LRU_HASH && (m.flags & BPF_F_NO_COMMON_LRU) !== 0 ? alignUp(requested, cpus) : requested;
}

/** Bytes one map takes with this many entries on a kernel with this many possible CPUs. */
export function mapBytes(m: MapSchema<unknown, unknown>, requested: number, cpus: number): number {
  const entries = kernelEntries(m, requested, cpus);
  const value = alignUp(m.value.size, VALUE_ALIGN);
  switch (m.type) {
    case MapType.ARRAY: {
      const values = entries * value;
      return MAP_STRUCT_BYTES + ((m.flags & BPF_F_MMAPABLE) !== 0 ? alignUp(values, PAGE_BYTES) : values);
    }
    case MapType.PERCPU_ARRAY:
      return MAP_STRUCT_BYTES + entries * (POINTER_BYTES + value * cpus);
    case MapType.HASH:
    case MapType.LRU_HASH: {
      const element = HTAB_ELEM_BYTES + alignUp(m.key.size, VALUE_ALIGN) + value;
      // A plain (not LRU) preallocated hash keeps one spare element per CPU for updates in place.
      const spares = m.type === MapType.HASH ? cpus : 0;
      return MAP_STRUCT_BYTES + nextPowerOfTwo(entries) * HTAB_BUCKET_BYTES + cpus * HTAB_LOCK_BYTES_PER_CPU
        + (entries + spares) * element + spares * POINTER_BYTES;
    }
    case MapType.RINGBUF: {
      const dataPages = entries / PAGE_BYTES;
      // The data pages are mapped twice (so a record can wrap), which costs page pointers, not pages.
      return RINGBUF_STRUCT_BYTES + entries + RINGBUF_META_PAGES * PAGE_BYTES + (RINGBUF_META_PAGES + 2 * dataPages) * POINTER_BYTES;
    }
  }
}

/** Bytes all the maps of a schema take under these capacities with this many possible CPUs. */
export function schemaBytes(schema: Schema, capacities: MapCapacities, cpus: number): number {
  return Object.values(schema).reduce((sum, m) => sum + mapBytes(m, entriesOf(m, capacities), cpus), 0);
}
