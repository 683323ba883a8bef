import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { type DataplaneCheck, planVips } from '../../src/agent/sources/cluster-vips.js';

/** What an agent whose dataplane accepts everything programs. */
const vipSpecsFor = (balancer: string, vips: LoadBalancerVip[]) => planVips(balancer, vips, () => []).specs;

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

describe('planning what an agent programs', () => {
  const at = (name: string, minute: number, address = '198.19.0.10') => vip(name, {
    metadata: { name, namespace: 'shop', generation: 1, creationTimestamp: new Date(Date.UTC(2026, 10, 24, 12, minute)) },
    spec: { ...vip('x').spec, address },
  });

  test('a VIP the dataplane names is refused alone, with the port and the reason; the rest are programmed', () => {
    const bad = at('bad', 1, '2001:db8::10');
    // The node has no IPv6 source address: every IPv6 VIP is refused.
    const check: DataplaneCheck = (specs) => specs.flatMap((s, i) => (s.address.includes(':') ? [`vips[${i}]: no IPv6 source address`] : []));
    const plan = planVips('default', [at('good', 2), bad], check);
    assert.deepEqual(plan.programmed.map((v) => v.metadata.name), ['good']);
    assert.equal(plan.specs.length, 2);
    assert.equal(plan.refused.get(bad), 'port 80/TCP: no IPv6 source address; port 53/UDP: no IPv6 source address');
    assert.deepEqual(plan.conflicted, []);
  });

  test('over capacity: the oldest VIPs that fit are programmed, the newer refused with the reason', () => {
    const maxSpecs = 4; // two VIPs of two ports each
    const check: DataplaneCheck = (specs) => (specs.length > maxSpecs ? [`${specs.length} VIPs exceed the capacity of ${maxSpecs}`] : []);
    const vips = [at('c', 3), at('a', 1), at('b', 2)];
    const plan = planVips('default', vips, check);
    assert.deepEqual(plan.programmed.map((v) => v.metadata.name), ['a', 'b']);
    assert.equal(plan.specs.length, 4);
    assert.deepEqual([...plan.refused].map(([v, why]) => [v.metadata.name, why]), [['c', '6 VIPs exceed the capacity of 4']]);
  });

  test('conflicted VIPs are set aside, never checked or programmed', () => {
    const lost = at('lost', 2);
    lost.status!.conditions = [{ type: 'Conflict', status: 'True', reason: 'AddressInUse', message: '', lastTransitionTime: new Date() }];
    const seen: number[] = [];
    const plan = planVips('default', [at('kept', 1), lost], (specs) => (seen.push(specs.length), []));
    assert.deepEqual(plan.conflicted, [lost]);
    assert.deepEqual(plan.programmed.map((v) => v.metadata.name), ['kept']);
    assert.deepEqual(seen, [2]);
  });
});
