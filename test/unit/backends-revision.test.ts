import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backendsRevision } from '../../src/api/backends-revision.js';
import type { BackendStatus, LoadBalancerVipStatus } from '../../src/api/loadbalancervip.js';

const A: BackendStatus = { ip: '198.18.40.1', weight: 1, pod: 'a', node: 'node-a', nodeIP: '10.0.0.1' };
const B: BackendStatus = { ip: '198.18.40.2', weight: 2, pod: 'b', node: 'node-b', nodeIP: '10.0.0.2' };
const rev = (status: LoadBalancerVipStatus) => backendsRevision({ status });
const base: LoadBalancerVipStatus = { address: '198.19.0.10', backends: [A, B] };

test('the same status, the same revision: 16 hex digits, stable across calls', () => {
  assert.match(rev(base), /^[0-9a-f]{16}$/);
  assert.equal(rev(base), rev(structuredClone(base)));
});

test('backends in another order: the same revision (the dataplane sorts reals by address)', () => {
  assert.equal(rev({ ...base, backends: [B, A] }), rev(base));
  assert.equal(rev({ ...base, addressing: 'Node', backends: [B, A] }), rev({ ...base, addressing: 'Node' }));
});

test('any change to what agents program: a new revision', () => {
  const changes: [string, LoadBalancerVipStatus][] = [
    ['a backend added', { ...base, backends: [A, B, { ip: '198.18.40.3', weight: 1, pod: 'c' }] }],
    ['a backend removed', { ...base, backends: [A] }],
    ['a weight', { ...base, backends: [A, { ...B, weight: 3 }] }],
    ['a backend draining', { ...base, backends: [A, { ...B, draining: true }] }],
    ['a backend unhealthy', { ...base, backends: [A, { ...B, healthy: false }] }],
    ['a backend address', { ...base, backends: [A, { ...B, ip: '198.18.40.9' }] }],
    ['the VIP address', { ...base, address: '198.19.0.11' }],
    ['Node addressing', { ...base, addressing: 'Node' }],
    ['a QUIC server id', { ...base, backends: [A, { ...B, quicServerId: 7 }] }],
  ];
  for (const [what, status] of changes) assert.notEqual(rev(status), rev(base), `${what}: expected a new revision`);
  const node = { ...base, addressing: 'Node' as const };
  assert.notEqual(rev({ ...node, backends: [A, { ...B, nodeIP: '10.0.0.9' }] }), rev(node), 'a nodeIP, in Node addressing');
});

test('what agents do not program changes nothing', () => {
  assert.equal(rev({ ...base, backends: [A, { ...B, pod: 'b-renamed', node: 'node-z', unhealthyReason: 'timeout' }] }), rev(base));
  assert.equal(rev({ ...base, backends: [A, { ...B, nodeIP: '10.0.0.9' }] }), rev(base), 'a nodeIP, in Pod addressing');
  // Already at weight 0 either way: draining and unhealthy program the same.
  const draining = { ...B, draining: true, drainingSince: '2026-11-24T12:00:00Z' };
  assert.equal(rev({ ...base, backends: [A, { ...draining, healthy: false }] }), rev({ ...base, backends: [A, draining] }));
  // Node addressing programs each node once, its pods' weights summed.
  const node = { ...base, addressing: 'Node' as const };
  const sameNode = (w1: number, w2: number) => rev({ ...node, backends: [{ ...A, weight: w1 }, { ...B, nodeIP: A.nodeIP, weight: w2 }] });
  assert.equal(sameNode(1, 2), sameNode(2, 1));
});
