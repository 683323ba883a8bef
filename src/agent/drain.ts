/**
 * Before an agent that is leaving its node for good detaches, the traffic
 * must have moved: its routes are withdrawn first, then it watches its own
 * forwarded-packet counter until it stays still for a quiet period, or until
 * the balancer's drainSeconds run out, whichever comes first. Only after a
 * withdrawal does waiting make sense: without one nothing moves the traffic.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** How often the counter is read. */
export const DRAIN_POLL_MS = 250;
/** No packet forwarded for this long: the routers have moved the traffic. */
export const DRAIN_QUIET_MS = 2000;

export interface DrainResult {
  /** The counter stayed still for the quiet period (else the bound ran out). */
  quiet: boolean;
  waitedMs: number;
  /** Packets forwarded while waiting. */
  packets: bigint;
}

export interface DrainOptions {
  /** The bound: the balancer's drainSeconds, in ms. */
  maxMs: number;
  quietMs?: number;
  pollMs?: number;
  /** For tests: time and waiting. */
  now?: () => number;
  wait?: (ms: number) => Promise<unknown>;
}

/** Waits until `forwarded()` (a counter that only grows) stays still for quietMs, or maxMs passed. */
export async function waitForTrafficToMove(forwarded: () => bigint, opts: DrainOptions): Promise<DrainResult> {
  const now = opts.now ?? Date.now;
  const wait = opts.wait ?? sleep;
  const quietMs = opts.quietMs ?? DRAIN_QUIET_MS;
  const pollMs = opts.pollMs ?? DRAIN_POLL_MS;
  const start = now();
  const first = forwarded();
  let last = first;
  let stillSince = start;
  for (;;) {
    const t = now();
    if (t - stillSince >= quietMs) return { quiet: true, waitedMs: t - start, packets: last - first };
    if (t - start >= opts.maxMs) return { quiet: false, waitedMs: t - start, packets: last - first };
    await wait(pollMs);
    const n = forwarded();
    if (n !== last) {
      last = n;
      stillSince = now();
    }
  }
}
