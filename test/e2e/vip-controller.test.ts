/**
 * The VIP controller against a real kube-apiserver. There is no kubelet: the
 * test creates Pods and sets their Ready status and IPs itself.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { VipController } from '../../src/controller/vip-controller.js';
import { controlPlaneFixture } from './control-plane/fixture.js';
const DRAIN_SECONDS = 3;

describe('VIP controller on a real kube-apiserver', () => {
  let controller: VipController;
  const f = controlPlaneFixture(
    async (cp) => {
      cp.kubectl(['create', 'namespace', 'shop']);
      const kc = new KubeConfig();
      kc.loadFromFile(cp.kubeconfig);
      controller = new VipController(kc, { drainSeconds: DRAIN_SECONDS });
      await controller.start();
    },
    async () => {
      await controller?.stop();
    },
  );
  const kubectl = (args: string[], input?: string) => f.cp.kubectl(args, input);

  const pod = (name: string, ip: string, ready: boolean, labels = 'app: web') => {
    kubectl(['apply', '-f', '-'], `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: shop, labels: {${labels}}}\nspec: {nodeName: node-a, containers: [{name: c, image: none}]}\n`);
    const status = { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] };
    kubectl(['patch', 'pod', name, '-n', 'shop', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
  };
  const getVip = (name: string) => JSON.parse(kubectl(['get', 'lbvip', name, '-n', 'shop', '-o', 'json'])) as LoadBalancerVip;
  const until = async (name: string, what: string, cond: (v: LoadBalancerVip) => boolean) => {
    const deadline = Date.now() + 15_000;
    let v = getVip(name);
    while (!cond(v) && Date.now() < deadline) {
      await sleep(100);
      v = getVip(name);
    }
    assert.ok(cond(v), `${what}; status now: ${JSON.stringify(v.status)}`);
    return v;
  };
  const condition = (v: LoadBalancerVip, type: string) => v.status?.conditions?.find((c) => c.type === type);

  test('a VIP gets its Ready pods as backends; a new pod joins; a NotReady pod drains, then leaves', async (t) => {
    if (!f.need(t)) return;
    pod('web-1', '198.18.50.1', true);
    pod('web-2', '198.18.50.2', false);
    kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: web, namespace: shop}\nspec: {address: 198.19.0.10, ports: [{port: 80}], backendSelector: {matchLabels: {app: web}}}\n');
    let v = await until('web', 'web-1 is the backend', (x) => x.status?.readyBackends === 1);
    assert.deepEqual(v.status!.backends, [{ ip: '198.18.50.1', weight: 1, pod: 'web-1', node: 'node-a' }]);
    assert.equal(condition(v, 'BackendsAvailable')?.status, 'True');
    assert.equal(v.status!.observedGeneration, v.metadata.generation);
    assert.match(kubectl(['get', 'lbvip', '-n', 'shop']), /^web\s+198\.19\.0\.10\s+80\s+1\s+0\/1\s+False/m);

    pod('web-2', '198.18.50.2', true);
    v = await until('web', 'web-2 joins', (x) => x.status?.readyBackends === 2);
    pod('web-1', '198.18.50.1', false);
    v = await until('web', 'web-1 drains', (x) => !!x.status?.backends?.find((b) => b.pod === 'web-1' && b.draining));
    assert.equal(v.status!.backends!.find((b) => b.pod === 'web-1')!.weight, 0);
    assert.equal(v.status!.readyBackends, 1);
    await until('web', `web-1 leaves after ${DRAIN_SECONDS} s`, (x) => !x.status?.backends?.some((b) => b.pod === 'web-1'));
  });

  test('two VIPs on one address and port: the older keeps it, the newer gets Conflict=True', async (t) => {
    if (!f.need(t)) return;
    kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: rival, namespace: shop}\nspec: {address: 198.19.0.10, ports: [{port: 80}, {port: 81}], backendSelector: {matchLabels: {app: web}}}\n');
    const rival = await until('rival', 'the rival is in conflict', (x) => condition(x, 'Conflict')?.status === 'True');
    assert.equal(condition(rival, 'Conflict')!.message, '198.19.0.10:80/TCP is held by shop/web');
    assert.equal(condition(rival, 'Ready')!.status, 'False');
    assert.equal(condition(getVip('web'), 'Conflict')?.status, 'False');
    // The older one leaves: the rival gets the address.
    kubectl(['delete', 'lbvip', 'web', '-n', 'shop']);
    await until('rival', 'the rival takes over once the holder is gone', (x) => condition(x, 'Conflict')?.status === 'False');
  });

  test('an unchanged VIP is not written again', async (t) => {
    if (!f.need(t)) return;
    const reconciles = controller.reconciles;
    const writes = controller.statusWrites;
    pod('other', '198.18.50.9', true, 'app: other'); // selected by no VIP
    await sleep(1000);
    kubectl(['annotate', 'lbvip', 'rival', '-n', 'shop', 'note=touched']); // a reconcile with the same status
    const deadline = Date.now() + 5000;
    while (controller.reconciles === reconciles && Date.now() < deadline) await sleep(50);
    await sleep(500);
    assert.ok(controller.reconciles > reconciles, 'the annotation was seen');
    assert.equal(controller.statusWrites, writes, 'nothing changed, nothing written');
  });
});
