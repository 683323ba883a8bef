import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { vipSpecsFor } from '../../src/agent/sources/cluster-vips.js';

const vip = (name: string, over: Partial<LoadBalancerVip> = {}): LoadBalancerVip => ({
  metadata: { name, namespace: 'shop' },
  spec: { address: '198.19.0.10', ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }], backendSelector: { matchLabels: { app: name } }, hashing: { ignoreSourcePort: true } },
  status: {
    backends: [
      { ip: '198.18.40.1', weight: 2, pod: 'a' },
      { ip: '198.18.40.2', weight: 1, pod: 'b', draining: true, drainingSince: '2026-11-24T12:00:00Z' },
    ],
  },
  ...over,
});

test("an agent programs its balancer's VIPs, one per port, draining backends at weight 0", () => {
  const specs = vipSpecsFor('default', [vip('web'), vip('edge-only', { spec: { ...vip('x').spec, balancer: 'edge' } })]);
  const reals = [{ address: '198.18.40.1', weight: 2 }, { address: '198.18.40.2', weight: 0 }];
  assert.deepEqual(specs, [
    { address: '198.19.0.10', port: 80, protocol: 'TCP', hashNoSrcPort: true, lruBypass: false, reals },
    { address: '198.19.0.10', port: 53, protocol: 'UDP', hashNoSrcPort: true, lruBypass: false, reals },
  ]);
  assert.equal(vipSpecsFor('edge', [vip('web'), vip('edge-only', { spec: { ...vip('x').spec, balancer: 'edge' } })]).length, 2);
});

test('a VIP in conflict is not programmed; one without status has no reals yet', () => {
  const conflicted = vip('late');
  conflicted.status!.conditions = [{ type: 'Conflict', status: 'True', reason: 'AddressInUse', message: '', lastTransitionTime: new Date() }];
  assert.deepEqual(vipSpecsFor('default', [conflicted]), []);
  const fresh = vip('fresh', { status: undefined });
  assert.deepEqual(vipSpecsFor('default', [fresh]).map((s) => s.reals), [[], []]);
});
