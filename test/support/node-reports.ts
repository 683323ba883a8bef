/** Tests read what nodes report of a VIP as the controller does: through its index of the XdpNodeReports. */
import { DEFAULT_BALANCER, type LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import type { CustomObjectsApi } from '@kubernetes/client-node';
import { type NodeStatus, type ReportedVip, vipKeyOf, type XdpNodeReport } from '../../src/api/xdpnodereport.js';
import { applyNodeReport } from '../../src/agent/sources/cluster-source.js';
import { NodeReports } from '../../src/controller/node-reports.js';

/** Each node's entry of the VIP, from a `kubectl get xdpnodereports -o json` list, sorted by node. */
export function vipNodes(reportList: string | { items: XdpNodeReport[] }, vip: LoadBalancerVip): NodeStatus[] {
  const list = typeof reportList === 'string' ? JSON.parse(reportList) as { items: XdpNodeReport[] } : reportList;
  const index = new NodeReports();
  for (const r of list.items) index.update(r, false);
  return index.nodesOf(`${vip.metadata.namespace}/${vip.metadata.name}`, vip.metadata.uid, vip.spec.balancer ?? DEFAULT_BALANCER);
}

/**
 * What a node's agent writes, for tests that play the agents: each node's
 * whole report, applied as the agent applies it (its field manager), with
 * the client given (the agent's own credentials, where the test has them).
 */
export class PlayedNodeReports {
  private readonly held = new Map<string, Map<string, ReportedVip>>();

  constructor(private readonly custom: (node: string) => CustomObjectsApi, private readonly balancer = DEFAULT_BALANCER) {}

  /** Sets the node's entry of the VIP (programmed: a generation; refused: an error) and writes the node's report. */
  async set(node: string, vip: LoadBalancerVip, entry: Omit<ReportedVip, 'namespace' | 'name' | 'uid'>): Promise<void> {
    const mine = this.held.get(node) ?? new Map<string, ReportedVip>();
    this.held.set(node, mine);
    const e: ReportedVip = { namespace: vip.metadata.namespace!, name: vip.metadata.name!, uid: vip.metadata.uid!, ...entry };
    mine.set(vipKeyOf(e), e);
    await applyNodeReport(this.custom(node), this.balancer, node, [...mine.values()].sort((a, b) => vipKeyOf(a).localeCompare(vipKeyOf(b))));
  }
}
