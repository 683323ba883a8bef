/**
 * The VIP controller against a real kube-apiserver. There is no kubelet: the
 * test creates Pods and sets their Ready status and IPs itself.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { WatchedCache } from '../../src/lib/watched-cache.js';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import type { XdpBalancer } from '../../src/api/xdpbalancer.js';
import type { Problem, VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { ClusterSource } from '../../src/agent/sources/cluster-source.js';
import type { Programmer } from '../../src/agent/sources/source.js';
import { Controller } from '../../src/controller/controller.js';
import { controlPlaneFixture } from './control-plane/fixture.js';
import { applyPod, condition, getVip, kubeConfigFrom, waitUntil } from './control-plane/objects.js';
import { vipNodes } from '../support/node-reports.js';

const DRAIN_SECONDS = 3;
const AGENT_NS = 'xdplb-system';

describe('controller on a real kube-apiserver', () => {
  let controller: Controller;
  const f = controlPlaneFixture(
    async (cp) => {
      cp.kubectl(['create', 'namespace', 'shop']);
      cp.kubectl(['create', 'namespace', AGENT_NS]);
      cp.kubectl(['apply', '-f', '-'], `apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: default}\nspec: {image: registry.example/xdplb:1, drainSeconds: ${DRAIN_SECONDS}}\n`);
      controller = new Controller(kubeConfigFrom(cp.kubeconfig), { namespace: AGENT_NS, identity: 'test' });
      await controller.start();
    },
    async () => {
      await controller?.stop();
    },
  );
  const kubectl = (args: string[], input?: string) => f.cp.kubectl(args, input);

  const pod = (name: string, ip: string, ready: boolean, labels = { app: 'web' }) => applyPod(f.cp, 'shop', name, ip, { ready, labels });
  const until = (name: string, what: string, cond: (v: LoadBalancerVip) => boolean) => waitUntil(what, () => getVip(f.cp, 'shop', name), cond);
  const untilOk = waitUntil;
  const daemonSet = () => {
    try {
      return JSON.parse(kubectl(['get', 'ds', 'xdplb-agent-default', '-n', AGENT_NS, '-o', 'json']));
    } catch {
      return null;
    }
  };
  /** There is no DaemonSet controller: the test says how many agents it schedules and readies. */
  const scheduleAgents = (desired: number, ready: number) => {
    const ds = daemonSet();
    const status = { observedGeneration: ds.metadata.generation, desiredNumberScheduled: desired, currentNumberScheduled: desired, numberMisscheduled: 0, numberReady: ready };
    kubectl(['patch', 'ds', 'xdplb-agent-default', '-n', AGENT_NS, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
  };
  const getBalancer = () => JSON.parse(kubectl(['get', 'xdpbalancer', 'default', '-o', 'json'])) as XdpBalancer;

  test('an XdpBalancer gets an owned agent DaemonSet, rolled on spec change, and reports its agents', async (t) => {
    if (!f.need(t)) return;
    let ds = await untilOk('the DaemonSet exists', daemonSet, (d) => !!d);
    const balancer = getBalancer();
    assert.deepEqual(ds.metadata.ownerReferences.map((o: { kind: string; name: string; uid: string; controller: boolean }) => [o.kind, o.name, o.uid, o.controller]),
      [['XdpBalancer', 'default', balancer.metadata.uid, true]]);
    const container = ds.spec.template.spec.containers[0];
    assert.equal(container.image, 'registry.example/xdplb:1');
    assert.deepEqual(container.args.slice(0, 4), ['run', '--balancer', 'default', '--xdp-mode']);
    assert.equal(ds.spec.template.spec.hostNetwork, true);
    assert.equal(ds.spec.template.spec.serviceAccountName, 'xdplb-agent');

    kubectl(['patch', 'xdpbalancer', 'default', '--type=merge', '-p', '{"spec":{"image":"registry.example/xdplb:2","nic":"eth1"}}']);
    ds = await untilOk('the DaemonSet rolls to the new spec', daemonSet, (d) => d.spec.template.spec.containers[0].image === 'registry.example/xdplb:2');
    assert.ok(ds.spec.template.spec.containers[0].args.join(' ').includes('--nic eth1'));
    assert.equal(ds.metadata.generation, 2, 'one template change, one rollout');

    scheduleAgents(1, 0);
    await untilOk('desired agents reported', getBalancer, (b) => b.status?.desiredAgents === 1 && b.status.readyAgents === 0);
    scheduleAgents(1, 1);
    const b = await untilOk('ready agents reported', getBalancer, (x) => x.status?.readyAgents === 1);
    assert.equal(b.status!.conditions!.find((c) => c.type === 'AgentsReady')!.status, 'True');
    assert.match(kubectl(['get', 'xdpbalancer']), /^default\s+eth1\s+auto\s+Node\s+1\s+1\s/m);
  });

  test('a VIP gets its Ready pods as backends; a new pod joins; a NotReady pod drains, then leaves', async (t) => {
    if (!f.need(t)) return;
    pod('web-1', '198.18.50.1', true);
    pod('web-2', '198.18.50.2', false);
    // Delivery InPod: the reals are the pods' addresses (there are no Node objects here to give Node addressing any).
    kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: web, namespace: shop}\nspec: {address: 198.19.0.10, ports: [{port: 80}], delivery: InPod, backendSelector: {matchLabels: {app: web}}}\n');
    let v = await until('web', 'web-1 is the backend', (x) => x.status?.readyBackends === 1);
    assert.deepEqual(v.status!.backends, [{ ip: '198.18.50.1', weight: 1, pod: 'web-1', node: 'node-a' }]);
    assert.equal(condition(v, 'BackendsAvailable')?.status, 'True');
    assert.equal(v.status!.observedGeneration, v.metadata.generation);
    assert.match(kubectl(['get', 'lbvip', '-n', 'shop']), /^web\s+198\.19\.0\.10\s+InPool\s+80\/TCP\s+1\s+0\/1\s+False/m);
    // An agent reports its node programmed, this generation and these backends: the VIP is Ready.
    const firstRevision = v.status!.backendsRevision!;
    assert.match(firstRevision, /^[0-9a-f]{16}$/);
    const report = (backendsRevision: string) => kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'xdplb.dev/v1alpha1', kind: 'XdpNodeReport', metadata: { name: 'default.node-a' }, balancer: 'default', node: 'node-a',
      vips: [{ namespace: 'shop', name: 'web', uid: v.metadata.uid, generation: v.metadata.generation, backendsRevision, reals: 1 }],
    }));
    report(firstRevision);
    v = await until('web', 'Ready once its one node is programmed', (x) => condition(x, 'Ready')?.status === 'True');
    assert.equal(v.status!.programmedNodes, '1/1');
    assert.equal(condition(v, 'Programmed')!.reason, 'AllNodes');
    assert.equal(condition(v, 'Programmed')!.message, `1 of 1 node(s) programmed generation ${v.metadata.generation}, backends rev ${firstRevision}`);

    // A new backend changes no generation, but a new revision: the node that holds the old one is not programmed any more.
    pod('web-2', '198.18.50.2', true);
    v = await until('web', 'web-2 joins', (x) => x.status?.readyBackends === 2);
    const secondRevision = v.status!.backendsRevision!;
    assert.notEqual(secondRevision, firstRevision);
    assert.equal(vipNodes(kubectl(['get', 'xdpnodereports', '-o', 'json']), v)[0]!.programmedBackendsRevision, firstRevision);
    assert.equal(v.status!.programmedNodes, '0/1', 'in the same write as the new backends');
    assert.deepEqual([condition(v, 'Programmed')!.status, condition(v, 'Programmed')!.reason], ['False', 'Pending']);
    assert.equal(condition(v, 'Programmed')!.message, `0 of 1 node(s) programmed generation ${v.metadata.generation}, backends rev ${secondRevision}`);
    assert.equal(condition(v, 'Ready')!.status, 'False');
    assert.match(kubectl(['get', 'lbvip', 'web', '-n', 'shop']), /^web\s+198\.19\.0\.10\s+InPool\s+80\/TCP\s+2\s+0\/1\s+False/m);
    report(secondRevision);
    v = await until('web', 'Ready again once the node reports the new revision', (x) => condition(x, 'Ready')?.status === 'True');
    assert.equal(v.status!.programmedNodes, '1/1');
    assert.equal(v.status!.backendsRevision, secondRevision);
    pod('web-1', '198.18.50.1', false);
    v = await until('web', 'web-1 drains', (x) => !!x.status?.backends?.find((b) => b.pod === 'web-1' && b.draining));
    assert.equal(v.status!.backends!.find((b) => b.pod === 'web-1')!.weight, 0);
    assert.equal(v.status!.readyBackends, 1);
    await until('web', `web-1 leaves after ${DRAIN_SECONDS} s`, (x) => !x.status?.backends?.some((b) => b.pod === 'web-1'));
    const events = await untilOk('backend events recorded', () => kubectl(['get', 'events', '-n', 'shop', '--field-selector', 'involvedObject.name=web', '-o', 'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}']),
      (text) => text.includes('removed web-1'));
    assert.match(events, /BackendsChanged: added web-1 \(198\.18\.50\.1\)/);
    assert.match(events, /BackendsChanged: draining web-1/);
  });

  test('two VIPs on one address and port: the older keeps it, the newer gets Conflict=True', async (t) => {
    if (!f.need(t)) return;
    kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: rival, namespace: shop}\nspec: {address: 198.19.0.10, ports: [{port: 80}, {port: 81}], backendSelector: {matchLabels: {app: web}}}\n');
    const rival = await until('rival', 'the rival is in conflict', (x) => condition(x, 'Conflict')?.status === 'True');
    assert.equal(condition(rival, 'Conflict')!.message, '198.19.0.10:80/TCP is held by shop/web');
    assert.equal(condition(rival, 'Ready')!.status, 'False');
    assert.equal(condition(getVip(f.cp, 'shop', 'web'), 'Conflict')?.status, 'False');
    // The older one leaves: the rival gets the address.
    const events = await untilOk('a Conflict event', () => kubectl(['get', 'events', '-n', 'shop', '--field-selector', 'involvedObject.name=rival', '-o', 'jsonpath={range .items[*]}{.type} {.reason}{"\\n"}{end}']),
      (text) => text.includes('Warning Conflict'));
    assert.ok(events);
    kubectl(['delete', 'lbvip', 'web', '-n', 'shop']);
    await until('rival', 'the rival takes over once the holder is gone', (x) => condition(x, 'Conflict')?.status === 'False');
  });

  test('an unchanged VIP is not written again', async (t) => {
    if (!f.need(t)) return;
    // The earlier tests' last writes land first: a write the API server applied may not be counted yet.
    for (let last = -1; last !== controller.vips.statusWrites;) {
      last = controller.vips.statusWrites;
      await sleep(1000);
    }
    const reconciles = controller.vips.reconciles;
    const writes = controller.vips.statusWrites;
    pod('other', '198.18.50.9', true, { app: 'other' }); // selected by no VIP
    await sleep(1000);
    kubectl(['annotate', 'lbvip', 'rival', '-n', 'shop', 'note=touched']); // a reconcile with the same status
    const deadline = Date.now() + 5000;
    while (controller.vips.reconciles === reconciles && Date.now() < deadline) await sleep(50);
    await sleep(500);
    assert.ok(controller.vips.reconciles > reconciles, 'the annotation was seen');
    assert.equal(controller.vips.statusWrites, writes, 'nothing changed, nothing written');
  });

  test('a list in pages sees every object, typed (pods) and custom (VIPs)', async (t) => {
    if (!f.need(t)) return;
    for (const i of [1, 2, 3]) {
      kubectl(['apply', '-f', '-'], `apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: paged-${i}, namespace: shop}\nspec: {address: 198.19.1.${i}, ports: [{port: 80}], backendSelector: {matchLabels: {app: paged}}}\n`);
    }
    const kc = kubeConfigFrom(f.cp.kubeconfig);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    const vips = new WatchedCache<LoadBalancerVip>(kc, '/apis/xdplb.dev/v1alpha1/loadbalancervips',
      (page) => custom.listClusterCustomObject({ group: 'xdplb.dev', version: 'v1alpha1', plural: 'loadbalancervips', ...page }), () => undefined, { pageSize: 2 });
    const pods = new WatchedCache<V1Pod>(kc, '/api/v1/pods', (page) => core.listPodForAllNamespaces(page), () => undefined, { pageSize: 2 });
    try {
      await Promise.all([vips.start(), pods.start()]);
      const names = (text: string) => text.split(/\s+/).filter(Boolean).sort();
      const wantVips = names(kubectl(['get', 'lbvip', '-A', '-o', 'jsonpath={.items[*].metadata.name}']));
      const wantPods = names(kubectl(['get', 'pods', '-A', '-o', 'jsonpath={.items[*].metadata.name}']));
      assert.ok(wantVips.length >= 4 && wantPods.length >= 3, `${wantVips} ${wantPods}: too few for pages of 2`);
      assert.deepEqual(vips.list().map((v) => v.metadata.name!).sort(), wantVips);
      assert.deepEqual(pods.list().map((p) => p.metadata!.name!).sort(), wantPods);
    } finally {
      await vips.stop();
      await pods.stop();
    }
  });

  test("the agent's cluster source programs its balancer's VIPs, reports this node's entry and a refusal, and retries a failed programming", async (t) => {
    if (!f.need(t)) return;
    const lbvip = (name: string, address: string, port: number) => kubectl(['apply', '-f', '-'],
      // Delivery InPod: the reals are the pods' addresses (there are no Node objects here to give Node addressing any).
      `apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: ${name}, namespace: shop}\nspec: {address: ${address}, ports: [{port: ${port}}], delivery: InPod, backendSelector: {matchLabels: {app: none}}}\n`);
    const REFUSED_PORT = 9999;
    lbvip('src-ok', '198.19.2.1', 80);
    lbvip('src-refused', '198.19.2.2', REFUSED_PORT);
    // Agents program only addresses the controller allowed.
    for (const name of ['src-ok', 'src-refused']) await until(name, 'its address allowed', (x) => condition(x, 'AddressAllowed')?.status === 'True');
    const programmed: VipSpec[][] = [];
    let failures = 0;
    // A dataplane that refuses one port, and whose next write fails once when asked to.
    const programmer: Programmer = {
      accept: (vips) => {
        const refused = new Map<number, Problem[]>();
        vips.forEach((s, i) => {
          if (s.port === REFUSED_PORT) refused.set(i, [{ path: '.port', reason: `${REFUSED_PORT} is refused here` }]);
        });
        return { accepted: vips.map((_, i) => i).filter((i) => !refused.has(i)), refused, general: [] };
      },
      setVips: async (vips) => {
        if (failures > 0) {
          failures--;
          throw new Error('map full');
        }
        programmed.push(vips);
      },
    };
    const kc = kubeConfigFrom(f.cp.kubeconfig);
    const node = 'node-src';
    const source = new ClusterSource(kc, { balancer: 'default', node });
    const entry = (v: LoadBalancerVip) => vipNodes(kubectl(['get', 'xdpnodereports', '-o', 'json']), v).find((n) => n.node === node);
    try {
      await source.start();
      const initial = await source.initial(programmer);
      assert.ok(initial.some((s) => s.address === '198.19.2.1'), 'the listed VIP is planned');
      assert.ok(!initial.some((s) => s.port === REFUSED_PORT), 'the refused VIP is left out');
      await source.follow(programmer);
      const ok = await until('src-ok', 'this node reports the VIP programmed', (x) => entry(x)?.programmedGeneration === x.metadata.generation);
      assert.equal(entry(ok)!.programmedBackendsRevision, ok.status!.backendsRevision, 'the revision of the status it applied');
      const refused = await until('src-refused', 'this node reports the refusal', (x) => !!entry(x)?.lastError);
      assert.match(entry(refused)!.lastError!, new RegExp(`port ${REFUSED_PORT}/TCP.*refused here`));
      assert.equal(entry(refused)!.programmedGeneration, undefined);

      failures = 1;
      kubectl(['patch', 'lbvip', 'src-ok', '-n', 'shop', '--type=merge', '-p', '{"spec":{"ports":[{"port":8080}]}}']);
      const moved = await until('src-ok', 'the new generation is programmed after the failed write is retried',
        (x) => x.metadata.generation === 2 && entry(x)?.programmedGeneration === 2 && !entry(x)?.lastError);
      assert.equal(failures, 0, 'the failing write was tried');
      assert.ok(programmed.at(-1)!.some((s) => s.address === '198.19.2.1' && s.port === 8080), JSON.stringify(programmed.at(-1)));
      assert.equal(entry(moved)!.reals, 0);

      // A backend change: the agent programs the new reals and reports the revision that carries them.
      kubectl(['patch', 'lbvip', 'src-ok', '-n', 'shop', '--type=merge', '-p', '{"spec":{"backendSelector":{"matchLabels":{"app":"src"}}}}']);
      const selected = await until('src-ok', 'the selector change is programmed', (x) => x.metadata.generation === 3 && entry(x)?.programmedGeneration === 3);
      pod('src-1', '198.18.52.1', true, { app: 'src' });
      const joined = await until('src-ok', 'the new backend is programmed and its revision reported',
        (x) => x.status?.readyBackends === 1 && entry(x)?.programmedBackendsRevision === x.status.backendsRevision && entry(x)?.reals === 1);
      assert.equal(joined.metadata.generation, 3, 'a backend change bumps no generation');
      assert.notEqual(joined.status!.backendsRevision, selected.status!.backendsRevision, 'but stamps a new revision');
      assert.ok(programmed.at(-1)!.some((s) => s.address === '198.19.2.1' && s.reals.some((r) => r.address === '198.18.52.1')), JSON.stringify(programmed.at(-1)));
    } finally {
      await source.stop();
    }
  });
});
