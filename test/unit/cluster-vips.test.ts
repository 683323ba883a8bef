import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { type DataplaneAccept, planVips } from '../../src/agent/sources/cluster-vips.js';
import type { Problem, VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { Dataplane } from '../../src/agent/dataplane/dataplane.js';
import { BALANCER_MAPS, memoryMaps } from '../../src/bpf/maps.js';
import { ENCAP } from '../support/fixtures.js';

const acceptAll: DataplaneAccept = (specs) => ({ accepted: specs.map((_, i) => i), refused: new Map(), general: [] });

/** What an agent whose dataplane accepts everything programs. */
const vipSpecsFor = (balancer: string, vips: LoadBalancerVip[]) => planVips(balancer, vips, acceptAll).specs;

/** A dataplane that takes groups whole, in order, while they fit maxSpecs; refuses the specs `bad` names. */
function fakeAccept(maxSpecs: number, bad: (s: VipSpec) => string | null = () => null): DataplaneAccept {
  return (specs, groups = specs.map((_, i) => i)) => {
    const refused = new Map<number, Problem[]>();
    specs.forEach((s, i) => {
      const why = bad(s);
      if (why) refused.set(i, [{ path: '', reason: why }]);
    });
    const accepted: number[] = [];
    for (const g of new Set(groups)) {
      const members = groups.flatMap((gg, i) => (gg === g ? [i] : []));
      if (members.some((i) => refused.has(i))) continue;
      const total = accepted.length + members.length;
      if (total > maxSpecs) for (const i of members) refused.set(i, [{ path: '', reason: `${total} VIPs exceed the capacity of ${maxSpecs}` }]);
      else accepted.push(...members);
    }
    return { accepted, refused, general: [] };
  };
}

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
    const accept = fakeAccept(Infinity, (s) => (s.address.includes(':') ? 'no IPv6 source address' : null));
    const plan = planVips('default', [at('good', 2), bad], accept);
    assert.deepEqual(plan.programmed.map((v) => v.metadata.name), ['good']);
    assert.equal(plan.specs.length, 2);
    assert.equal(plan.refused.get(bad), 'port 80/TCP: no IPv6 source address; port 53/UDP: no IPv6 source address');
    assert.deepEqual(plan.conflicted, []);
  });

  test('over capacity: the oldest VIPs that fit are programmed, the newer refused with the reason', () => {
    const maxSpecs = 4; // two VIPs of two ports each
    const vips = [at('c', 3), at('a', 1), at('b', 2)];
    const plan = planVips('default', vips, fakeAccept(maxSpecs));
    assert.deepEqual(plan.programmed.map((v) => v.metadata.name), ['a', 'b']);
    assert.equal(plan.specs.length, 4);
    const over = '6 VIPs exceed the capacity of 4';
    assert.deepEqual([...plan.refused].map(([v, why]) => [v.metadata.name, why]), [['c', `port 80/TCP: ${over}; port 53/UDP: ${over}`]]);
  });

  test('conflicted VIPs are set aside, never checked or programmed', () => {
    const lost = at('lost', 2);
    lost.status!.conditions = [{ type: 'Conflict', status: 'True', reason: 'AddressInUse', message: '', lastTransitionTime: new Date() }];
    const seen: number[] = [];
    const plan = planVips('default', [at('kept', 1), lost], (specs) => (seen.push(specs.length), acceptAll(specs)));
    assert.deepEqual(plan.conflicted, [lost]);
    assert.deepEqual(plan.programmed.map((v) => v.metadata.name), ['kept']);
    assert.deepEqual(seen, [2]);
  });

  test('1200 VIPs over capacity: one accept call, the oldest that fit programmed', () => {
    const vips = Array.from({ length: 1200 }, (_, i) => at(`v${String(i).padStart(4, '0')}`, i, `198.19.${i >> 8}.${i & 255}`));
    const dataplane = new Dataplane(memoryMaps(BALANCER_MAPS, { vips: 512 }));
    let calls = 0;
    const plan = planVips('default', vips, (specs, groups) => {
      calls++;
      return dataplane.accept({ encap: ENCAP, vips: specs }, groups);
    });
    assert.equal(calls, 1);
    assert.equal(plan.programmed.length, 256, 'two ports each: 256 VIPs fill 512 dataplane VIPs');
    assert.deepEqual(plan.programmed, vips.slice(0, 256));
    assert.equal(plan.refused.size, 1200 - 256);
    assert.equal(plan.refused.get(vips[256]!), 'port 80/TCP: 514 VIPs exceed the capacity of 512; port 53/UDP: 514 VIPs exceed the capacity of 512');
  });
});
