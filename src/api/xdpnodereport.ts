/**
 * XdpNodeReport: what one node's agent has programmed, one object per
 * (balancer, node), written only by that agent (deploy/agent-node-restriction.yaml)
 * and read only by the controller, which folds the reports into each VIP's
 * Programmed condition and node count. Agents never receive each other's
 * reports, and one change is one write per node, whatever the number of VIPs:
 * per-VIP entries written by every agent made every agent receive every
 * other's writes (bench/README.md, issue 17). EndpointSlices split a large
 * status the same way.
 */
import type { V1ObjectMeta } from '@kubernetes/client-node';

export const XNR_KIND = 'XdpNodeReport';
export const XNR_PLURAL = 'xdpnodereports';

/** One VIP as a node's agent holds it: programmed (generation set), or refused (error set). */
export interface ReportedVip {
  namespace: string;
  name: string;
  /** The VIP object's uid: an entry of a deleted VIP never counts for a new one of the same name. */
  uid: string;
  /** The metadata.generation this node's maps hold. */
  generation?: number;
  /** The status.backendsRevision this node's maps hold (the VIP's address and reals). */
  backendsRevision?: string;
  /** Reals programmed: its backends, or in Node addressing the nodes they are on. */
  reals?: number;
  /** Why the node could not program it. */
  error?: string;
}

export interface XdpNodeReport {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  balancer: string;
  node: string;
  /** Sorted by namespace, then name. */
  vips?: ReportedVip[];
}

/** What one node holds of one VIP, as the controller reads it from that node's report. */
export interface NodeStatus {
  node: string;
  programmedGeneration?: number;
  programmedBackendsRevision?: string;
  reals?: number;
  lastError?: string;
}

/** The report's name: one per balancer and node (the balancer a DNS label, with no dot, so the name says which of each it is). */
export const nodeReportName = (balancer: string, node: string) => `${balancer}.${node}`;

export const vipKeyOf = (e: Pick<ReportedVip, 'namespace' | 'name'>) => `${e.namespace}/${e.name}`;

export function nodeStatusOf(node: string, e: ReportedVip): NodeStatus {
  return {
    node,
    ...(e.generation === undefined ? {} : { programmedGeneration: e.generation }),
    ...(e.backendsRevision === undefined ? {} : { programmedBackendsRevision: e.backendsRevision }),
    ...(e.reals === undefined ? {} : { reals: e.reals }),
    ...(e.error === undefined ? {} : { lastError: e.error }),
  };
}
