/**
 * status.backends holds at most so many entries (the CRD's maxItems): a
 * longer list makes the API server refuse every status write (422), and the
 * VIP's status freezes, drains included. Past the limit the list keeps every
 * backend it had already, whether active (it carries flows) or draining (its
 * flows finish), and fills the rest with new backends by address. Those left
 * out are counted: they get no traffic until there is room.
 */
import type { BackendStatus } from '../api/loadbalancervip.js';

export interface LimitedBackends {
  /** What status.backends lists, sorted by address as resolution sorts it. */
  listed: BackendStatus[];
  /** The backends left out. */
  unlisted: BackendStatus[];
}

export function limitBackends(backends: readonly BackendStatus[], previous: readonly BackendStatus[] | undefined, max: number): LimitedBackends {
  if (backends.length <= max) return { listed: [...backends], unlisted: [] };
  const had = new Set((previous ?? []).map((b) => b.ip));
  // Draining backends all come from the previous list, so they are among the kept ones.
  const kept = backends.filter((b) => had.has(b.ip));
  const fresh = backends.filter((b) => !had.has(b.ip));
  const chosen = new Set([...kept, ...fresh].slice(0, max));
  return { listed: backends.filter((b) => chosen.has(b)), unlisted: backends.filter((b) => !chosen.has(b)) };
}
