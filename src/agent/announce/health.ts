/**
 * Whether this node may announce its VIPs: a node that cannot serve them
 * must not draw their traffic. Each check names what is wrong, or returns
 * null; the first problem found is the reason the node withdraws.
 */

export interface HealthCheck {
  /** What it checks, for the log. */
  name: string;
  /** What is wrong now, or null. */
  problem(): string | null;
}

export function firstProblem(checks: readonly HealthCheck[]): string | null {
  for (const c of checks) {
    const p = c.problem();
    if (p !== null) return `${c.name}: ${p}`;
  }
  return null;
}
