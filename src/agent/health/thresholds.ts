/**
 * One backend's health from its probes: unhealthy after `unhealthyThreshold`
 * failures in a row, healthy again after `healthyThreshold` successes in a
 * row. A result that agrees with the state resets the opposite count, so a
 * flapping path (fail, succeed, fail, ...) changes nothing. Pure.
 */
export interface Thresholds {
  unhealthyThreshold: number;
  healthyThreshold: number;
}

export interface HealthState {
  healthy: boolean;
  /** Failures in a row (while healthy) or successes in a row (while unhealthy) toward a change. */
  streak: number;
  /** When the state last changed (ms since the epoch); its first judgement's time for a new one. */
  since: number;
  /** Why the last probe failed; kept while unhealthy. */
  reason?: string;
}

/** A backend seen for the first time: healthy unless known unhealthy (another node judged it so, the status says). */
export function initialHealth(now: number, knownUnhealthy?: { since: number; reason?: string }): HealthState {
  return knownUnhealthy ? { healthy: false, streak: 0, since: knownUnhealthy.since, reason: knownUnhealthy.reason } : { healthy: true, streak: 0, since: now };
}

/** The state after one probe's result; `changed` when it crossed a threshold. */
export function observe(s: HealthState, ok: boolean, t: Thresholds, now: number, reason?: string): { state: HealthState; changed: boolean } {
  if (ok === s.healthy) {
    // Agrees with the state: any streak toward the other state is broken.
    return { state: { ...s, streak: 0, ...(ok ? {} : { reason: reason ?? s.reason }) }, changed: false };
  }
  const streak = s.streak + 1;
  const needed = s.healthy ? t.unhealthyThreshold : t.healthyThreshold;
  if (streak < needed) return { state: { ...s, streak, ...(ok ? {} : { reason }) }, changed: false };
  return ok
    ? { state: { healthy: true, streak: 0, since: now }, changed: true }
    : { state: { healthy: false, streak: 0, since: now, reason }, changed: true };
}
