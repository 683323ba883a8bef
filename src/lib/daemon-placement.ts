/**
 * Whether a DaemonSet's pod fits a node, as the DaemonSet controller decides
 * it: the nodeSelector, the required node affinity, and every NoSchedule or
 * NoExecute taint tolerated (by the pod's tolerations or by those the
 * DaemonSet controller adds to every daemon pod). Pure; shared by the
 * controller (which balancer may run where) and the agent (is this node still
 * one its DaemonSet wants, when it stops).
 */
import type { V1Affinity, V1Node, V1NodeSelectorRequirement, V1NodeSelectorTerm, V1Taint, V1Toleration } from '@kubernetes/client-node';

/** What of a pod spec decides its node. */
export interface PodPlacement {
  nodeSelector?: Record<string, string>;
  tolerations?: V1Toleration[];
  affinity?: V1Affinity;
}

/**
 * Taints every daemon pod tolerates: the DaemonSet controller adds these
 * tolerations (network-unavailable for host-network pods like the agent).
 */
const DAEMON_TOLERATED = new Set([
  'node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable', 'node.kubernetes.io/disk-pressure',
  'node.kubernetes.io/memory-pressure', 'node.kubernetes.io/pid-pressure', 'node.kubernetes.io/unschedulable',
  'node.kubernetes.io/network-unavailable',
]);

/** The node field a node affinity can name. */
export const NODE_NAME_FIELD = 'metadata.name';

function tolerates(t: V1Toleration, taint: V1Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.operator === 'Exists') return !t.key || t.key === taint.key;
  return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
}

function requirementHolds(r: V1NodeSelectorRequirement, value: string | undefined): boolean {
  const values = r.values ?? [];
  switch (r.operator) {
    case 'In': return value !== undefined && values.includes(value);
    case 'NotIn': return value === undefined || !values.includes(value);
    case 'Exists': return value !== undefined;
    case 'DoesNotExist': return value === undefined;
    case 'Gt': return value !== undefined && Number(value) > Number(values[0]);
    case 'Lt': return value !== undefined && Number(value) < Number(values[0]);
    default: return false;
  }
}

function termHolds(term: V1NodeSelectorTerm, node: V1Node): boolean {
  const labels = node.metadata?.labels ?? {};
  const fields: Record<string, string | undefined> = { [NODE_NAME_FIELD]: node.metadata?.name };
  const exprs = term.matchExpressions ?? [];
  const matchFields = term.matchFields ?? [];
  // An empty term selects no node (the API's rule).
  if (!exprs.length && !matchFields.length) return false;
  return exprs.every((r) => requirementHolds(r, labels[r.key])) && matchFields.every((r) => requirementHolds(r, fields[r.key]));
}

export function daemonPodFits(p: PodPlacement, node: V1Node): boolean {
  const labels = node.metadata?.labels ?? {};
  if (!Object.entries(p.nodeSelector ?? {}).every(([k, v]) => labels[k] === v)) return false;
  const terms = p.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  if (terms && !terms.some((t) => termHolds(t, node))) return false;
  return (node.spec?.taints ?? []).every((taint) =>
    taint.effect === 'PreferNoSchedule' || DAEMON_TOLERATED.has(taint.key) || (p.tolerations ?? []).some((t) => tolerates(t, taint)));
}
