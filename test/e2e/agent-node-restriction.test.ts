/**
 * deploy/agent-node-restriction.yaml on a real kube-apiserver: an agent's
 * writes are limited to its own node's XdpBalancer status entry, XdpNodeReport
 * and L2 Leases, by the node name claim of its Pod-bound ServiceAccount token. Agents A (node-a) and B (node-b) get
 * tokens as a kubelet would project them (ControlPlane.agentKubeconfigOn); the
 * static agent token (no node claim) and the controller's token are the others.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CoordinationV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions, type V1Lease } from '@kubernetes/client-node';
import { backendsRevision } from '../../src/api/backends-revision.js';
import { GROUP, LBVIP_KIND, LBVIP_PLURAL, VERSION } from '../../src/api/loadbalancervip.js';
import { L2_LEASE_NODE_LABEL, l2LeaseName, XDPB_KIND, XDPB_PLURAL } from '../../src/api/xdpbalancer.js';
import { AgentLease } from '../../src/agent/announce/l2-lease.js';
import { NodeReport } from '../../src/agent/announce/node-report.js';
import { agentFieldManager, applyNodeReport } from '../../src/agent/sources/cluster-source.js';
import { XNR_KIND, XNR_PLURAL } from '../../src/api/xdpnodereport.js';
import { controlPlaneFixture } from './control-plane/fixture.js';
import { kubeConfigFrom, waitUntil } from './control-plane/objects.js';

const deployFile = (f: string) => fileURLToPath(new URL(`../../../deploy/${f}`, import.meta.url));
const POLICY = deployFile('agent-node-restriction.yaml');

const f = controlPlaneFixture((cp) => {
  cp.kubectl(['apply', '-f', deployFile('namespace.yaml')]);
  cp.kubectl(['create', 'namespace', 'shop']);
  cp.kubectl(['apply', '-f', deployFile('rbac-agent.yaml')]);
  cp.kubectl(['apply', '-f', deployFile('rbac-controller.yaml')]);
  cp.kubectl(['apply', '-f', POLICY]);
});

interface Outcome { code: number; message: string }

/** The API server's answer to a write: 200, or its error code and message. */
async function attempt(write: () => Promise<unknown>): Promise<Outcome> {
  try {
    await write();
    return { code: 200, message: '' };
  } catch (err) {
    const e = err as { code?: number; body?: unknown };
    let message = String(e.body ?? err);
    try {
      message = (JSON.parse(String(e.body)) as { message: string }).message;
    } catch { /* not JSON */ }
    return { code: e.code ?? 0, message };
  }
}

/** A server-side apply of status as an agent writes it: `nodes` holds the entries to own, other fields beside them. */
function applyStatus(kc: KubeConfig, kind: 'vip' | 'balancer', name: string, manager: string, status: Record<string, unknown>): Promise<unknown> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const headers = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
  if (kind === 'vip') {
    const body = { apiVersion: `${GROUP}/${VERSION}`, kind: LBVIP_KIND, metadata: { name, namespace: 'shop' }, status };
    return custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: 'shop', name, body, fieldManager: manager, force: true }, headers);
  }
  const body = { apiVersion: `${GROUP}/${VERSION}`, kind: XDPB_KIND, metadata: { name }, status };
  return custom.patchClusterCustomObjectStatus({ group: GROUP, version: VERSION, plural: XDPB_PLURAL, name, body, fieldManager: manager, force: true }, headers);
}

const statusOf = (kind: 'vip' | 'balancer', name: string) =>
  JSON.parse(f.cp.kubectl(kind === 'vip' ? ['get', 'lbvip', name, '-n', 'shop', '-o', 'json'] : ['get', 'xdpbalancer', name, '-o', 'json'])).status as Record<string, unknown> & { nodes?: { node: string }[] };

const FOREIGN = /may change only its own entry of status\.nodes \(node: node-a\), not the entries of other nodes/;
const OTHER_FIELD = /may change only its own entry of status\.nodes \(node: node-a\), no other status field/;
const UPDATED = '2026-01-01T00:00:00Z';
const NO_CLAIM = /carries no node name claim/;

describe('agents write only their own node\'s status entry, report and Leases (deploy/agent-node-restriction.yaml)', () => {
  test('refused without a node claim, own entry allowed, other nodes\' entries and other fields refused, controller unaffected', async (t) => {
    if (!f.need(t)) return;
    const { cp } = f;
    cp.kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: edge}\nspec: {image: "xdplb:0.1.0"}\n');
    cp.kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: web, namespace: shop}\nspec: {address: 198.19.0.10, ports: [{port: 80}], backendSelector: {matchLabels: {app: web}}}\n');
    const controller = kubeConfigFrom(cp.kubeconfigAs('xdplb-system/xdplb-controller'));
    const staticAgent = kubeConfigFrom(cp.kubeconfigAs('xdplb-system/xdplb-agent'));
    const a = kubeConfigFrom(cp.agentKubeconfigOn('node-a'));
    const b = kubeConfigFrom(cp.agentKubeconfigOn('node-b'));

    // The policy is enforced once the API server has loaded it: a token without a node claim is refused.
    const noClaim = await waitUntil('the static agent token is refused', () => attempt(() =>
      applyStatus(staticAgent, 'balancer', 'edge', agentFieldManager('node-a'), { nodes: [{ node: 'node-a', updated: UPDATED }] })), (o) => NO_CLAIM.test(o.message));
    assert.equal(noClaim.code, 403, noClaim.message);
    assert.match(noClaim.message, NO_CLAIM);
    assert.match(noClaim.message, /ValidatingAdmissionPolicy 'xdplb-agent-node-restriction'/);

    {
      const [kind, name] = ['balancer', 'edge'] as const;
      const entry = (node: string, n: number) => ({ node, updated: UPDATED, l2: { answering: n } });
      // The controller writes what it owns, and may touch any entry (it prunes nodes that left).
      const own = { observedGeneration: 1, desiredAgents: 2 };
      assert.equal((await attempt(() => applyStatus(controller, kind, name, 'xdplb-controller', own))).code, 200, `${kind}: the controller writes its fields`);
      // Each agent writes its own entry.
      assert.deepEqual(await attempt(() => applyStatus(a, kind, name, agentFieldManager('node-a'), { nodes: [entry('node-a', 1)] })), { code: 200, message: '' }, `${kind}: A writes its own entry`);
      assert.deepEqual(await attempt(() => applyStatus(b, kind, name, agentFieldManager('node-b'), { nodes: [entry('node-b', 1)] })), { code: 200, message: '' }, `${kind}: B writes its own entry`);
      assert.deepEqual(await attempt(() => applyStatus(a, kind, name, agentFieldManager('node-a'), { nodes: [entry('node-a', 2)] })), { code: 200, message: '' }, `${kind}: A changes its own entry`);
      const before = statusOf(kind, name);
      assert.deepEqual(before.nodes?.map((n) => n.node).sort(), ['node-a', 'node-b']);

      // A cannot write B's entry: not under B's field manager, not under its own, not beside its own.
      for (const [manager, nodes] of [
        [agentFieldManager('node-b'), [entry('node-b', 7)]],
        [agentFieldManager('node-a'), [entry('node-b', 7)]],
        [agentFieldManager('node-a'), [entry('node-a', 2), entry('node-c', 1)]],
      ] as const) {
        const o = await attempt(() => applyStatus(a, kind, name, manager, { nodes }));
        assert.ok(o.code === 403 || o.code === 422, `${kind}: A writing ${JSON.stringify(nodes)} as ${manager}: ${o.code} ${o.message}`);
        assert.match(o.message, FOREIGN, `${kind}: ${o.message}`);
      }
      // Nor remove B's entry by a merge patch of the list.
      const removal = await attempt(() => {
        const custom = a.makeApiClient(CustomObjectsApi);
        const headers = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
        const body = { status: { nodes: [entry('node-a', 2)] } };
        return custom.patchClusterCustomObjectStatus({ group: GROUP, version: VERSION, plural: XDPB_PLURAL, name, body }, headers);
      });
      assert.match(removal.message, FOREIGN, `${kind}: removing B's entry: ${removal.code} ${removal.message}`);
      // Nor any other status field, even beside its own entry.
      const other = await attempt(() => applyStatus(a, kind, name, agentFieldManager('node-a'), { observedGeneration: 9, nodes: [entry('node-a', 2)] }));
      assert.ok(other.code === 403 || other.code === 422, `${kind}: ${other.code} ${other.message}`);
      assert.match(other.message, OTHER_FIELD);
      assert.deepEqual(statusOf(kind, name), before, `${kind}: nothing refused reached the object`);

      // The controller still writes anything in status, other nodes' entries included.
      assert.equal((await attempt(() => applyStatus(controller, kind, name, 'xdplb-controller', { ...own, observedGeneration: 2 }))).code, 200);
      assert.equal(statusOf(kind, name).observedGeneration, 2);
    }

    // The agent's own code: NodeReport writes node-a's entry with A's token; with the static one it cannot.
    const report = new NodeReport(a, 'edge', 'node-a', () => ({ l2: { answering: ['198.19.0.10', '198.19.0.11', '198.19.0.12'], announcementsSent: 0, announceErrors: 0 } }));
    await report.check();
    const written = statusOf('balancer', 'edge').nodes?.find((n) => n.node === 'node-a') as { l2?: { answering: number } } | undefined;
    assert.equal(written?.l2?.answering, 3, JSON.stringify(written));
  });

  test('XdpNodeReports: an agent writes and deletes only its own node\'s; of a VIP\'s status, nothing but its deprecated entry', async (t) => {
    if (!f.need(t)) return;
    const { cp } = f;
    cp.kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: web2, namespace: shop}\nspec: {address: 198.19.0.11, ports: [{port: 80}], backendSelector: {matchLabels: {app: web}}}\n');
    const staticAgent = kubeConfigFrom(cp.kubeconfigAs('xdplb-system/xdplb-agent'));
    const controller = kubeConfigFrom(cp.kubeconfigAs('xdplb-system/xdplb-controller'));
    const a = kubeConfigFrom(cp.agentKubeconfigOn('node-a'));
    const b = kubeConfigFrom(cp.agentKubeconfigOn('node-b'));
    const custom = (kc: KubeConfig) => kc.makeApiClient(CustomObjectsApi);
    // A VIP entry as an agent writes it, the backends revision it programmed included.
    const vips = (n: number) => [{ namespace: 'shop', name: 'web2', uid: 'u', generation: 1, backendsRevision: backendsRevision({ status: { address: `198.19.0.${n}` } }), reals: n }];
    const reportOf = (name: string) => JSON.parse(cp.kubectl(['get', XNR_PLURAL, name, '--ignore-not-found', '-o', 'json']) || 'null') as { node: string; vips: { reals: number }[] } | null;
    const OWN_REPORT = /xdplb-agent on node node-a may write only its own XdpNodeReport \(node: node-a, named BALANCER\.node-a\)/;

    const noClaim = await waitUntil('the static agent token is refused a report', () => attempt(() => applyNodeReport(custom(staticAgent), 'edge', 'node-a', vips(1))),
      (o) => NO_CLAIM.test(o.message));
    assert.equal(noClaim.code, 403, noClaim.message);
    assert.match(noClaim.message, /ValidatingAdmissionPolicy 'xdplb-agent-node-reports'/);
    // Each agent writes, and rewrites, its own.
    assert.deepEqual(await attempt(() => applyNodeReport(custom(a), 'edge', 'node-a', vips(1))), { code: 200, message: '' }, 'A writes its report');
    assert.deepEqual(await attempt(() => applyNodeReport(custom(b), 'edge', 'node-b', vips(1))), { code: 200, message: '' }, 'B writes its report');
    assert.deepEqual(await attempt(() => applyNodeReport(custom(a), 'edge', 'node-a', vips(2))), { code: 200, message: '' }, 'A rewrites its report');
    assert.equal(reportOf('edge.node-a')?.vips[0]?.reals, 2);
    // Owned by its own Node (the garbage collector deletes it with the node), and by nothing else.
    const owner = (name: string, extra: Record<string, boolean> = {}) => ({ apiVersion: 'v1', kind: 'Node', name, uid: `uid-${name}`, ...extra });
    assert.deepEqual(await attempt(() => applyNodeReport(custom(a), 'edge', 'node-a', vips(2), owner('node-a'))), { code: 200, message: '' }, 'A owned by its Node');
    const OWNER = /xdplb-agent on node node-a may give its XdpNodeReport only its own Node as owner/;
    for (const bad of [owner('node-b'), owner('node-a', { blockOwnerDeletion: true }), owner('node-a', { controller: true }), { ...owner('node-a'), kind: 'Pod' }]) {
      const o = await attempt(() => applyNodeReport(custom(a), 'edge', 'node-a', vips(2), bad));
      assert.equal(o.code, 403, `owner ${JSON.stringify(bad)}: ${o.message}`);
      assert.match(o.message, OWNER);
    }
    // Not B's: under B's name, or its own name with B's node, or a name that is not BALANCER.NODE.
    const forged = (name: string, node: string) => custom(a).patchClusterCustomObject({
      group: GROUP, version: VERSION, plural: XNR_PLURAL, name, fieldManager: agentFieldManager('node-a'), force: true,
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: XNR_KIND, metadata: { name }, balancer: 'edge', node, vips: vips(7) },
    }, setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply));
    for (const [name, node] of [['edge.node-b', 'node-b'], ['edge.node-a', 'node-b'], ['other.node-b', 'node-a'], ['edge.node-b', 'node-a']] as const) {
      const o = await attempt(() => forged(name, node));
      assert.equal(o.code, 403, `A writing ${name} (node ${node}): ${o.message}`);
      assert.match(o.message, OWN_REPORT);
    }
    const deleteB = await attempt(() => custom(a).deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: XNR_PLURAL, name: 'edge.node-b' }));
    assert.equal(deleteB.code, 403, deleteB.message);
    assert.match(deleteB.message, OWN_REPORT);
    assert.equal(reportOf('edge.node-b')?.vips[0]?.reals, 1, 'B\'s report is as B wrote it');
    // The controller reads them and never writes one.
    assert.equal((await attempt(() => applyNodeReport(custom(controller), 'edge', 'node-a', vips(3)))).code, 403);
    // Of a VIP's status an agent may write only its own deprecated status.nodes entry (the previous version's agents, during an upgrade).
    const vipWrite = await attempt(() => applyStatus(a, 'vip', 'web2', agentFieldManager('node-a'), { observedGeneration: 9 }));
    assert.equal(vipWrite.code, 403, vipWrite.message);
    assert.match(vipWrite.message, OTHER_FIELD);
    const legacy = await attempt(() => applyStatus(a, 'vip', 'web2', agentFieldManager('node-a'), { nodes: [{ node: 'node-a', programmedGeneration: 1 }] }));
    assert.deepEqual(legacy, { code: 200, message: '' });
    // An agent leaving its node for good deletes its own.
    assert.deepEqual(await attempt(() => custom(a).deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: XNR_PLURAL, name: 'edge.node-a' })),
      { code: 200, message: '' });
    assert.equal(reportOf('edge.node-a'), null);
  });

  test('L2 Leases: an agent creates, renews and deletes only its own; not another node\'s, not the controller\'s', async (t) => {
    if (!f.need(t)) return;
    const { cp } = f;
    const ns = 'xdplb-system';
    const leases = (kc: KubeConfig) => kc.makeApiClient(CoordinationV1Api);
    const a = kubeConfigFrom(cp.agentKubeconfigOn('node-a'));
    const b = kubeConfigFrom(cp.agentKubeconfigOn('node-b'));
    const lease = (name: string, node: string): V1Lease => ({
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: ns, labels: { [L2_LEASE_NODE_LABEL]: node } },
      spec: { holderIdentity: node, leaseDurationSeconds: 30 },
    });
    const OWN_LEASES = /xdplb-agent on node node-a may create, renew and delete only its own Leases \(label xdplb\.dev\/l2-node and spec\.holderIdentity node-a\)/;
    const refused = async (what: string, write: () => Promise<unknown>, re: RegExp) => {
      const o = await attempt(write);
      assert.equal(o.code, 403, `${what}: ${o.message}`);
      assert.match(o.message, re, what);
    };

    // The static token: refused, and says why (once the API server has loaded the policy).
    await waitUntil('the static agent token is refused a Lease', () => attempt(() =>
      leases(kubeConfigFrom(cp.kubeconfigAs('xdplb-system/xdplb-agent'))).createNamespacedLease({ namespace: ns, body: lease('static', 'node-a') })),
    (o) => NO_CLAIM.test(o.message));

    // The agents' own code: each takes, renews and releases its Lease.
    // Short, so that it renews while the test runs.
    const mine = new AgentLease(a, { balancer: 'default', node: 'node-a', namespace: ns, leaseSeconds: 3 });
    const theirs = new AgentLease(b, { balancer: 'default', node: 'node-b', namespace: ns, leaseSeconds: 30 });
    await mine.start();
    await theirs.start();
    assert.ok(mine.renewals >= 1);
    assert.equal(theirs.renewals, 1);
    const bName = l2LeaseName('default', 'node-b');
    const bLease = await leases(kubeConfigFrom(cp.kubeconfig)).readNamespacedLease({ name: bName, namespace: ns });

    // A cannot claim node-b, nor take over, renew or delete B's Lease, nor touch the controller's.
    await refused('A creates a Lease for node-b', () => leases(a).createNamespacedLease({ namespace: ns, body: lease('xdplb-l2-fake.node-b', 'node-b') }), OWN_LEASES);
    await refused('A renews B\'s Lease', () => leases(a).replaceNamespacedLease({ name: bName, namespace: ns, body: bLease }), OWN_LEASES);
    await refused('A takes B\'s Lease', () => leases(a).replaceNamespacedLease({ name: bName, namespace: ns,
      body: { ...bLease, metadata: { ...bLease.metadata, labels: { [L2_LEASE_NODE_LABEL]: 'node-a' } }, spec: { ...bLease.spec, holderIdentity: 'node-a' } } }), OWN_LEASES);
    await refused('A deletes B\'s Lease', () => leases(a).deleteNamespacedLease({ name: bName, namespace: ns }), OWN_LEASES);
    cp.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'xdplb-controller', namespace: ns },
      spec: { holderIdentity: 'controller-0', leaseDurationSeconds: 15 } }));
    const leader = await leases(kubeConfigFrom(cp.kubeconfig)).readNamespacedLease({ name: 'xdplb-controller', namespace: ns });
    await refused('A takes the controller\'s leader Lease', () => leases(a).replaceNamespacedLease({ name: 'xdplb-controller', namespace: ns,
      body: { ...leader, spec: { ...leader.spec, holderIdentity: 'node-a' } } }), OWN_LEASES);
    await refused('A deletes the controller\'s leader Lease', () => leases(a).deleteNamespacedLease({ name: 'xdplb-controller', namespace: ns }), OWN_LEASES);

    // A renews and releases its own; B's is still there.
    await waitUntil('A renews its Lease', () => mine.renewals, (n) => n >= 2);
    await mine.release();
    assert.equal(cp.kubectl(['get', 'lease', l2LeaseName('default', 'node-a'), '-n', ns, '--ignore-not-found', '-o', 'name']), '', 'A released its Lease');
    assert.equal(cp.kubectl(['get', 'lease', bName, '-n', ns, '-o', 'jsonpath={.spec.holderIdentity}']), 'node-b');
    await theirs.release();
  });
});
