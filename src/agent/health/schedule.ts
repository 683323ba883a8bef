/**
 * When each target is probed: on a grid of its own, its phase within the
 * interval fixed by its key (targets spread evenly over time, and a restart
 * keeps the spread), each probe of round k at phase + k intervals plus a
 * random delay of up to JITTER of the interval. The delay does not
 * accumulate: rounds stay one interval apart on average, so the probes of
 * all targets sum to a flat rate (a jitter that accumulated would pile one
 * round's late probes onto the next round's early ones). A cap on probes per
 * second keeps a burst (many targets added at once with nearby phases) from
 * leaving at once: what is over it waits, and skips rounds rather than
 * catching up. Pure: the prober gives it the time.
 */
import { hashKey } from '../../lib/rendezvous.js';

/** Share of the interval by which each probe is delayed at random (so probes come 1 +- JITTER intervals apart). */
export const JITTER = 0.1;
/** Probes per second one node sends at most, whatever the targets ask: about 1 Mbit/s of probe frames. */
export const DEFAULT_MAX_PROBES_PER_SECOND = 2000;
/** A target held back by the cap is probed again no sooner than this share of its interval. */
const MIN_GAP = 0.5;
/** The most the cap lets leave at once after a quiet spell: a tenth of a second's probes. */
const BURST_SECONDS = 0.1;
/** 32 bits of hash as a fraction in [0, 1). */
const HASH_RANGE = 2 ** 32;

interface Entry {
  key: string;
  due: number;
  intervalMs: number;
  /** Its grid: round k is due at base + k intervals (+ the jitter). */
  base: number;
  round: number;
  /** Its index in the heap. */
  at: number;
}

/** A min-heap of due times. */
export class Schedule {
  private heap: Entry[] = [];
  private readonly where = new Map<string, Entry>();
  /** Tokens for the cap: refilled by elapsed time, at most BURST_SECONDS' worth. */
  private tokens: number;
  private readonly bucket: number;
  private lastRefill: number | null = null;

  constructor(private readonly maxPerSecond = DEFAULT_MAX_PROBES_PER_SECOND, private readonly random: () => number = Math.random) {
    this.bucket = Math.max(1, maxPerSecond * BURST_SECONDS);
    this.tokens = this.bucket;
  }

  get size(): number {
    return this.where.size;
  }

  has(key: string): boolean {
    return this.where.has(key);
  }

  /** Adds a target, first due at its phase within the interval from now; an existing one keeps its time unless its interval changed. */
  add(key: string, intervalMs: number, now: number): void {
    const old = this.where.get(key);
    if (old && old.intervalMs === intervalMs) return;
    if (old) this.remove(key);
    const base = now + (hashKey(key) / HASH_RANGE) * intervalMs;
    this.push({ key, due: base + this.jitter(intervalMs), intervalMs, base, round: 0, at: 0 });
  }

  remove(key: string): void {
    const e = this.where.get(key);
    if (!e) return;
    this.where.delete(key);
    const i = e.at;
    const last = this.heap.pop()!;
    if (i < this.heap.length) {
      this.heap[i] = last;
      last.at = i;
      this.down(i);
      this.up(i);
    }
  }

  /** The targets due by `now`, at most what the cap allows; each is scheduled again an interval (jittered) after its due time. */
  due(now: number): string[] {
    if (this.lastRefill !== null) this.tokens = Math.min(this.bucket, this.tokens + ((now - this.lastRefill) / 1000) * this.maxPerSecond);
    this.lastRefill = now;
    const out: string[] = [];
    while (this.heap.length && this.heap[0]!.due <= now && this.tokens >= 1) {
      const e = this.heap[0]!;
      this.tokens--;
      out.push(e.key);
      // The next round at least half an interval from now: a target the cap held back skips rounds, never catches up.
      do {
        e.round++;
        e.due = e.base + e.round * e.intervalMs + this.jitter(e.intervalMs);
      } while (e.due < now + e.intervalMs * MIN_GAP);
      this.down(0);
    }
    return out;
  }

  private jitter(intervalMs: number): number {
    return this.random() * JITTER * intervalMs;
  }

  /** The earliest due time, or null when nothing is scheduled. */
  next(): number | null {
    return this.heap[0]?.due ?? null;
  }

  private push(e: Entry): void {
    this.where.set(e.key, e);
    e.at = this.heap.length;
    this.heap.push(e);
    this.up(e.at);
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.due <= h[i]!.due) break;
      this.swap(p, i);
      i = p;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l]!.due < h[m]!.due) m = l;
      if (r < h.length && h[r]!.due < h[m]!.due) m = r;
      if (m === i) return;
      this.swap(m, i);
      i = m;
    }
  }

  private swap(a: number, b: number): void {
    const h = this.heap;
    [h[a], h[b]] = [h[b]!, h[a]!];
    h[a]!.at = a;
    h[b]!.at = b;
  }
}

/** Probes per second a node sends for `targets` backends at this interval, divided over `nodes` probing nodes. */
export const probesPerSecond = (targets: number, intervalSeconds: number, nodes: number) => targets / intervalSeconds / Math.max(1, nodes);
