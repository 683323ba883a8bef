import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { isOurs, planServiceVip, vipMatches } from '../../../src/controller/services/service-vip.js';

const svc = (over: Partial<NonNullable<V1Service['spec']>> = {}, annotations: Record<string, string> = {}): V1Service => ({
  metadata: { name: 'shop', namespace: 'web', uid: 'u-1', annotations },
  spec: { type: 'LoadBalancer', loadBalancerClass: 'xdplb.dev/xdp', ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 80 as never }], ...over },
});

test('ours: type LoadBalancer of class xdplb.dev/xdp; of no class only when told', () => {
  assert.equal(isOurs(svc(), false), true);
  assert.equal(isOurs(svc({ loadBalancerClass: 'example.com/other' }), true), false);
  assert.equal(isOurs(svc({ loadBalancerClass: undefined }), false), false);
  assert.equal(isOurs(svc({ loadBalancerClass: undefined }), true), true);
  assert.equal(isOurs(svc({ type: 'ClusterIP', loadBalancerClass: undefined }), true), false);
});

test('the VIP made for a Service: same name, labelled and owned, its ports, backends from its endpoints, the address asked for', () => {
  const plan = planServiceVip(svc({ sessionAffinity: 'ClientIP', ipFamilies: ['IPv6'] }, { 'xdplb.dev/balancer': 'edge' }), []);
  assert.ok(plan.serve);
  assert.deepEqual(plan.vip.metadata, {
    name: 'shop', namespace: 'web', labels: { 'xdplb.dev/service': 'shop' },
    ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: 'shop', uid: 'u-1', controller: true }],
  });
  assert.deepEqual(plan.vip.spec, {
    balancer: 'edge', addressFamily: 'IPv6', ports: [{ port: 80, protocol: 'TCP' }], backendService: 'shop', hashing: { ignoreSourcePort: true }, delivery: 'Node',
  });
  const asked = planServiceVip(svc({ loadBalancerIP: '198.19.5.9' }, { 'xdplb.dev/address': '198.19.5.7' }), []);
  assert.ok(asked.serve && asked.vip.spec.address === '198.19.5.7' && asked.vip.spec.addressFamily === undefined, 'the annotation first');
  const legacy = planServiceVip(svc({ loadBalancerIP: '198.19.5.9' }), []);
  assert.ok(legacy.serve && legacy.vip.spec.address === '198.19.5.9', 'then spec.loadBalancerIP');
});

test('a numeric targetPort that differs is served with delivery Node, the backend node translating it', () => {
  for (const targetPort of [8080, '8080']) {
    const plan = planServiceVip(svc({ ports: [{ port: 80, protocol: 'TCP', targetPort: targetPort as never }, { port: 443, protocol: 'TCP', targetPort: 443 as never }] }), []);
    assert.ok(plan.serve, `targetPort ${JSON.stringify(targetPort)}`);
    assert.deepEqual(plan.vip.spec.ports, [{ port: 80, protocol: 'TCP', targetPort: 8080 }, { port: 443, protocol: 'TCP' }]);
    assert.equal(plan.vip.spec.delivery, 'Node');
  }
  const inPod = planServiceVip(svc({}, { 'xdplb.dev/delivery': 'InPod' }), []);
  assert.ok(inPod.serve && inPod.vip.spec.delivery === 'InPod', 'the annotation chooses InPod');
});

test('refused: a port whose target differs with delivery InPod, a name the endpoints resolve to another number, SCTP, bad annotations', () => {
  const differ = planServiceVip(svc({ ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 as never }] }, { 'xdplb.dev/delivery': 'InPod' }), []);
  assert.deepEqual(differ, {
    serve: false, reason: 'PortsDiffer',
    message: 'port 80/TCP has targetPort 8080: with xdplb.dev/delivery: InPod the pods receive the VIP port unchanged; remove the annotation (delivery Node translates it) or make them equal',
  });
  const named = svc({ ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'web' as never }] });
  const slices = (port: number): V1EndpointSlice[] => [{ addressType: 'IPv4', endpoints: [], ports: [{ name: 'http', port, protocol: 'TCP' }] }];
  assert.equal(planServiceVip(named, []).serve, true, 'no endpoints yet: nothing says it differs');
  assert.equal(planServiceVip(named, slices(80)).serve, true);
  const resolved = planServiceVip(named, slices(8080));
  assert.ok(!resolved.serve && resolved.reason === 'PortsDiffer' && resolved.message.includes('which the endpoints resolve to 8080'));
  assert.match(resolved.message, /a named targetPort can differ per endpoint and a VIP port has one target port/);
  const sctp = planServiceVip(svc({ ports: [{ port: 80, protocol: 'SCTP' }] }), []);
  assert.ok(!sctp.serve && sctp.reason === 'UnsupportedProtocol');
  const bad = planServiceVip(svc({}, { 'xdplb.dev/balancer': 'Edge_1' }), []);
  assert.ok(!bad.serve && bad.reason === 'BadAnnotation');
  const badDelivery = planServiceVip(svc({}, { 'xdplb.dev/delivery': 'Pod' }), []);
  assert.deepEqual(badDelivery, { serve: false, reason: 'BadAnnotation', message: 'annotation xdplb.dev/delivery: "Pod" is neither Node nor InPod' });
});

test('an unchanged Service writes nothing: the VIP in the cluster (defaults filled in) matches what is wanted', () => {
  const plan = planServiceVip(svc(), []);
  assert.ok(plan.serve);
  const inCluster = structuredClone(plan.vip);
  inCluster.metadata.resourceVersion = '7';
  inCluster.spec.lruBypass = false;
  inCluster.status = { address: '198.19.5.1' };
  assert.equal(vipMatches(inCluster, plan.vip), true);
  const edited = planServiceVip(svc({ ports: [{ port: 443, protocol: 'TCP', targetPort: 443 as never }] }), []);
  assert.ok(edited.serve);
  assert.equal(vipMatches(inCluster, edited.vip), false);
  const retargeted = planServiceVip(svc({ ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 as never }] }), []);
  assert.ok(retargeted.serve);
  assert.equal(vipMatches(inCluster, retargeted.vip), false, 'a new targetPort is a change');
  const inPod = planServiceVip(svc({}, { 'xdplb.dev/delivery': 'InPod' }), []);
  assert.ok(inPod.serve);
  assert.equal(vipMatches(inCluster, inPod.vip), false, 'a new delivery is a change');
});
