/**
 * Conflicts settle, against a real kube-apiserver: whatever happens to the
 * VIP holding an address (edited, respelled, deleted, on a balancer that
 * shares nodes or stops sharing them), the VIP that lost to it follows; a
 * conflict shown to one namespace does not name another's VIP; two balancers
 * whose agents share a node are told so; a periodic resync runs.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import type { XdpBalancer } from '../../src/api/xdpbalancer.js';
import { Controller } from '../../src/controller/controller.js';
import { controlPlaneFixture } from './control-plane/fixture.js';
import { condition, getVip as readVip, kubeConfigFrom, waitUntil } from './control-plane/objects.js';

const AGENT_NS = 'xdplb-system';
const RESYNC_SECONDS = 1;

describe('conflicts that always settle, on a real kube-apiserver', () => {
  let controller: Controller;
  const f = controlPlaneFixture(
    async (cp) => {
      for (const ns of ['shop', 'bank', AGENT_NS]) cp.kubectl(['create', 'namespace', ns]);
      cp.kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: default}\nspec: {image: registry.example/xdplb:1}\n');
      // The default resync (minutes): what settles here, events settled.
      controller = new Controller(kubeConfigFrom(cp.kubeconfig), { namespace: AGENT_NS, identity: 'test' });
      await controller.start();
    },
    async () => {
      await controller?.stop();
    },
  );
  const kubectl = (args: string[], input?: string) => f.cp.kubectl(args, input);

  const lbvip = (ns: string, name: string, address: string, port: number, balancer?: string) => kubectl(['apply', '-f', '-'],
    `apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: ${name}, namespace: ${ns}}\n`
    + `spec: {address: "${address}", ports: [{port: ${port}}], backendSelector: {matchLabels: {app: web}}${balancer ? `, balancer: ${balancer}` : ''}}\n`);
  const getVip = (ns: string, name: string) => readVip(f.cp, ns, name);
  const conflict = (v: LoadBalancerVip) => condition(v, 'Conflict');
  const inConflict = (ns: string, name: string, what: string) =>
    waitUntil(`${ns}/${name} ${what}`, () => getVip(ns, name), (v) => conflict(v)?.status === 'True');
  const settled = (ns: string, name: string, what: string) =>
    waitUntil(`${ns}/${name} ${what}`, () => getVip(ns, name), (v) => conflict(v)?.status === 'False' && v.status?.observedGeneration === v.metadata.generation);
  type VipArgs = [ns: string, name: string, address: string, port: number, balancer?: string];
  /**
   * The holder first, settled; then the loser, in conflict with it: returns the loser.
   * Creation times have a resolution of one second and a tie goes by namespace/name:
   * every holder's namespace/name sorts before its loser's.
   */
  const contest = async (holder: VipArgs, loser: VipArgs, why: string) => {
    lbvip(...holder);
    await settled(holder[0], holder[1], 'holds the address');
    lbvip(...loser);
    return inConflict(loser[0], loser[1], why);
  };

  test('the holder moves to another port: the loser settles; moves back: the loser is in conflict again', async (t) => {
    if (!f.need(t)) return;
    const lost = await contest(['shop', 'edit-holder', '198.19.3.1', 80], ['shop', 'edit-loser', '198.19.3.1', 80], 'loses to the older VIP');
    assert.equal(conflict(lost)!.message, '198.19.3.1:80/TCP is held by shop/edit-holder');
    lbvip('shop', 'edit-holder', '198.19.3.1', 8080);
    await settled('shop', 'edit-loser', 'holds port 80 once the holder moved to 8080');
    lbvip('shop', 'edit-holder', '198.19.3.1', 80);
    await inConflict('shop', 'edit-loser', 'loses again: the older VIP is back on port 80');
  });

  test('the holder is deleted: the loser takes over', async (t) => {
    if (!f.need(t)) return;
    await contest(['shop', 'gone-holder', '198.19.3.2', 80], ['shop', 'gone-loser', '198.19.3.2', 80], 'loses to the older VIP');
    kubectl(['delete', 'lbvip', 'gone-holder', '-n', 'shop']);
    await settled('shop', 'gone-loser', 'takes over');
  });

  test('an IPv6 address spelled two ways is one claim; the holder moving away releases it', async (t) => {
    if (!f.need(t)) return;
    const lost = await contest(['shop', 'v6-holder', '2001:db8:3::1', 443], ['shop', 'v6-loser', '2001:DB8:3:0::1', 443],
      'loses: the same address, spelled another way');
    assert.equal(conflict(lost)!.message, '2001:db8:3::1:443/TCP is held by shop/v6-holder');
    lbvip('shop', 'v6-holder', '2001:0db8:0003::0002', 443);
    await settled('shop', 'v6-loser', 'holds the address once the holder moved to another');
  });

  test("a holder in another namespace is not named in the loser's condition or events", async (t) => {
    if (!f.need(t)) return;
    const lost = await contest(['bank', 'vault', '198.19.3.4', 80], ['shop', 'nosy', '198.19.3.4', 80], 'loses to the VIP of another namespace');
    assert.equal(conflict(lost)!.message, '198.19.3.4:80/TCP is in use by another namespace');
    const events = await waitUntil('a Conflict event', () => kubectl(['get', 'events', '-n', 'shop', '--field-selector', 'involvedObject.name=nosy',
      '-o', 'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}']), (text) => text.includes('Conflict:'));
    assert.doesNotMatch(`${JSON.stringify(lost.status)}\n${events}`, /bank|vault/);
    kubectl(['delete', 'lbvip', 'vault', '-n', 'bank']);
    await settled('shop', 'nosy', 'takes over');
  });

  test('one address on two balancers that may share nodes conflicts; making their nodeSelectors exclusive settles it', async (t) => {
    if (!f.need(t)) return;
    kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: edge}\nspec: {image: registry.example/xdplb:1, nodeSelector: {pool: edge}}\n');
    // default has no nodeSelector: it may run on edge's nodes too.
    const lost = await contest(['shop', 'holder-main', '198.19.3.5', 80], ['shop', 'loser-edge', '198.19.3.5', 80, 'edge'],
      'loses: default may run on the nodes of edge');
    assert.match(conflict(lost)!.message!, /^198\.19\.3\.5:80\/TCP is held by shop\/holder-main on XdpBalancer "default", which may run on the same nodes/);
    kubectl(['patch', 'xdpbalancer', 'default', '--type=merge', '-p', '{"spec":{"nodeSelector":{"pool":"main"}}}']);
    await settled('shop', 'loser-edge', 'holds the address on edge once default keeps to other nodes');
    assert.equal(conflict(getVip('shop', 'holder-main'))!.status, 'False');
    kubectl(['patch', 'xdpbalancer', 'default', '--type=json', '-p', '[{"op":"remove","path":"/spec/nodeSelector"}]']);
    await inConflict('shop', 'loser-edge', 'loses again once default may run anywhere');
  });

  test('agents of two balancers on one node: both XdpBalancers say NodeOverlap=True, with an Event; it clears when one leaves', async (t) => {
    if (!f.need(t)) return;
    const agentPod = (name: string, balancer: string, node: string) => kubectl(['apply', '-f', '-'],
      `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: ${AGENT_NS}, labels: {app.kubernetes.io/name: xdplb-agent, xdplb.dev/balancer: ${balancer}}}\n`
      + `spec: {nodeName: ${node}, containers: [{name: agent, image: none}]}\n`);
    const getBalancer = (name: string) => JSON.parse(kubectl(['get', 'xdpbalancer', name, '-o', 'json'])) as XdpBalancer;
    const overlap = (b: XdpBalancer) => b.status?.conditions?.find((c) => c.type === 'NodeOverlap');
    agentPod('agent-default-a', 'default', 'node-a');
    agentPod('agent-edge-b', 'edge', 'node-b');
    await waitUntil('edge says no overlap', () => getBalancer('edge'), (b) => overlap(b)?.status === 'False');
    agentPod('agent-edge-a', 'edge', 'node-a');
    const edge = await waitUntil('edge sees default on node-a', () => getBalancer('edge'), (b) => overlap(b)?.status === 'True');
    assert.match(overlap(edge)!.message, /XdpBalancer "default" on node-a\)/);
    const dflt = await waitUntil('default sees edge on node-a', () => getBalancer('default'), (b) => overlap(b)?.status === 'True');
    assert.match(overlap(dflt)!.message, /XdpBalancer "edge" on node-a\)/);
    await waitUntil('a NodeOverlap event on edge', () => kubectl(['get', 'events', '-A', '--field-selector', 'involvedObject.name=edge,reason=NodeOverlap',
      '-o', 'jsonpath={range .items[*]}{.type} {.message}{"\\n"}{end}']), (text) => /^Warning agents of another balancer/m.test(text));
    kubectl(['delete', 'pod', 'agent-edge-a', '-n', AGENT_NS, '--grace-period=0', '--force']);
    await waitUntil('edge: the overlap is gone', () => getBalancer('edge'), (b) => overlap(b)?.status === 'False');
    await waitUntil('default: the overlap is gone', () => getBalancer('default'), (b) => overlap(b)?.status === 'False');
  });

  test('two XdpBalancers selecting one node: the newer one\'s DaemonSet is kept off it, with a condition and an Event; disjoint selectors lift it', async (t) => {
    if (!f.need(t)) return;
    for (const [n, pool] of [['pool-1', 'main'], ['pool-2', 'main'], ['pool-3', 'other']]) {
      kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: n, labels: { 'kubernetes.io/os': 'linux', pool } } }));
    }
    kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: late}\nspec: {image: registry.example/xdplb:1, nodeSelector: {pool: main}}\n');
    const getBalancer = (name: string) => JSON.parse(kubectl(['get', 'xdpbalancer', name, '-o', 'json'])) as XdpBalancer;
    const excluded = (b: XdpBalancer) => b.status?.conditions?.find((c) => c.type === 'NodesExcluded');
    const late = await waitUntil('late is kept off the nodes default has', () => getBalancer('late'), (b) => excluded(b)?.status === 'True');
    assert.match(excluded(late)!.message, /^2 node\(s\) it selects belong to an older balancer that selects them too \(pool-1, pool-2 to XdpBalancer "default"\)/);
    const affinity = () => kubectl(['get', 'ds', 'xdplb-agent-late', '-n', AGENT_NS, '-o',
      'jsonpath={range .spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[*].matchFields[*]}{.key} {.operator} {.values[0]};{end}']);
    assert.equal(await waitUntil('the DaemonSet keeps off them', affinity, (a) => a !== ''), 'metadata.name NotIn pool-1;metadata.name NotIn pool-2;');
    assert.equal(excluded(getBalancer('default'))?.status, 'False', 'the older balancer keeps its nodes');
    await waitUntil('a NodesExcluded Event on late', () => kubectl(['get', 'events', '-A', '--field-selector', 'involvedObject.name=late,reason=NodesExcluded',
      '-o', 'jsonpath={range .items[*]}{.type}{"\\n"}{end}']), (text) => text.startsWith('Warning'));
    // default leaves pool=main: late has its nodes.
    kubectl(['patch', 'xdpbalancer', 'default', '--type=merge', '-p', JSON.stringify({ spec: { nodeSelector: { pool: 'other' } } })]);
    await waitUntil('late no longer excluded', () => getBalancer('late'), (b) => excluded(b)?.status === 'False');
    await waitUntil('its DaemonSet may run anywhere it selects', affinity, (a) => a === '');
    kubectl(['patch', 'xdpbalancer', 'default', '--type=json', '-p', '[{"op": "remove", "path": "/spec/nodeSelector"}]']);
    kubectl(['delete', 'xdpbalancer', 'late']);
    for (const n of ['pool-1', 'pool-2', 'pool-3']) kubectl(['delete', 'node', n]);
  });

  test('a periodic resync reconciles every VIP and is counted', async (t) => {
    if (!f.need(t)) return;
    // Last: the controller is replaced by one that resyncs every second.
    await controller.stop();
    controller = new Controller(kubeConfigFrom(f.cp.kubeconfig), { namespace: AGENT_NS, identity: 'test', resyncSeconds: RESYNC_SECONDS });
    await controller.start();
    const counted = async () => (await controller.metrics.registry.getSingleMetric('xdplb_controller_resyncs_total')!.get()).values[0]?.value ?? 0;
    const before = await counted();
    const reconciles = controller.vips.reconciles;
    await waitUntil(`two more resyncs (every ${RESYNC_SECONDS} s)`, counted, (n) => n >= before + 2);
    assert.equal(controller.vips.resyncs, await counted());
    const vips = kubectl(['get', 'lbvip', '-A', '-o', 'name']).split('\n').filter(Boolean).length;
    assert.ok(controller.vips.reconciles - reconciles >= vips, `every one of the ${vips} VIPs was reconciled again`);
  });
});
