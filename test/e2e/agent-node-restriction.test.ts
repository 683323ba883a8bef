/**
 * deploy/agent-node-restriction.yaml on a real kube-apiserver: an agent's
 * status writes are limited to its own node's entry, by the node name claim of
 * its Pod-bound ServiceAccount token. Agents A (node-a) and B (node-b) get
 * tokens as a kubelet would project them (ControlPlane.agentKubeconfigOn); the
 * static agent token (no node claim) and the controller's token are the others.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { GROUP, LBVIP_KIND, LBVIP_PLURAL, VERSION } from '../../src/api/loadbalancervip.js';
import { XDPB_KIND, XDPB_PLURAL } from '../../src/api/xdpbalancer.js';
import { NodeReport } from '../../src/agent/announce/node-report.js';
import { agentFieldManager } from '../../src/agent/sources/cluster-source.js';
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

describe('agents write only their own node\'s status entry (deploy/agent-node-restriction.yaml)', () => {
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

    for (const kind of ['balancer', 'vip'] as const) {
      const name = kind === 'vip' ? 'web' : 'edge';
      const entry = (node: string, n: number) => (kind === 'vip' ? { node, reals: n } : { node, updated: UPDATED, l2: { answering: n } });
      // The controller writes what it owns, and may touch any entry (it prunes nodes that left).
      const own = kind === 'vip' ? { observedGeneration: 1, readyBackends: 0 } : { observedGeneration: 1, desiredAgents: 2 };
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
        return kind === 'vip'
          ? custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: 'shop', name, body }, headers)
          : custom.patchClusterCustomObjectStatus({ group: GROUP, version: VERSION, plural: XDPB_PLURAL, name, body }, headers);
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
});
