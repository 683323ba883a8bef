/**
 * L2 mode's election on a real kube-apiserver: the controller (in process)
 * names one node per VIP (status.l2.node) among the nodes whose agent holds
 * its Lease and reports the VIP programmed. The agents' side is the agent's
 * own AgentLease, run with the agent's service account and deploy/'s RBAC,
 * and XdpNodeReports written as agents write them (server-side apply under
 * the agent's field manager).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { l2LeaseName, L2_LEASE_BALANCER_LABEL, L2_LEASE_NODE_LABEL } from '../../src/api/xdpbalancer.js';
import { stableHash } from '../../src/lib/stable-hash.js';
import { AgentLease } from '../../src/agent/announce/l2-lease.js';
import { PlayedNodeReports, vipNodes } from '../support/node-reports.js';
import { Controller } from '../../src/controller/controller.js';
import { controlPlaneFixture } from './control-plane/fixture.js';
import { applyPod, getVip, kubeConfigFrom, waitUntil } from './control-plane/objects.js';

const AGENT_NS = 'xdplb-system';
const AGENT_RBAC = fileURLToPath(new URL('../../../deploy/rbac-agent.yaml', import.meta.url));
/** The CRD's minimum: a dead node's VIPs move within seconds. */
const LEASE_SECONDS = 3;
const VIP = '198.19.0.40';

describe('L2 election: one alive node with the VIP programmed announces it', () => {
  let controller: Controller;
  const leases: AgentLease[] = [];
  const f = controlPlaneFixture(
    async (cp) => {
      cp.kubectl(['create', 'namespace', 'shop']);
      cp.kubectl(['create', 'namespace', AGENT_NS]);
      cp.kubectl(['apply', '-f', AGENT_RBAC]);
      cp.kubectl(['apply', '-f', '-'], `apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: default}\nspec: {image: registry.example/xdplb:1, l2: {leaseSeconds: ${LEASE_SECONDS}}}\n`);
      controller = new Controller(kubeConfigFrom(cp.kubeconfig), { namespace: AGENT_NS, identity: 'test' });
      await controller.start();
    },
    async () => {
      for (const l of leases) await l.release().catch(() => undefined);
      await controller?.stop();
    },
  );
  const kubectl = (args: string[], input?: string) => f.cp.kubectl(args, input);
  const agentKc = () => {
    const kc = new KubeConfig();
    kc.loadFromFile(f.cp.kubeconfigAs(`${AGENT_NS}/xdplb-agent`));
    return kc;
  };
  const lease = async (node: string) => {
    const l = new AgentLease(agentKc(), { balancer: 'default', node, namespace: AGENT_NS, leaseSeconds: LEASE_SECONDS });
    leases.push(l);
    await l.start();
    assert.equal(l.renewals, 1, `${node}'s agent took its Lease with its own RBAC`);
    return l;
  };
  /** What a node's agent writes once it has programmed the VIP (or could not): its report, with its own token. */
  const reports = new PlayedNodeReports(() => agentKc().makeApiClient(CustomObjectsApi));
  const programmed = async (node: string) => {
    const v = getVip(f.cp, 'shop', 'web');
    await reports.set(node, v, { generation: v.metadata.generation, reals: 1 });
  };
  const l2 = () => getVip(f.cp, 'shop', 'web').status?.l2;
  const untilL2 = (what: string, ok: (node: string | undefined) => boolean) => waitUntil(what, () => l2()?.node, ok);
  /** The controller's choice among candidates, when no node holds the VIP: the lowest hash of (address, node). */
  const firstChoice = (nodes: string[]) => [...nodes].sort((a, b) => stableHash(`${VIP}/${a}`) - stableHash(`${VIP}/${b}`))[0]!;

  test('no node until one is alive and programmed; the hash picks among candidates; a released Lease moves the VIP; a returning node does not take it back', async (t) => {
    if (!f.need(t)) return;
    applyPod(f.cp, 'shop', 'web-1', '198.18.31.2', { ready: true, labels: { app: 'web' } });
    kubectl(['apply', '-f', '-'], `apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: web, namespace: shop}\nspec:\n  address: ${VIP}\n  ports: [{port: 80}]\n  backendSelector: {matchLabels: {app: web}}\n`);
    await waitUntil('the VIP resolved', () => getVip(f.cp, 'shop', 'web'), (v) => v.status?.readyBackends === 1);
    // Programmed on both, but no agent alive: nobody announces.
    await programmed('node-a');
    await programmed('node-b');
    assert.equal(vipNodes(kubectl(['get', 'xdpnodereports', '-o', 'json']), getVip(f.cp, 'shop', 'web')).length, 2, 'both reports');
    assert.equal(l2(), undefined, 'no Lease, no announcing node');
    // Alive but not programmed (node-c) is no candidate either.
    const c = await lease('node-c');
    const a = await lease('node-a');
    await untilL2('node-a alone is a candidate', (n) => n === 'node-a');
    const since = l2()!.since;
    assert.ok(!Number.isNaN(Date.parse(since)), since);
    const b = await lease('node-b');
    // Both candidates now; the one holding it keeps it.
    await new Promise((r) => setTimeout(r, LEASE_SECONDS * 1000));
    assert.deepEqual(l2(), { node: 'node-a', since }, 'sticky: a second candidate does not move it');
    // Released (its agent stopped): moved at once to the other.
    await a.release();
    await untilL2('moved to node-b', (n) => n === 'node-b');
    assert.notEqual(l2()!.since, since);
    // node-a returns: node-b keeps it.
    await lease('node-a');
    await new Promise((r) => setTimeout(r, LEASE_SECONDS * 1000));
    assert.equal(l2()?.node, 'node-b', 'the returning node does not take it back');
    // node-b reports an error for the VIP: no longer a candidate.
    await reports.set('node-b', getVip(f.cp, 'shop', 'web'), { error: 'refused by the test' });
    await untilL2('moved off the node that could not program it', (n) => n === 'node-a');
    await programmed('node-b');
    await b.release();
    await c.release();
    assert.equal(firstChoice(['node-a', 'node-b']), firstChoice(['node-b', 'node-a']), 'the choice does not depend on order');
  });

  test('a Lease no longer renewed (the node died) expires: its VIP moves, or no node announces it', async (t) => {
    if (!f.need(t)) return;
    for (const l of leases) await l.release();
    await untilL2('nobody alive', (n) => n === undefined);
    // A dead agent's Lease: taken once, never renewed.
    kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
      metadata: { name: l2LeaseName('default', 'node-a'), namespace: AGENT_NS, labels: { [L2_LEASE_BALANCER_LABEL]: 'default', [L2_LEASE_NODE_LABEL]: 'node-a' } },
      spec: { holderIdentity: 'node-a', leaseDurationSeconds: LEASE_SECONDS, renewTime: new Date().toISOString().replace('Z', '000Z') },
    }));
    await untilL2('node-a announces while its Lease is fresh', (n) => n === 'node-a');
    await untilL2('node-a\'s Lease expired: nobody announces', (n) => n === undefined);
    const b = await lease('node-b');
    await untilL2('node-b takes it', (n) => n === 'node-b');
    await b.release();
  });

  test('without spec.l2 no VIP has status.l2', async (t) => {
    if (!f.need(t)) return;
    await lease('node-a');
    await untilL2('announced', (n) => n === 'node-a');
    kubectl(['patch', 'xdpbalancer', 'default', '--type=json', '-p', '[{"op":"remove","path":"/spec/l2"}]']);
    await untilL2('status.l2 removed', (n) => n === undefined);
    const ds = JSON.parse(kubectl(['get', 'ds', 'xdplb-agent-default', '-n', AGENT_NS, '-o', 'json']));
    assert.ok(!ds.spec.template.spec.containers[0].args.includes('--l2-lease-seconds'), 'the agents no longer get --l2-lease-seconds');
  });
});
