/**
 * Services of type LoadBalancer, against a real kube-apiserver with the
 * controller running. This control plane runs no kube-controller-manager, so
 * the test writes the Service's EndpointSlices as the EndpointSlice
 * controller would (the kind suite has the real one). Checked: a Service of
 * class xdplb.dev/xdp gets a LoadBalancerVip, an address from a pool and the
 * EXTERNAL-IP; ready endpoints become backends, terminating ones drain;
 * a port that differs from its target gets delivery Node (InPod, or a named
 * target resolving to another number, is refused with an Event); a Service
 * of another class, or of none, is left alone unless the controller is told to
 * serve those; a type change and a deletion clean up; a VIP name in use is
 * reported; a VIP left behind while no controller ran is swept.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Service } from '@kubernetes/client-node';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { Controller } from '../../src/controller/controller.js';
import { controlPlaneFixture } from './control-plane/fixture.js';
import { applyPod, condition, eventsOf, getVip, kubeConfigFrom, waitUntil } from './control-plane/objects.js';
import { poolManifest } from './pool-manifests.js';

const AGENT_NS = 'xdplb-system';
const NS = 'web';

interface PortSpec { port: number; targetPort?: number | string; name?: string; protocol?: string }

describe('Services of type LoadBalancer on a real kube-apiserver', () => {
  let controller: Controller;
  const startController = async (kubeconfig: string, serveServicesWithoutClass = false) => {
    controller = new Controller(kubeConfigFrom(kubeconfig), { namespace: AGENT_NS, identity: 'test', serveServicesWithoutClass });
    await controller.start();
  };
  const f = controlPlaneFixture(
    async (cp) => {
      for (const ns of [NS, AGENT_NS]) cp.kubectl(['create', 'namespace', ns]);
      cp.kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: default}\nspec: {image: registry.example/xdplb:1}\n');
      cp.kubectl(['apply', '-f', '-'], poolManifest('web', ['198.19.5.0/24', '2001:db8:5::/64'], { matchLabels: { 'kubernetes.io/metadata.name': NS } }));
      await startController(cp.kubeconfig);
    },
    async () => {
      await controller?.stop();
    },
    { openPool: false },
  );
  const kubectl = (args: string[], input?: string) => f.cp.kubectl(args, input);

  const service = (name: string, ports: PortSpec[], more: { cls?: string | null; type?: string; annotations?: Record<string, string> } = {}) => {
    const spec: Record<string, unknown> = {
      type: more.type ?? 'LoadBalancer', selector: { app: name }, ports: ports.map((p, i) => ({ name: p.name ?? `p${i}`, protocol: p.protocol ?? 'TCP', port: p.port, targetPort: p.targetPort ?? p.port })),
    };
    if ((more.type ?? 'LoadBalancer') === 'LoadBalancer' && more.cls !== null) spec.loadBalancerClass = more.cls ?? 'xdplb.dev/xdp';
    kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS, annotations: more.annotations ?? {} }, spec }));
  };
  const getSvc = (name: string) => JSON.parse(kubectl(['get', 'svc', name, '-n', NS, '-o', 'json'])) as V1Service;
  const vipOrNull = (name: string): LoadBalancerVip | null => {
    const out = kubectl(['get', 'lbvip', '-n', NS, '--field-selector', `metadata.name=${name}`, '-o', 'json']);
    return (JSON.parse(out) as { items: LoadBalancerVip[] }).items[0] ?? null;
  };
  /** An EndpointSlice as the EndpointSlice controller writes it: endpoints [pod, ip, ready, terminating]. */
  const slice = (svc: string, endpoints: [string, string, boolean, boolean?][], ports: PortSpec[], sliceName = `${svc}-abc`) =>
    kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: sliceName, namespace: NS, labels: { 'kubernetes.io/service-name': svc, 'endpointslice.kubernetes.io/managed-by': 'e2e-test' } },
      addressType: 'IPv4',
      endpoints: endpoints.map(([pod, ip, ready, terminating]) => ({
        addresses: [ip], conditions: { ready, serving: ready || !!terminating, terminating: !!terminating },
        targetRef: { kind: 'Pod', namespace: NS, name: pod }, nodeName: 'node-a',
      })),
      ports: ports.map((p, i) => ({ name: p.name ?? `p${i}`, protocol: p.protocol ?? 'TCP', port: typeof p.targetPort === 'number' ? p.targetPort : p.port })),
    }));
  const ingress = (name: string) => (getSvc(name).status?.loadBalancer?.ingress ?? []).map((i) => i.ip);

  test('a Service of class xdplb.dev/xdp: a VIP, an address from the pool, the EXTERNAL-IP, endpoints as backends, terminating ones draining', async (t) => {
    if (!f.need(t)) return;
    const ports = [{ port: 80 }, { port: 53, protocol: 'UDP' }];
    service('shop', ports);
    const vip = await waitUntil('the VIP made for the Service, with an assigned address', () => vipOrNull('shop'), (v) => !!v?.status?.address);
    assert.equal(vip!.spec.backendService, 'shop');
    assert.deepEqual(vip!.spec.ports, [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }]);
    assert.equal(vip!.metadata.labels?.['xdplb.dev/service'], 'shop');
    assert.deepEqual(vip!.metadata.ownerReferences?.map((o) => [o.kind, o.name, o.uid, o.controller]), [['Service', 'shop', getSvc('shop').metadata!.uid, true]]);
    assert.equal(vip!.status!.address, '198.19.5.1');
    await waitUntil('the Service shows the address', () => ingress('shop'), (ips) => ips[0] === '198.19.5.1');
    assert.equal(getSvc('shop').status!.loadBalancer!.ingress![0]!.ipMode, 'VIP');
    assert.match(kubectl(['get', 'svc', 'shop', '-n', NS, '--no-headers']), /^shop\s+LoadBalancer\s+\S+\s+198\.19\.5\.1\s+80:\d+\/TCP,53:\d+\/UDP\s/);

    // Endpoints: two ready, one not ready; the ready ones are the backends, weighted by their pods' annotation.
    applyPod(f.cp, NS, 'shop-a', '198.18.50.1', { labels: { app: 'shop' }, annotations: { 'xdplb.dev/weight': '3' } });
    slice('shop', [['shop-a', '198.18.50.1', true], ['shop-b', '198.18.50.2', true], ['shop-c', '198.18.50.3', false]], ports);
    let v = await waitUntil('two ready endpoints as backends', () => getVip(f.cp, NS, 'shop'), (x) => x.status?.readyBackends === 2);
    assert.deepEqual(v.status!.backends!.map((b) => [b.pod, b.ip, b.weight, !!b.draining]), [['shop-a', '198.18.50.1', 3, false], ['shop-b', '198.18.50.2', 1, false]]);
    assert.equal(condition(v, 'BackendsAvailable')!.status, 'True');
    // shop-b terminates: it drains (established flows finish), shop-c becomes ready.
    slice('shop', [['shop-a', '198.18.50.1', true], ['shop-b', '198.18.50.2', false, true], ['shop-c', '198.18.50.3', true]], ports);
    v = await waitUntil('b draining, c in', () => getVip(f.cp, NS, 'shop'), (x) => x.status?.backends?.find((b) => b.pod === 'shop-b')?.draining === true && x.status.readyBackends === 2);
    assert.deepEqual(v.status!.backends!.map((b) => [b.pod, !!b.draining]), [['shop-a', false], ['shop-b', true], ['shop-c', false]]);
    await waitUntil('a VipCreated Event on the Service', () => eventsOf(f.cp, NS, 'shop'), (e) => e.includes('Normal VipCreated: LoadBalancerVip shop serves it (kubectl describe lbvip shop)'));
    await waitUntil('an IngressAddress Event', () => eventsOf(f.cp, NS, 'shop'), (e) => e.includes('Normal IngressAddress: load balancer address 198.19.5.1'));

    // No longer of type LoadBalancer: the VIP goes, the address is released.
    service('shop', ports, { type: 'ClusterIP' });
    await waitUntil('the VIP deleted after the type change', () => vipOrNull('shop'), (x) => x === null);
    await waitUntil('no ingress left', () => ingress('shop'), (ips) => ips.length === 0);
    kubectl(['delete', 'svc', 'shop', '-n', NS]);
    kubectl(['delete', 'endpointslice', 'shop-abc', '-n', NS]);
  });

  test('the address asked for (annotation) is used where a pool allows it, refused where not; deletion cleans up', async (t) => {
    if (!f.need(t)) return;
    service('asked', [{ port: 443 }], { annotations: { 'xdplb.dev/address': '198.19.5.77' } });
    await waitUntil('the asked address', () => ingress('asked'), (ips) => ips[0] === '198.19.5.77');
    service('outside', [{ port: 443 }], { annotations: { 'xdplb.dev/address': '198.19.6.1' } });
    const v = await waitUntil('refused', () => vipOrNull('outside'), (x) => !!x && condition(x, 'AddressAllowed')?.status === 'False');
    assert.equal(condition(v!, 'AddressAllowed')!.reason, 'NotInPool');
    assert.deepEqual(ingress('outside'), [], 'no EXTERNAL-IP for an address that is not allowed');
    kubectl(['delete', 'svc', 'asked', '-n', NS]);
    kubectl(['delete', 'svc', 'outside', '-n', NS]);
    await waitUntil('both VIPs deleted with their Services', () => [vipOrNull('asked'), vipOrNull('outside')], (xs) => xs.every((x) => x === null));
  });

  test('a port that differs from its target port is served with delivery Node; InPod, or a named port resolving to another number, is refused with a Warning', async (t) => {
    if (!f.need(t)) return;
    service('mapped', [{ port: 80, targetPort: 8080 }]);
    const made = await waitUntil('a VIP with the target port and delivery Node', () => vipOrNull('mapped'), (x) => !!x);
    assert.deepEqual(made!.spec.ports, [{ port: 80, protocol: 'TCP', targetPort: 8080 }]);
    assert.equal(made!.spec.delivery, 'Node');
    await waitUntil('served', () => ingress('mapped'), (ips) => ips.length === 1);
    // Told that the pods decapsulate themselves: nothing would translate the port.
    service('mapped', [{ port: 80, targetPort: 8080 }], { annotations: { 'xdplb.dev/delivery': 'InPod' } });
    await waitUntil('a PortsDiffer Event', () => eventsOf(f.cp, NS, 'mapped'),
      (e) => e.some((l) => l.startsWith('Warning PortsDiffer: port 80/TCP has targetPort 8080: with xdplb.dev/delivery: InPod')));
    await waitUntil('the VIP removed', () => vipOrNull('mapped'), (x) => x === null);
    // A named target port is resolved by the endpoints, per endpoint: one that differs is refused whatever the delivery.
    service('mapped', [{ port: 80, targetPort: 'http', name: 'http' }]);
    slice('mapped', [['m-a', '198.18.50.9', true]], [{ port: 80, targetPort: 8080, name: 'http' }]);
    await waitUntil('a PortsDiffer Event naming the resolved port', () => eventsOf(f.cp, NS, 'mapped'),
      (e) => e.some((l) => l.startsWith('Warning PortsDiffer: port 80/TCP has targetPort "http", which the endpoints resolve to 8080: a named targetPort can differ per endpoint')));
    assert.equal(vipOrNull('mapped'), null);
    slice('mapped', [['m-a', '198.18.50.9', true]], [{ port: 80, name: 'http' }]);
    await waitUntil('served once the named port resolves to 80', () => ingress('mapped'), (ips) => ips.length === 1);
    kubectl(['delete', 'svc', 'mapped', '-n', NS]);
    kubectl(['delete', 'endpointslice', 'mapped-abc', '-n', NS]);
  });

  test('another class, or none, is not served; with the flag, Services without a class are', async (t) => {
    if (!f.need(t)) return;
    service('other', [{ port: 80 }], { cls: 'example.com/other' });
    service('unclassed', [{ port: 80 }], { cls: null });
    service('ours', [{ port: 80 }]);
    await waitUntil('ours served', () => ingress('ours'), (ips) => ips.length === 1);
    assert.equal(vipOrNull('other'), null);
    assert.equal(vipOrNull('unclassed'), null);
    await controller.stop();
    await startController(f.cp.kubeconfig, true);
    await waitUntil('the Service without a class served', () => ingress('unclassed'), (ips) => ips.length === 1);
    assert.equal(vipOrNull('other'), null, 'another class is never ours');
    await controller.stop();
    await startController(f.cp.kubeconfig);
    await waitUntil('without the flag again, its VIP goes', () => vipOrNull('unclassed'), (x) => x === null);
    await waitUntil('and its ingress', () => ingress('unclassed'), (ips) => ips.length === 0);
    for (const s of ['other', 'unclassed', 'ours']) kubectl(['delete', 'svc', s, '-n', NS]);
  });

  test('a LoadBalancerVip of the same name not made for the Service is reported, not taken over; a VIP left behind is swept', async (t) => {
    if (!f.need(t)) return;
    kubectl(['apply', '-f', '-'], `apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: mine, namespace: ${NS}}\nspec: {address: 198.19.5.200, ports: [{port: 80}], backendSelector: {matchLabels: {app: mine}}}\n`);
    service('mine', [{ port: 80 }]);
    await waitUntil('a NameTaken Event', () => eventsOf(f.cp, NS, 'mine'), (e) => e.some((l) => l.startsWith('Warning NameTaken: LoadBalancerVip mine exists')));
    assert.equal(getVip(f.cp, NS, 'mine').spec.backendSelector?.matchLabels?.app, 'mine', 'the user\'s VIP is untouched');
    // The user's VIP goes: the Service is served at once.
    kubectl(['delete', 'lbvip', 'mine', '-n', NS]);
    await waitUntil('the Service served once the name is free', () => ingress('mine'), (ips) => ips.length === 1);
    assert.equal(vipOrNull('mine')!.spec.backendService, 'mine');
    kubectl(['delete', 'svc', 'mine', '-n', NS]);
    await waitUntil('its VIP deleted with it', () => vipOrNull('mine'), (x) => x === null);

    service('swept', [{ port: 80 }]);
    await waitUntil('served', () => vipOrNull('swept'), (x) => x !== null);
    await controller.stop();
    kubectl(['delete', 'svc', 'swept', '-n', NS]); // no garbage collector here, no controller now
    await startController(f.cp.kubeconfig);
    await waitUntil('the VIP swept at start', () => vipOrNull('swept'), (x) => x === null);
  });
});
