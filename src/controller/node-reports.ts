/**
 * The agents' XdpNodeReports, indexed by VIP: what each node holds of each
 * VIP. A report event is diffed against the one before it, so only the VIPs
 * whose entries changed are reconciled again (one pod change moves one entry
 * per node, not the whole report).
 */
import { nodeStatusOf, type NodeStatus, type ReportedVip, vipKeyOf, type XdpNodeReport } from '../api/xdpnodereport.js';

interface Held {
  balancer: string;
  node: string;
  /** VIP key -> its entry. */
  vips: Map<string, ReportedVip>;
}

const sameEntry = (a: ReportedVip, b: ReportedVip) => a.uid === b.uid && a.generation === b.generation &&
  a.backendsRevision === b.backendsRevision && a.reals === b.reals && a.error === b.error;

export class NodeReports {
  /** Report name -> what it holds. */
  private readonly reports = new Map<string, Held>();
  /** VIP key -> report name -> its entry there. */
  private readonly byVip = new Map<string, Map<string, ReportedVip>>();
  /** "balancer/node" of every report. */
  private readonly reporting = new Set<string>();

  /** Follows a report event; returns the keys of the VIPs whose entries changed. */
  update(report: XdpNodeReport, deleted: boolean): Set<string> {
    const name = report.metadata.name!;
    const before = this.reports.get(name);
    const after: Held | undefined = deleted ? undefined
      : { balancer: report.balancer, node: report.node, vips: new Map((report.vips ?? []).map((e) => [vipKeyOf(e), e])) };
    const changed = new Set<string>();
    // A report that moved to another balancer or node (it never should): every entry counts as changed.
    const moved = !!before && !!after && (before.balancer !== after.balancer || before.node !== after.node);
    for (const [key, e] of before?.vips ?? []) {
      const now = after?.vips.get(key);
      if (moved || !now || !sameEntry(e, now)) changed.add(key);
      if (!now) this.forget(key, name);
    }
    for (const [key, e] of after?.vips ?? []) {
      const was = before?.vips.get(key);
      if (moved || !was || !sameEntry(was, e)) changed.add(key);
      let held = this.byVip.get(key);
      if (!held) this.byVip.set(key, (held = new Map()));
      held.set(name, e);
    }
    if (before) this.reporting.delete(`${before.balancer}/${before.node}`);
    if (after) {
      this.reports.set(name, after);
      this.reporting.add(`${after.balancer}/${after.node}`);
    } else this.reports.delete(name);
    return changed;
  }

  /**
   * What each node of `balancer` reports of the VIP with this key and uid,
   * sorted by node; `legacy` (the VIP's deprecated status.nodes, written by
   * agents of earlier versions) stands in for nodes that have no report yet,
   * so that an upgrade whose agents still run the old image keeps its VIPs
   * Programmed and its L2 announcers.
   */
  nodesOf(key: string, uid: string | undefined, balancer: string, legacy: readonly NodeStatus[] = []): NodeStatus[] {
    const out = new Map<string, NodeStatus>();
    for (const [name, e] of this.byVip.get(key) ?? []) {
      const r = this.reports.get(name);
      if (!r || r.balancer !== balancer || e.uid !== uid) continue;
      out.set(r.node, nodeStatusOf(r.node, e));
    }
    for (const n of legacy) if (!out.has(n.node) && !this.reportsFrom(n.node, balancer)) out.set(n.node, n);
    return [...out.values()].sort((a, b) => a.node.localeCompare(b.node));
  }

  /** Whether the node has a report for the balancer: then its legacy entries are stale. */
  private reportsFrom(node: string, balancer: string): boolean {
    return this.reporting.has(`${balancer}/${node}`);
  }

  private forget(key: string, report: string): void {
    const held = this.byVip.get(key);
    held?.delete(report);
    if (held?.size === 0) this.byVip.delete(key);
  }
}
