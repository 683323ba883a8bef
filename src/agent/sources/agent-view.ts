/**
 * What of a LoadBalancerVip an agent acts on, as a digest: an update that
 * leaves it equal needs no sync. Most updates an agent receives are of that
 * kind: after each backend change the controller writes the VIP again to say
 * how many nodes confirmed it (programmedNodes, Programmed, Ready), and
 * without this every agent would plan its whole balancer again for each such
 * write, a cost that grows with VIPs times nodes (issue 17).
 *
 * Fields are left out by name, not picked: a field added later counts as read
 * until it is listed here, so the worst a mistake costs is a sync too many.
 */
import { createHash } from 'node:crypto';
import { ConditionType, type LoadBalancerVip, type LoadBalancerVipStatus } from '../../api/loadbalancervip.js';

/**
 * Status fields the controller writes for people (kubectl get) that no agent
 * code reads; of the conditions, only READ_CONDITIONS count.
 */
export const UNREAD_STATUS = [
  'observedGeneration', 'addressPool', 'ports', 'readyBackends', 'unlistedBackends', 'programmedNodes', 'nodes', 'healthCheck', 'conditions',
] as const satisfies readonly (keyof LoadBalancerVipStatus)[];

/** The conditions agents act on (cluster-vips.ts: allowedAddress, inConflict), by type and status only. */
export const READ_CONDITIONS: ReadonlySet<string> = new Set([ConditionType.AddressAllowed, ConditionType.Conflict]);

/** A digest of everything of `v` an agent reads: equal digests, equal programming, reports and probes. */
export function agentViewOf(v: LoadBalancerVip): string {
  const { resourceVersion: _rv, managedFields: _mf, ...metadata } = v.metadata;
  const status: Record<string, unknown> = { ...v.status };
  for (const f of UNREAD_STATUS) delete status[f];
  const conditions = (v.status?.conditions ?? []).filter((c) => READ_CONDITIONS.has(c.type)).map((c) => [c.type, c.status]);
  const text = JSON.stringify([metadata, v.spec, status, conditions]);
  return createHash('sha256').update(text).digest('base64');
}

/**
 * The digest of each VIP last seen, by namespace/name: `changed` says whether
 * an event brings anything an agent reads.
 */
export class AgentViews {
  private readonly seen = new Map<string, string>();

  /** Records the VIP as it is now; false when what agents read is as it was. */
  changed(v: LoadBalancerVip, verb: 'add' | 'update' | 'delete'): boolean {
    const key = `${v.metadata.namespace}/${v.metadata.name}`;
    if (verb === 'delete') {
      this.seen.delete(key);
      return true;
    }
    const view = agentViewOf(v);
    const before = this.seen.get(key);
    this.seen.set(key, view);
    return before !== view;
  }

  get size(): number {
    return this.seen.size;
  }
}
