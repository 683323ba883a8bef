import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1EndpointSlice, V1Pod } from '@kubernetes/client-node';
import { type LoadBalancerVip, QUIC_SERVER_ID_ANNOTATION, WEIGHT_ANNOTATION } from '../../../src/api/loadbalancervip.js';
import { resolveEndpointBackends, trimEndpointSlice } from '../../../src/controller/services/endpoint-backends.js';

const NOW = new Date('2026-11-30T12:00:00Z');
const DRAIN = 30;

const vip = (backends?: LoadBalancerVip['status']): LoadBalancerVip => ({
  metadata: { name: 'shop', namespace: 'web' },
  spec: { ports: [{ port: 80, protocol: 'TCP' }], backendService: 'shop' },
  ...(backends ? { status: backends } : {}),
});

type Ep = [pod: string, ip: string, cond: { ready?: boolean; terminating?: boolean }];
const slice = (name: string, family: 'IPv4' | 'IPv6', eps: Ep[], service = 'shop', namespace = 'web'): V1EndpointSlice => ({
  metadata: { name, namespace, labels: { 'kubernetes.io/service-name': service } },
  addressType: family,
  endpoints: eps.map(([pod, ip, cond]) => ({ addresses: [ip], conditions: cond, targetRef: { kind: 'Pod', name: pod }, nodeName: 'node-a' })),
});
const noPods = () => undefined;

test('ready endpoints serve; an unset ready counts as ready; not-ready and terminating ones do not; other Services and namespaces are ignored', () => {
  const r = resolveEndpointBackends(vip(), '198.19.5.1', [
    slice('a', 'IPv4', [['p1', '198.18.50.1', { ready: true }], ['p2', '198.18.50.2', {}], ['p3', '198.18.50.3', { ready: false }],
      ['p4', '198.18.50.4', { ready: false, terminating: true }]]),
    slice('b', 'IPv4', [['x', '198.18.50.9', { ready: true }]], 'other'),
    slice('c', 'IPv4', [['y', '198.18.50.10', { ready: true }]], 'shop', 'elsewhere'),
  ], noPods, NOW, DRAIN);
  assert.deepEqual(r.backends.map((b) => [b.pod, b.ip, b.weight, b.node]), [['p1', '198.18.50.1', 1, 'node-a'], ['p2', '198.18.50.2', 1, 'node-a']]);
});

test('a terminating endpoint that was a backend drains for the drain period, then goes', () => {
  const first = resolveEndpointBackends(vip(), '198.19.5.1', [slice('a', 'IPv4', [['p1', '198.18.50.1', { ready: true }], ['p2', '198.18.50.2', { ready: true }]])], noPods, NOW, DRAIN);
  const terminating = [slice('a', 'IPv4', [['p1', '198.18.50.1', { ready: true }], ['p2', '198.18.50.2', { ready: false, terminating: true }]])];
  const r = resolveEndpointBackends(vip({ backends: first.backends }), '198.19.5.1', terminating, noPods, NOW, DRAIN);
  assert.deepEqual(r.backends.map((b) => [b.pod, b.weight, !!b.draining]), [['p1', 1, false], ['p2', 0, true]]);
  assert.equal(r.requeueAfterSeconds, DRAIN);
  const later = new Date(NOW.getTime() + DRAIN * 1000);
  assert.deepEqual(resolveEndpointBackends(vip({ backends: r.backends }), '198.19.5.1', terminating, noPods, later, DRAIN).backends.map((b) => b.pod), ['p1']);
});

test('dual stack: one endpoint per pod across the family slices, the VIP\'s own family first', () => {
  const slices = [
    slice('v4', 'IPv4', [['p1', '198.18.50.1', { ready: true }]]),
    slice('v6', 'IPv6', [['p1', '2001:db8:50::1', { ready: true }]]),
  ];
  assert.deepEqual(resolveEndpointBackends(vip(), '198.19.5.1', slices, noPods, NOW, DRAIN).backends.map((b) => b.ip), ['198.18.50.1']);
  assert.deepEqual(resolveEndpointBackends(vip(), '2001:db8:5::1', slices, noPods, NOW, DRAIN).backends.map((b) => b.ip), ['2001:db8:50::1']);
  // A pod not ready in one family's slice is not ready.
  const half = [slices[0]!, slice('v6', 'IPv6', [['p1', '2001:db8:50::1', { ready: false }]])];
  assert.deepEqual(resolveEndpointBackends(vip(), '198.19.5.1', half, noPods, NOW, DRAIN).backends, []);
});

test('the pod\'s weight annotation applies; an FQDN slice has nothing to send to', () => {
  const pod: V1Pod = { metadata: { name: 'p1', namespace: 'web', annotations: { [WEIGHT_ANNOTATION]: '5' } } };
  const fqdn: V1EndpointSlice = { ...slice('f', 'IPv4', [['p9', 'db.example', { ready: true }]]), addressType: 'FQDN' };
  const r = resolveEndpointBackends(vip(), '198.19.5.1', [slice('a', 'IPv4', [['p1', '198.18.50.1', { ready: true }]]), fqdn], (n) => (n === 'p1' ? pod : undefined), NOW, DRAIN);
  assert.deepEqual(r.backends.map((b) => [b.pod, b.weight]), [['p1', 5]]);
});

test('the pod\'s QUIC server id annotation applies; a bad one is reported', () => {
  const pods: Record<string, V1Pod> = {
    p1: { metadata: { name: 'p1', namespace: 'web', annotations: { [QUIC_SERVER_ID_ANNOTATION]: '12' } } },
    p2: { metadata: { name: 'p2', namespace: 'web', annotations: { [QUIC_SERVER_ID_ANNOTATION]: 'twelve' } } },
  };
  const r = resolveEndpointBackends(vip(), '198.19.5.1', [slice('a', 'IPv4', [['p1', '198.18.50.1', { ready: true }], ['p2', '198.18.50.2', { ready: true }]])],
    (n) => pods[n], NOW, DRAIN);
  assert.deepEqual(r.backends.map((b) => [b.pod, b.quicServerId]), [['p1', 12], ['p2', undefined]]);
  assert.deepEqual(r.badQuicServerIds, [{ pod: 'p2', value: 'twelve' }]);
});

test('trimming keeps what resolution reads: the same backends from a trimmed slice', () => {
  const full = slice('a', 'IPv4', [['p1', '198.18.50.1', { ready: true }]]);
  full.metadata!.labels!['endpointslice.kubernetes.io/managed-by'] = 'endpointslice-controller.k8s.io';
  full.endpoints![0]!.hints = { forZones: [{ name: 'z' }] };
  const before = resolveEndpointBackends(vip(), '198.19.5.1', [full], noPods, NOW, DRAIN);
  const trimmed = structuredClone(full);
  trimEndpointSlice(trimmed);
  assert.equal(trimmed.endpoints![0]!.hints, undefined);
  assert.deepEqual(resolveEndpointBackends(vip(), '198.19.5.1', [trimmed], noPods, NOW, DRAIN), before);
});
