/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016), with weights.
 *
 * Every balancer node must build the same ring from the same backends, so a
 * flow that ECMP moves to another node lands on the same real: backends are
 * sorted by their key and hashed with fixed seeds, and nothing else (input
 * order, time, randomness) enters the computation.
 */

export interface MaglevBackend<T> {
  /** Stable identity, hashed to place the backend (e.g. its canonical address). */
  key: string;
  /** Relative share of the ring; 0 keeps the backend out of it. */
  weight: number;
  value: T;
}

/** Slots and positions are held in Int32Arrays. */
const MAX_RING_SIZE = 2 ** 31 - 1;
const OFFSET_SEED = 0x78646c31; // "xdl1"
const SKIP_SEED = 0x78646c32; // "xdl2"

/** MurmurHash3 x86_32 of a string's UTF-8 bytes. */
export function murmur3(text: string, seed: number): number {
  const data = Buffer.from(text, 'utf8');
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blocks = data.length >>> 2;
  for (let i = 0; i < blocks; i++) {
    let k = data.readUInt32LE(i * 4);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) >>> 0;
  }
  const tail = blocks * 4;
  const rest = data.length & 3;
  if (rest) {
    let k = 0;
    for (let i = rest - 1; i >= 0; i--) k = (k << 8) | data[tail + i]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  return fmix32(h ^ data.length);
}

/** MurmurHash3's finalizer: every input bit flips each output bit with probability about 1/2. */
export function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/**
 * Returns (in `out` when given: rings are large, reuse saves garbage), for each of `size` slots, the index into the sorted backend list
 * (see sortBackends) of the backend that owns it, or -1 for every slot when no
 * backend has weight. `size` must be prime so every skip visits every slot.
 */
export function maglevRing<T>(backends: readonly MaglevBackend<T>[], size: number, out?: Int32Array): Int32Array {
  if (!isPrime(size)) throw new Error(`Maglev ring size ${size} is not prime`);
  if (size > MAX_RING_SIZE) throw new Error(`Maglev ring size ${size} is above ${MAX_RING_SIZE}: slots are 32-bit signed`);
  if (out && out.length !== size) throw new Error(`output ring has ${out.length} slots, not ${size}`);
  const ring = (out ?? new Int32Array(size)).fill(-1);
  const sorted = sortBackends(backends);
  const active = sorted
    .map((b, index) => ({ b, index }))
    .filter(({ b }) => b.weight > 0);
  if (active.length === 0) return ring;

  const n = active.length;
  // Integers below 2^31 throughout: each backend's next slot is its last plus
  // its skip, mod size, which is the paper's (offset + j * skip) mod size
  // without a multiplication or a floating-point remainder per probe.
  const pos = new Int32Array(n);
  const skip = new Int32Array(n);
  const weight = new Float64Array(n);
  const credit = new Float64Array(n);
  let maxWeight = 0;
  active.forEach(({ b }, i) => {
    pos[i] = murmur3(b.key, OFFSET_SEED) % size;
    skip[i] = (murmur3(b.key, SKIP_SEED) % (size - 1)) + 1;
    weight[i] = b.weight;
    maxWeight = Math.max(maxWeight, b.weight);
  });
  const owner = Int32Array.from(active, ({ index }) => index);

  // Weighted turns: each round a backend earns its weight in credit and takes
  // a slot per maxWeight of credit, so its share of the ring is weight / sum.
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      credit[i]! += weight[i]!;
      if (credit[i]! < maxWeight) continue;
      credit[i]! -= maxWeight;
      const step = skip[i]!;
      let slot = pos[i]!;
      while (ring[slot] !== -1) {
        slot += step;
        if (slot >= size) slot -= size;
      }
      ring[slot] = owner[i]!;
      slot += step;
      pos[i] = slot >= size ? slot - size : slot;
      if (++filled === size) return ring;
    }
  }
}

/** The canonical order of backends: by key. Duplicate keys are an error. */
export function sortBackends<T>(backends: readonly MaglevBackend<T>[]): MaglevBackend<T>[] {
  const sorted = [...backends].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.key === sorted[i - 1]!.key) throw new Error(`backend ${sorted[i]!.key} is listed twice`);
  }
  for (const b of sorted) {
    if (!Number.isFinite(b.weight) || b.weight < 0) {
      throw new Error(`backend ${b.key}: weight ${b.weight} is not a finite number >= 0`);
    }
  }
  return sorted;
}
