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

const ALLOWED_AT = new Date('2026-11-24T12:00:00Z');

/** The VIP as the controller leaves it once it allowed the address: status.address and AddressAllowed True. */
function allowed(v: LoadBalancerVip): LoadBalancerVip {
  if (!v.status) return v;
  v.status.address ??= v.spec.address;
  v.status.conditions = [...(v.status.conditions ?? []), { type: 'AddressAllowed', status: 'True', reason: 'InPool', message: '', lastTransitionTime: ALLOWED_AT }];
  return v;
}

const vip = (name: string, over: Partial<LoadBalancerVip> = {}): LoadBalancerVip => allowed({
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
    { address: '198.19.0.10', port: 80, protocol: 'TCP', hashNoSrcPort: true, lruBypass: false, icmpEcho: true, quicConnectionIdRouting: false, reals },
    { address: '198.19.0.10', port: 53, protocol: 'UDP', hashNoSrcPort: true, lruBypass: false, icmpEcho: true, quicConnectionIdRouting: false, reals },
  ]);
  assert.equal(vipSpecsFor('edge', [vip('web'), vip('edge-only', { spec: { ...vip('x').spec, balancer: 'edge' } })]).length, 2);
});

test('QUIC connection-ID routing: on the UDP ports only, with each backend\'s server id (Pod addressing)', () => {
  const quic = vip('quic', { spec: { ...vip('x').spec, quicConnectionIdRouting: true } });
  quic.status!.backends = quic.status!.backends!.map((b, i) => ({ ...b, quicServerId: 10 + i }));
  const specs = vipSpecsFor('default', [quic]);
  assert.deepEqual(specs.map((s) => [s.protocol, s.quicConnectionIdRouting]), [['TCP', false], ['UDP', true]]);
  assert.deepEqual(specs[1]!.reals, [{ address: '198.18.40.1', weight: 2, quicServerId: 10 }, { address: '198.18.40.2', weight: 0, quicServerId: 11 }]);
});

test('a VIP in conflict is not programmed; one without status has no reals yet', () => {
  const conflicted = vip('late');
  conflicted.status!.conditions!.push({ type: 'Conflict', status: 'True', reason: 'AddressInUse', message: '', lastTransitionTime: new Date() });
  assert.deepEqual(vipSpecsFor('default', [conflicted]), []);
  const fresh = vip('fresh', { status: { address: '198.19.0.10' } });
  allowed(fresh);
  assert.deepEqual(vipSpecsFor('default', [fresh]).map((s) => s.reals), [[], []]);
});

test('only an address the controller allowed is programmed: not before, not after it is revoked, not an edited one until checked', () => {
  const unchecked = vip('new', { status: undefined });
  assert.deepEqual(vipSpecsFor('default', [unchecked]), [], 'no status yet: the controller has not allowed the address');
  const refused = vip('refused');
  refused.status!.conditions = [{ type: 'AddressAllowed', status: 'False', reason: 'NotInPool', message: '', lastTransitionTime: ALLOWED_AT }];
  assert.deepEqual(vipSpecsFor('default', [refused]), []);
  const edited = vip('edited');
  edited.spec.address = '198.19.0.99';
  assert.deepEqual(vipSpecsFor('default', [edited]), [], 'the allowed address is the old one: the new one waits for the controller');
  const respelled = vip('v6', { spec: { ...vip('x').spec, address: '2001:DB8:19::0010' } });
  respelled.status!.address = '2001:db8:19::10';
  assert.deepEqual(vipSpecsFor('default', [respelled]).map((s) => s.address), ['2001:db8:19::10', '2001:db8:19::10'], 'another spelling of the same address');
  const assigned = vip('assigned', { spec: { ...vip('x').spec, address: undefined } });
  assigned.status!.address = '198.19.0.77';
  assert.deepEqual(vipSpecsFor('default', [assigned]).map((s) => s.address), ['198.19.0.77', '198.19.0.77'], 'no spec.address: the assigned one');
});

test('a targetPort with delivery InPod is set aside (the controller says why); with delivery Node the balancer programs it, ports unchanged', () => {
  const ports = [{ port: 80, protocol: 'TCP' as const, targetPort: 8080 }];
  const inPod = vip('in-pod', { spec: { ...vip('x').spec, ports, delivery: 'InPod' } });
  const plan = planVips('default', [inPod], acceptAll);
  assert.deepEqual([plan.specs, plan.programmed, plan.setAside], [[], [], [inPod]]);
  const node = vip('node', { spec: { ...vip('x').spec, ports, delivery: 'Node' } });
  assert.deepEqual(vipSpecsFor('default', [node]).map((s) => `${s.address}:${s.port}`), ['198.19.0.10:80'], 'the balancer forwards to the VIP port; the backend node translates');
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
    assert.deepEqual(plan.setAside, []);
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
    lost.status!.conditions!.push({ type: 'Conflict', status: 'True', reason: 'AddressInUse', message: '', lastTransitionTime: new Date() });
    const seen: number[] = [];
    const plan = planVips('default', [at('kept', 1), lost], (specs) => (seen.push(specs.length), acceptAll(specs)));
    assert.deepEqual(plan.setAside, [lost]);
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
