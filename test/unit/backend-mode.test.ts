/** Backend mode's sources: which backends a node serves, from LoadBalancerVips or a file. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { backendsOfNode, nodeDeliveredVips } from '../../src/agent/backend/cluster-backends.js';
import { parseBackendFile } from '../../src/agent/backend/backend-sources.js';
import { backendVerdict } from '../../src/agent/backend/backend-metrics.js';

const AT = new Date('2026-11-24T12:00:00Z');
const allowedCondition = { type: 'AddressAllowed', status: 'True', reason: 'InPool', message: '', lastTransitionTime: AT };

/** A VIP as the controller leaves it: address allowed, backends on node-a and node-b (one draining on node-a). */
function vip(name: string, spec: Partial<LoadBalancerVip['spec']> = {}, created = '2026-11-01T00:00:00Z'): LoadBalancerVip {
  return {
    metadata: { name, namespace: 'shop', creationTimestamp: new Date(created) },
    spec: { ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }, { port: 53, protocol: 'UDP' }], backendService: name, delivery: 'Node', ...spec },
    status: {
      address: '198.19.0.10',
      conditions: [allowedCondition],
      backends: [
        { ip: '198.18.40.1', weight: 1, pod: 'a-1', node: 'node-a' },
        { ip: '198.18.40.2', weight: 0, pod: 'a-2', node: 'node-a', draining: true, drainingSince: AT.toISOString() },
        { ip: '198.18.41.1', weight: 1, pod: 'b-1', node: 'node-b' },
        { ip: '198.18.42.1', weight: 1, pod: 'nowhere' },
      ],
    },
  };
}

test("a node serves its own pods' backends of delivery-Node VIPs, each port to its targetPort, draining ones too", () => {
  assert.deepEqual(backendsOfNode([vip('web')], 'node-a'), [
    { vip: '198.19.0.10', vipPort: 80, protocol: 'TCP', podAddress: '198.18.40.1', targetPort: 8080 },
    { vip: '198.19.0.10', vipPort: 53, protocol: 'UDP', podAddress: '198.18.40.1', targetPort: 53 },
    { vip: '198.19.0.10', vipPort: 80, protocol: 'TCP', podAddress: '198.18.40.2', targetPort: 8080 },
    { vip: '198.19.0.10', vipPort: 53, protocol: 'UDP', podAddress: '198.18.40.2', targetPort: 53 },
  ]);
  assert.deepEqual(backendsOfNode([vip('web')], 'node-b').map((b) => b.podAddress), ['198.18.41.1', '198.18.41.1']);
  assert.deepEqual(backendsOfNode([vip('web')], 'node-c'), []);
});

test('only what the balancers program: delivery Node, an allowed address (the assigned one too), no conflict', () => {
  const inPod = vip('in-pod', { delivery: 'InPod', ports: [{ port: 80, protocol: 'TCP' }] });
  const defaulted = vip('defaulted', { delivery: undefined, ports: [{ port: 80, protocol: 'TCP' }] });
  const refused = vip('refused');
  refused.status!.conditions = [{ ...allowedCondition, status: 'False', reason: 'NotInPool' }];
  const conflict = vip('conflict');
  conflict.status!.conditions!.push({ type: 'Conflict', status: 'True', reason: 'AddressInUse', message: '', lastTransitionTime: AT });
  const unchecked = vip('unchecked', { address: '198.19.0.99' });
  assert.deepEqual(nodeDeliveredVips([inPod, refused, conflict, unchecked]), [], 'InPod is the pods\' own business');
  assert.deepEqual(nodeDeliveredVips([defaulted]), [defaulted], 'delivery left out is Node (the default)');
  const assigned = vip('assigned');
  assigned.status!.address = '198.19.0.77';
  assert.deepEqual(new Set(backendsOfNode([assigned], 'node-a').map((b) => b.vip)), new Set(['198.19.0.77']), 'no spec.address: the assigned one');
});

test('oldest VIP first, so on a clash (one pod port, two targets) the older VIP keeps it', () => {
  const older = vip('b-older', {}, '2026-10-01T00:00:00Z');
  const newer = vip('a-newer', { ports: [{ port: 80, protocol: 'TCP', targetPort: 9090 }] });
  assert.deepEqual(backendsOfNode([newer, older], 'node-a').filter((b) => b.vipPort === 80).map((b) => b.targetPort), [8080, 8080, 9090, 9090]);
});

test('the standalone file: backends with targetPort defaulting to vipPort; bad shapes refused with where', () => {
  assert.deepEqual(parseBackendFile('backends:\n  - {vip: 198.19.0.10, vipPort: 80, podAddress: 198.18.40.1, targetPort: 8080}\n  - {vip: 198.19.0.10, vipPort: 53, protocol: UDP, podAddress: 198.18.40.1}\n', 'f.yaml'), [
    { vip: '198.19.0.10', vipPort: 80, protocol: 'TCP', podAddress: '198.18.40.1', targetPort: 8080 },
    { vip: '198.19.0.10', vipPort: 53, protocol: 'UDP', podAddress: '198.18.40.1', targetPort: 53 },
  ]);
  assert.deepEqual(parseBackendFile('', 'f.yaml'), [], 'an empty file: nothing to serve');
  assert.throws(() => parseBackendFile('backends: {}', 'f.yaml'), /f\.yaml: backends must be a list/);
  assert.throws(() => parseBackendFile('backends: [{vip: 198.19.0.10, vipPort: 80, podAddress: x, port: 1}]', 'f.yaml'), /backends\[0\]: unknown field port/);
  assert.throws(() => parseBackendFile('backends: [{vip: 198.19.0.10, vipPort: "80", podAddress: x}]', 'f.yaml'), /vipPort and targetPort must be numbers/);
  assert.throws(() => parseBackendFile('backends: [{vip: 198.19.0.10, vipPort: 80, podAddress: x, protocol: SCTP}]', 'f.yaml'), /protocol must be TCP or UDP/);
});

test('metrics verdicts: delivered, rewritten, pass, drop', () => {
  assert.deepEqual(['TO_POD_V4_IN_V6', 'REPLY_REWRITTEN', 'PASS_NO_FLOW', 'DROP_HAIRPIN'].map((r) => backendVerdict(r as never)), ['delivered', 'rewritten', 'pass', 'drop']);
  assert.deepEqual(['NODE_TO_POD_V6_IN_V6', 'NODE_TO_STACK_FRAG_NEEDED', 'NODE_PASS_NOT_ENCAP', 'NODE_DROP_NOT_LOCAL'].map((r) => backendVerdict(r as never)),
    ['delivered', 'delivered', 'pass', 'drop']);
});
