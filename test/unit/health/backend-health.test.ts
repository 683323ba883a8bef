/** The controller's fold of the nodes' health reports into a VIP's backends, and what agents program from it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { healthTargetKey } from '../../../src/api/health-check.js';
import type { BackendStatus, LoadBalancerVip } from '../../../src/api/loadbalancervip.js';
import type { XdpBalancer } from '../../../src/api/xdpbalancer.js';
import { balancerHealth, healthCheckStatus, healthEvents, withHealth } from '../../../src/controller/backend-health.js';
import { Rendezvous } from '../../../src/lib/rendezvous.js';
import { specsOf } from '../../../src/agent/sources/cluster-vips.js';
import { healthVipsOf } from '../../../src/agent/health/cluster-health.js';
import { healthTargets } from '../../../src/agent/health/health-targets.js';
import { planHealthCheck } from '../../../src/api/health-check.js';

const NODES = ['lb-a', 'lb-b', 'lb-c'];
const VIP = 'shop/web';
const BACKENDS: BackendStatus[] = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6'].map((ip, i) => ({ ip, weight: 1, pod: `web-${i}` }));
const owner = (ip: string, nodes = NODES) => new Rendezvous(nodes).ownerOf(healthTargetKey(VIP, ip))!;

function balancer(reports: Record<string, string[]>, opts: { nodes?: string[]; digestOf?: string[] } = {}): XdpBalancer {
  const nodes = opts.nodes ?? NODES;
  const digest = new Rendezvous(opts.digestOf ?? nodes).digest();
  return {
    metadata: { name: 'default' }, spec: { image: 'x' },
    status: {
      probingNodes: nodes,
      nodes: Object.entries(reports).map(([node, ips]) => ({
        node, updated: '2026-01-01T00:00:00Z',
        health: { probingNodes: digest, unhealthy: ips.map((ip) => ({ vip: VIP, ip, since: '2026-01-01T00:00:00Z', reason: 'no SYN-ACK' })) },
      })),
    },
  };
}

test('a backend is unhealthy exactly when its owner under the current node list reports it', () => {
  const bad = BACKENDS[1]!.ip;
  const reports = Object.fromEntries(NODES.map((n) => [n, n === owner(bad) ? [bad] : []]));
  // Another node's word on it counts for nothing: it does not probe it.
  const other = NODES.find((n) => n !== owner(bad))!;
  reports[other] = [...reports[other]!, bad, BACKENDS[2]!.ip].filter((ip) => owner(ip) !== other);
  const out = withHealth(VIP, BACKENDS, undefined, balancerHealth(balancer(reports)), true);
  assert.deepEqual(out.filter((b) => b.healthy === false).map((b) => b.ip), [bad]);
  assert.match(out[1]!.unhealthyReason!, new RegExp(`no SYN-ACK \\(judged by ${owner(bad)}\\)`));
  assert.equal(healthCheckStatus(planHealthCheck(undefined, [{ port: 80, protocol: 'TCP' }]), out).unhealthyBackends, 1);
});

test('the owner has not reported for the current list yet: the previous status stands, either way', () => {
  const prev = BACKENDS.map((b, i) => (i === 0 ? { ...b, healthy: false, unhealthySince: 'then', unhealthyReason: 'old' } : b));
  const stale = balancerHealth(balancer(Object.fromEntries(NODES.map((n) => [n, BACKENDS.map((b) => b.ip)])), { digestOf: ['lb-a'] }));
  const out = withHealth(VIP, BACKENDS, prev, stale, true);
  assert.deepEqual(out.map((b) => b.healthy), [false, undefined, undefined, undefined, undefined, undefined]);
  assert.equal(out[0]!.unhealthyReason, 'old');
});

test('draining backends, VIPs not probed, and a balancer with no reports carry no health', () => {
  const view = balancerHealth(balancer(Object.fromEntries(NODES.map((n) => [n, BACKENDS.map((b) => b.ip)]))));
  const draining = BACKENDS.map((b) => ({ ...b, draining: true }));
  assert.ok(withHealth(VIP, draining, undefined, view, true).every((b) => b.healthy === undefined));
  assert.ok(withHealth(VIP, BACKENDS, undefined, view, false).every((b) => b.healthy === undefined));
  assert.ok(withHealth(VIP, BACKENDS, undefined, balancerHealth(undefined), true).every((b) => b.healthy === undefined));
  assert.deepEqual(healthCheckStatus(planHealthCheck(undefined, [{ port: 53, protocol: 'UDP' }]), BACKENDS),
    { probed: false, reason: 'NoTcpPort', message: 'no TCP port to probe: UDP-only VIPs rely on readiness alone' });
});

test('events: unhealthy is a Warning, healthy again a Normal', () => {
  const down = BACKENDS.map((b, i) => (i === 2 ? { ...b, healthy: false, unhealthyReason: 'x (judged by lb-a)' } : b));
  assert.deepEqual(healthEvents(BACKENDS, down), [['Warning', 'BackendUnhealthy', '10.0.0.3 (pod web-2): x (judged by lb-a); weight 0 until it answers again']]);
  assert.deepEqual(healthEvents(down, BACKENDS), [['Normal', 'BackendHealthy', '10.0.0.3 (pod web-2) answers its health checks again']]);
  assert.deepEqual(healthEvents(down, down), []);
});

test('agents program an unhealthy backend at weight 0, and probe only their share, starting from the status', () => {
  const vip: LoadBalancerVip = {
    metadata: { name: 'web', namespace: 'shop', creationTimestamp: new Date(0) },
    spec: { ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }], backendSelector: {} },
    status: {
      address: '198.19.0.10',
      conditions: [{ type: 'AddressAllowed', status: 'True', reason: 'InPool', message: '', lastTransitionTime: new Date() }],
      backends: BACKENDS.map((b, i) => (i === 0 ? { ...b, healthy: false, unhealthySince: '2026-01-01T00:00:00Z' } : i === 1 ? { ...b, draining: true } : b)),
    },
  };
  for (const spec of specsOf(vip)) assert.deepEqual(spec.reals.map((r) => r.weight), [0, 0, 1, 1, 1, 1]);
  const mine = (node: string) => healthTargets(healthVipsOf([vip]), (k) => new Rendezvous(NODES).ownerOf(k) === node).targets;
  const all = NODES.flatMap(mine);
  assert.deepEqual(all.map((t) => t.real).sort(), BACKENDS.filter((_, i) => i !== 1).map((b) => b.ip), 'every listed backend not draining, once');
  const first = all.find((t) => t.real === BACKENDS[0]!.ip)!;
  assert.deepEqual(first.knownUnhealthy, { since: Date.parse('2026-01-01T00:00:00Z'), reason: undefined });
  assert.equal(first.check.port, 80);
});

test('Node addressing: the probe follows the traffic to the node, and the node\'s verdict covers each of its pods of the VIP', () => {
  const onNode = (b: BackendStatus, i: number): BackendStatus => ({ ...b, node: `w${i % 2}`, nodeIP: `198.18.4${i % 2}.2` });
  const backends = BACKENDS.map(onNode);
  const vip: LoadBalancerVip = {
    metadata: { name: 'web', namespace: 'shop', creationTimestamp: new Date(0) },
    spec: { ports: [{ port: 80, protocol: 'TCP' }], backendSelector: {} },
    status: {
      address: '198.19.0.10', addressing: 'Node',
      conditions: [{ type: 'AddressAllowed', status: 'True', reason: 'InPool', message: '', lastTransitionTime: new Date() }],
      backends: backends.map((b, i) => (i === 0 ? { ...b, healthy: false, unhealthySince: '2026-01-01T00:00:00Z' } : b)),
    },
  };
  const targets = NODES.flatMap((n) => healthTargets(healthVipsOf([vip]), (k) => new Rendezvous(NODES).ownerOf(k) === n).targets);
  assert.deepEqual(targets.map((t) => t.real).sort(), ['198.18.40.2', '198.18.41.2'], 'one target per node, not per pod');
  assert.ok(targets.every((t) => t.knownUnhealthy === undefined), 'a node is known unhealthy only when all its pods are');
  // The node's owner reports the node's address; the controller judges each pod by its nodeIP.
  const bad = '198.18.40.2';
  const reports = Object.fromEntries(NODES.map((n) => [n, n === owner(bad) ? [bad] : []]));
  const out = withHealth(VIP, backends, undefined, balancerHealth(balancer(reports)), true, (b) => b.nodeIP);
  assert.deepEqual(out.filter((b) => b.healthy === false).map((b) => b.pod), ['web-0', 'web-2', 'web-4']);
  for (const spec of specsOf({ ...vip, status: { ...vip.status, backends: out } })) {
    assert.deepEqual(spec.reals, [{ address: '198.18.40.2', weight: 0 }, { address: '198.18.41.2', weight: 3 }], 'the node gets weight 0 at every balancer');
  }
});

test('a backend is never probed by the node it runs on while another node can (its answer would stay local); the controller asks the same owner', () => {
  const onA = BACKENDS.map((b) => ({ ...b, node: 'lb-a' }));
  const vip: LoadBalancerVip = {
    metadata: { name: 'web', namespace: 'shop', creationTimestamp: new Date(0) },
    spec: { ports: [{ port: 80, protocol: 'TCP' }], backendSelector: {} },
    status: {
      address: '198.19.0.10',
      conditions: [{ type: 'AddressAllowed', status: 'True', reason: 'InPool', message: '', lastTransitionTime: new Date() }],
      backends: onA,
    },
  };
  const probedBy = (nodes: string[]) => new Map(nodes.map((n) =>
    [n, healthTargets(healthVipsOf([vip]), (k, node) => new Rendezvous(nodes).ownerOf(k, node) === n).targets.length]));
  const three = probedBy(NODES);
  assert.equal(three.get('lb-a'), 0, 'lb-a hosts them all and probes none');
  assert.equal(three.get('lb-b')! + three.get('lb-c')!, onA.length);
  assert.equal(probedBy(['lb-a']).get('lb-a'), onA.length, 'alone, it probes them');
  // lb-a reports a backend it does not own: no word; its owner reports it: unhealthy.
  const bad = onA[0]!.ip;
  const realOwner = new Rendezvous(NODES).ownerOf(healthTargetKey(VIP, bad), 'lb-a')!;
  assert.notEqual(realOwner, 'lb-a');
  const fromA = withHealth(VIP, onA, undefined, balancerHealth(balancer({ 'lb-a': [bad], [realOwner]: [] })), true);
  assert.equal(fromA[0]!.healthy, undefined);
  const fromOwner = withHealth(VIP, onA, undefined, balancerHealth(balancer({ 'lb-a': [], [realOwner]: [bad] })), true);
  assert.equal(fromOwner[0]!.healthy, false);
});
