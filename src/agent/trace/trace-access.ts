/**
 * Who may trace what on an agent. Tracing is authorized per namespace: a
 * caller may trace the VIPs of namespaces where RBAC lets them
 * `create loadbalancervips/trace` (checked by SubjectAccessReview against
 * each traced VIP's namespace and name). A filter that reaches beyond such
 * VIPs (no VIP at all: every packet of the node, host traffic included; an
 * address that is no installed VIP) needs that permission in all namespaces.
 * Each caller also has a quota of sessions, program rules and records per
 * second, so one user cannot take the rules or the rate another's session needs.
 */
import type { LoadBalancerVip } from '../../api/loadbalancervip.js';
import { GROUP, LBVIP_PLURAL } from '../../api/loadbalancervip.js';
import type { TraceFilter } from '../../api/trace-filter.js';
import { TRACE_MAX_RULES } from '../../bpf/consts.js';
import { AccessDenied, type AccessReviewer, type Caller, check, describeAccess, type ResourceAccess } from '../../lib/access-review.js';
import { parseIp } from '../../lib/ip.js';
import type { InstalledVipRef } from '../dataplane/dataplane.js';
import { vipId } from '../dataplane/desired-state.js';
import { specsOf } from '../sources/cluster-vips.js';

/** The RBAC a trace needs: `create loadbalancervips/trace` (xdplb.dev) in the VIP's namespace. */
export const TRACE_SUBRESOURCE = 'trace';

export function traceAccess(namespace: string, name?: string): ResourceAccess {
  return { verb: 'create', group: GROUP, resource: LBVIP_PLURAL, subresource: TRACE_SUBRESOURCE, namespace, ...(name ? { name } : {}) };
}

/** A LoadBalancerVip behind an installed VIP. */
export interface VipOwner {
  namespace: string;
  name: string;
}

/** The LoadBalancerVips that put each installed VIP ("address:port/protocol") on this node. */
export class VipOwners {
  private byId = new Map<string, VipOwner[]>();

  /** Called with the VIPs the agent programmed (ClusterSource's onProgrammed). */
  set(vips: readonly LoadBalancerVip[]): void {
    const byId = new Map<string, VipOwner[]>();
    for (const v of vips) {
      for (const s of specsOf(v)) {
        const id = vipId(parseIp(s.address), s.port, s.protocol);
        const owners = byId.get(id) ?? [];
        owners.push({ namespace: v.metadata.namespace!, name: v.metadata.name! });
        byId.set(id, owners);
      }
    }
    this.byId = byId;
  }

  of(id: string): readonly VipOwner[] {
    return this.byId.get(id) ?? [];
  }
}

/** What a caller may see of a session: every record, or only those of these VIPs. */
export interface TraceGrant {
  clusterWide: boolean;
  vipIds: ReadonlySet<string>;
}

export interface TraceAuthorization {
  reviewer: AccessReviewer;
  owners: (vipId: string) => readonly VipOwner[];
  limits?: Partial<CallerLimits>;
}

/**
 * Decides whether `caller` may open a session with `filter`; throws
 * AccessDenied (403) naming the permission that is missing.
 * `selected(filter)` is the installed VIPs a filter names.
 */
export async function authorizeTrace(
  reviewer: AccessReviewer,
  caller: Caller,
  filter: TraceFilter,
  selected: (filter: TraceFilter) => readonly InstalledVipRef[],
  owners: (vipId: string) => readonly VipOwner[],
): Promise<TraceGrant> {
  const everywhere = traceAccess('');
  if (await check(reviewer, caller, everywhere)) return { clusterWide: true, vipIds: new Set() };
  const needEverywhere = (why: string) =>
    new AccessDenied(403, `${caller.username} may not trace ${why}: that needs ${describeAccess(everywhere)}; ` +
      `with ${describeAccess(traceAccess('NAMESPACE'))} only, name that namespace's VIPs (--vip NAMESPACE/NAME)`);
  if (!filter.vips.length) throw needEverywhere('without a VIP (every packet of the node, host traffic included)');
  const ids = new Set<string>();
  for (const sel of filter.vips) {
    const vips = selected({ vips: [sel] });
    if (!vips.length) throw needEverywhere(`${sel.text}, which is no VIP installed on this node`);
    for (const vip of vips) {
      const who = owners(vip.id);
      if (!who.length) throw needEverywhere(`${vip.id}, which no LoadBalancerVip on this node names`);
      for (const o of who) {
        const access = traceAccess(o.namespace, o.name);
        if (!(await check(reviewer, caller, access))) {
          throw new AccessDenied(403, `${caller.username} may not trace ${vip.id} of ${o.namespace}/${o.name}: ` +
            `that needs ${describeAccess(access)} (e.g. the xdplb-trace ClusterRole bound in namespace ${o.namespace})`);
        }
      }
      ids.add(vip.id);
    }
  }
  return { clusterWide: false, vipIds: ids };
}

/** What one caller may hold at once on an agent. */
export interface CallerLimits {
  sessions: number;
  /** Program trace rules (TRACE_MAX_RULES on the node): one per traced VIP, one for a filter without VIPs. */
  rules: number;
  /** Records per second, summed over the caller's sessions. */
  rate: number;
}

export const DEFAULT_CALLER_LIMITS: CallerLimits = { sessions: 4, rules: Math.max(1, Math.floor(TRACE_MAX_RULES / 2)), rate: 10_000 };

/** A caller over their quota (HTTP 429): another caller's sessions are not affected. */
export class TraceQuotaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TraceQuotaError';
  }
}

interface Usage {
  sessions: number;
  rules: number;
  rate: number;
}

/** Per-caller accounting of open sessions. */
export class CallerQuotas {
  private readonly usage = new Map<string, Usage>();
  readonly limits: CallerLimits;

  constructor(limits: Partial<CallerLimits> = {}) {
    this.limits = { ...DEFAULT_CALLER_LIMITS, ...limits };
  }

  /** Takes a session's share of the caller's quota; returns its release. Throws TraceQuotaError beyond it. */
  take(caller: string, cost: { rules: number; rate: number }): () => void {
    const u = this.usage.get(caller) ?? { sessions: 0, rules: 0, rate: 0 };
    const l = this.limits;
    const over = u.sessions + 1 > l.sessions ? `${l.sessions} sessions`
      : u.rules + cost.rules > l.rules ? `${l.rules} trace rules (this session needs ${cost.rules}, open ones hold ${u.rules})`
        : u.rate + cost.rate > l.rate ? `${l.rate} records/s (this session asks ${cost.rate}, open ones hold ${u.rate})`
          : null;
    if (over) throw new TraceQuotaError(`${caller} may hold at most ${over} on this node: close another trace, name fewer VIPs or lower --rate`);
    const next = { sessions: u.sessions + 1, rules: u.rules + cost.rules, rate: u.rate + cost.rate };
    this.usage.set(caller, next);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = this.usage.get(caller)!;
      const left = { sessions: now.sessions - 1, rules: now.rules - cost.rules, rate: now.rate - cost.rate };
      if (left.sessions) this.usage.set(caller, left);
      else this.usage.delete(caller);
    };
  }

  of(caller: string): Usage {
    return this.usage.get(caller) ?? { sessions: 0, rules: 0, rate: 0 };
  }
}
