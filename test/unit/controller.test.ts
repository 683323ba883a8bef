import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { type LoadBalancerVip, QUIC_SERVER_ID_ANNOTATION, specProblem, WEIGHT_ANNOTATION } from '../../src/api/loadbalancervip.js';
import type { NodeStatus } from '../../src/api/xdpnodereport.js';
import { backendIp, resolveBackends, trimPod } from '../../src/controller/backends.js';
import { computeConditions, conditionsEqual } from '../../src/controller/conditions.js';
import { ClaimIndex, type ConflictInfo } from '../../src/controller/conflicts.js';
import { matchesSelector } from '../../src/controller/selector.js';
import type { BalancerView } from '../../src/controller/balancer-controller.js';
import { backendChanges, onlyProgress } from '../../src/controller/vip-controller.js';
import { vipStatus } from '../../src/controller/vip-status.js';
import type { AddressDecision } from '../../src/controller/pools/vip-address.js';

const NOW = new Date('2026-11-24T12:00:00Z');
const DRAIN = 60;
/** The address vip() has, allowed by a pool. */
const ADDRESS = '198.19.0.10';
const ALLOWED: AddressDecision = { allowed: true, address: ADDRESS, pool: 'shop', code: 'InPool', message: `${ADDRESS} is in pool shop` };

function vip(name: string, over: Partial<LoadBalancerVip['spec']> = {}, meta: Partial<LoadBalancerVip['metadata']> = {}): LoadBalancerVip {
  return {
    metadata: { name, namespace: 'shop', generation: 3, creationTimestamp: new Date('2026-11-01T00:00:00Z'), ...meta },
    spec: { address: ADDRESS, ports: [{ port: 80, protocol: 'TCP' }], backendSelector: { matchLabels: { app: 'web' } }, ...over },
  };
}

function pod(name: string, ip: string | string[], opts: { ready?: boolean; labels?: Record<string, string>; ns?: string; weight?: string; deleting?: boolean; node?: string } = {}): V1Pod {
  const ips = Array.isArray(ip) ? ip : [ip];
  return {
    metadata: {
      name,
      namespace: opts.ns ?? 'shop',
      labels: opts.labels ?? { app: 'web' },
      annotations: opts.weight === undefined ? {} : { [WEIGHT_ANNOTATION]: opts.weight },
      deletionTimestamp: opts.deleting ? NOW : undefined,
    },
    spec: { containers: [], nodeName: opts.node ?? 'node-a' },
    status: {
      phase: 'Running',
      podIP: ips[0],
      podIPs: ips.map((x) => ({ ip: x })),
      conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }],
    },
  };
}

/** Conflicts among these VIPs, as the controller's claim index sees them once all are added. */
function findConflicts(vips: readonly LoadBalancerVip[]): Map<string, ConflictInfo> {
  const index = new ClaimIndex();
  for (const v of vips) index.update(v, false);
  return index.conflicts();
}

describe('label selectors', () => {
  test('matchLabels and every matchExpressions operator', () => {
    const labels = { app: 'web', tier: 'front' };
    assert.ok(matchesSelector({ matchLabels: { app: 'web' } }, labels));
    assert.ok(!matchesSelector({ matchLabels: { app: 'db' } }, labels));
    assert.ok(matchesSelector({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'edge'] }] }, labels));
    assert.ok(!matchesSelector({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }] }, labels));
    assert.ok(matchesSelector({ matchExpressions: [{ key: 'canary', operator: 'DoesNotExist' }] }, labels));
    assert.ok(!matchesSelector({ matchExpressions: [{ key: 'canary', operator: 'Exists' }] }, labels));
    assert.ok(!matchesSelector({ matchExpressions: [{ key: 'app', operator: 'Bogus' }] }, labels));
  });
});

describe('backend resolution', () => {
  test('Ready pods of the namespace that match, by IP, with weights from the annotation', () => {
    const pods = [
      pod('web-2', '198.18.40.9', {}),
      pod('web-1', '198.18.40.1', { weight: '3', node: 'node-b' }),
      pod('web-3', '198.18.40.3', { ready: false }),
      pod('other', '198.18.40.4', { labels: { app: 'db' } }),
      pod('web-elsewhere', '198.18.40.5', { ns: 'other' }),
    ];
    const r = resolveBackends(vip('v'), ADDRESS, pods, NOW, DRAIN);
    assert.deepEqual(r.backends, [
      { ip: '198.18.40.1', weight: 3, pod: 'web-1', node: 'node-b' },
      { ip: '198.18.40.9', weight: 1, pod: 'web-2', node: 'node-a' },
    ]);
    assert.equal(r.requeueAfterSeconds, undefined);
  });

  test('an unusable weight annotation falls back to the default and is reported', () => {
    for (const bad of ['-1', 'heavy', '1.5', '1001', '']) {
      const r = resolveBackends(vip('v'), ADDRESS, [pod('p', '198.18.40.1', { weight: bad })], NOW, DRAIN);
      assert.equal(r.backends[0]!.weight, 1, bad);
      assert.deepEqual(r.badWeights, [{ pod: 'p', value: bad }]);
    }
    assert.equal(resolveBackends(vip('v'), ADDRESS, [pod('p', '198.18.40.1', { weight: '0' })], NOW, DRAIN).backends[0]!.weight, 0);
  });

  test('address family: IPv4 VIPs prefer IPv4 pod IPs and may use IPv6; IPv6 VIPs need IPv6', () => {
    const dual = pod('d', ['2001:db8:40::1', '198.18.40.1']);
    assert.equal(backendIp('198.19.0.10', dual), '198.18.40.1');
    assert.equal(backendIp('2001:db8:19::10', dual), '2001:db8:40::1');
    assert.equal(backendIp('198.19.0.10', pod('v6', '2001:db8:40:0::2')), '2001:db8:40::2');
    assert.equal(backendIp('2001:db8:19::10', pod('v4', '198.18.40.1')), undefined);
    const r = resolveBackends(vip('v', { address: '2001:db8:19::10' }), '2001:db8:19::10', [pod('v4', '198.18.40.1')], NOW, DRAIN);
    assert.deepEqual(r.backends, []);
  });

  test('a pod that stops being Ready or starts terminating drains, then leaves', () => {
    const v = vip('v');
    const first = resolveBackends(v, ADDRESS, [pod('a', '198.18.40.1'), pod('b', '198.18.40.2')], NOW, DRAIN);
    v.status = { backends: first.backends };
    const later = new Date(NOW.getTime() + 10_000);
    const r = resolveBackends(v, ADDRESS, [pod('a', '198.18.40.1', { ready: false }), pod('b', '198.18.40.2', { deleting: true })], later, DRAIN);
    assert.deepEqual(r.backends.map((b) => [b.pod, b.weight, b.draining, b.drainingSince]), [
      ['a', 0, true, later.toISOString()],
      ['b', 0, true, later.toISOString()],
    ]);
    assert.equal(r.requeueAfterSeconds, DRAIN);
    v.status = { backends: r.backends };
    // Half way: still draining, since unchanged; the requeue counts down.
    const mid = new Date(later.getTime() + 30_000);
    const r2 = resolveBackends(v, ADDRESS, [], mid, DRAIN);
    assert.equal(r2.backends.length, 2);
    assert.equal(r2.backends[0]!.drainingSince, later.toISOString());
    assert.equal(r2.requeueAfterSeconds, 30);
    // Ready again before the end: back in service.
    assert.deepEqual(resolveBackends(v, ADDRESS, [pod('a', '198.18.40.1')], mid, DRAIN).backends.map((b) => [b.pod, !!b.draining]), [['a', false], ['b', true]]);
    // After the drain period: gone.
    assert.deepEqual(resolveBackends(v, ADDRESS, [], new Date(later.getTime() + DRAIN * 1000), DRAIN).backends, []);
  });

  test('an empty selector selects nothing', () => {
    assert.deepEqual(resolveBackends(vip('v', { backendSelector: {} }), ADDRESS, [pod('a', '198.18.40.1')], NOW, DRAIN).backends, []);
  });
});

describe('VIP status and its requeue wish', () => {
  const agents = 2;
  const view: BalancerView = { exists: () => true, desiredAgents: () => agents, drainSeconds: () => DRAIN, mayShareNodes: () => false };

  test('a draining backend asks for another reconcile when its drain ends; nothing draining asks for none', () => {
    const v = vip('v');
    const serving = vipStatus({ address: ALLOWED, vip: v, pods: [pod('a', '198.18.40.1')], balancers: view, now: NOW });
    assert.equal(serving.requeue, undefined);
    assert.equal(serving.status.readyBackends, 1);
    assert.equal(serving.status.programmedNodes, `0/${agents}`);
    v.status = serving.status;
    const later = new Date(NOW.getTime() + 10_000);
    const draining = vipStatus({ address: ALLOWED, vip: v, pods: [pod('a', '198.18.40.1', { ready: false })], balancers: view, now: later });
    assert.deepEqual(draining.requeue, { requeueAfterMs: DRAIN * 1000 });
    assert.equal(draining.status.readyBackends, 0);
    v.status = draining.status;
    // Part way through: the wish counts down.
    const mid = new Date(later.getTime() + 45_000);
    assert.deepEqual(vipStatus({ address: ALLOWED, vip: v, pods: [], balancers: view, now: mid }).requeue, { requeueAfterMs: (DRAIN - 45) * 1000 });
    // Drained: gone, and nothing left to wait for.
    const done = vipStatus({ address: ALLOWED, vip: v, pods: [], balancers: view, now: new Date(later.getTime() + DRAIN * 1000) });
    assert.deepEqual(done.status.backends, []);
    assert.equal(done.requeue, undefined);
  });

  test('a backend change stamps a new revision, and nodes count as programmed only once they report it', () => {
    const v = vip('v');
    const one = vipStatus({ address: ALLOWED, vip: v, pods: [pod('a', '198.18.40.1')], balancers: view, now: NOW });
    const rev = one.status.backendsRevision!;
    assert.match(rev, /^[0-9a-f]{16}$/);
    const reported = (revision: string) => Array.from({ length: agents }, (_, i) => ({ node: `node-${i}`, programmedGeneration: 3, programmedBackendsRevision: revision }));
    v.status = one.status;
    let nodes = reported(rev);
    const same = vipStatus({ address: ALLOWED, vip: v, nodes, pods: [pod('a', '198.18.40.1')], balancers: view, now: NOW });
    assert.equal(same.status.backendsRevision, rev, 'nothing changed: the same revision');
    assert.equal(same.status.programmedNodes, `${agents}/${agents}`);
    // A new pod: the status that lists it carries a new revision, and no node confirmed it yet.
    const two = vipStatus({ address: ALLOWED, vip: v, nodes, pods: [pod('a', '198.18.40.1'), pod('b', '198.18.40.2')], balancers: view, now: NOW });
    assert.notEqual(two.status.backendsRevision, rev);
    assert.equal(two.programmedNodes, 0);
    assert.equal(two.status.programmedNodes, `0/${agents}`);
    const programmed = two.status.conditions!.find((c) => c.type === 'Programmed')!;
    assert.equal(programmed.status, 'False');
    assert.equal(programmed.message, `0 of ${agents} node(s) programmed generation 3, backends rev ${two.status.backendsRevision}`);
    v.status = two.status;
    nodes = reported(two.status.backendsRevision!);
    const confirmed = vipStatus({ address: ALLOWED, vip: v, nodes, pods: [pod('a', '198.18.40.1'), pod('b', '198.18.40.2')], balancers: view, now: NOW });
    assert.equal(confirmed.status.programmedNodes, `${agents}/${agents}`);
    assert.equal(confirmed.status.conditions!.find((c) => c.type === 'Programmed')!.status, 'True');
  });
});

describe('conflicts', () => {
  test('the older VIP keeps an address/port/protocol; the newer is in conflict', () => {
    const old = vip('old', {}, { creationTimestamp: new Date('2026-01-01T00:00:00Z') });
    const young = vip('young', { ports: [{ port: 80, protocol: 'TCP' }, { port: 443, protocol: 'TCP' }] }, { creationTimestamp: new Date('2026-02-01T00:00:00Z') });
    const udp = vip('udp', { ports: [{ port: 80, protocol: 'UDP' }] });
    const otherBalancer = vip('edge', { balancer: 'edge' });
    const c = findConflicts([young, udp, old, otherBalancer]);
    assert.deepEqual([...c.keys()], ['shop/young']);
    assert.deepEqual(c.get('shop/young'), { lost: [{ claim: '198.19.0.10:80/TCP', heldBy: 'shop/old' }] });
  });

  test('equal creation times: namespace/name decides; IPv6 spellings are one address', () => {
    const a = vip('a', { address: '2001:db8:19::10' });
    const b = vip('b', { address: '2001:0db8:0019:0000:0000:0000:0000:0010' });
    assert.deepEqual([...findConflicts([b, a]).keys()], ['shop/b']);
  });
});

describe('conditions', () => {
  const entries = (gen: number, n: number, error?: string) =>
    Array.from({ length: n }, (_, i) => ({ node: `node-${i}`, programmedGeneration: gen, lastError: error }));

  test('Ready when backends exist, every node programmed this generation, and no conflict', () => {
    const v = vip('v');
    v.status = {};
    let nodes: NodeStatus[] = entries(3, 2);
    const c = computeConditions({ address: ALLOWED, vip: v, nodes, activeBackends: 2, drainingBackends: 1, desiredNodes: 2, now: NOW });
    const by = Object.fromEntries(c.map((x) => [x.type, x]));
    assert.equal(by.Ready!.status, 'True');
    assert.equal(by.BackendsAvailable!.message, '2 ready backend(s), 1 draining');
    assert.equal(by.Programmed!.message, '2 of 2 node(s) programmed generation 3, backends rev none');
    assert.equal(by.Conflict!.status, 'False');
    assert.ok(c.every((x) => x.observedGeneration === 3));
  });

  test('not Ready, and why: a node behind, a node error, no backends, a conflict', () => {
    const v = vip('v');
    v.status = {};
    let nodes: NodeStatus[] = [...entries(3, 1), { node: 'node-9', programmedGeneration: 2 }];
    let by = Object.fromEntries(computeConditions({ address: ALLOWED, vip: v, nodes, activeBackends: 0, drainingBackends: 0, desiredNodes: 2, now: NOW }).map((x) => [x.type, x]));
    assert.equal(by.Ready!.status, 'False');
    assert.match(by.Ready!.message!, /0 ready backend\(s\).*1 of 2 node\(s\) programmed/);
    nodes = [...entries(3, 1), { node: 'node-9', programmedGeneration: 3, lastError: 'map full' }];
    by = Object.fromEntries(computeConditions({ address: ALLOWED, vip: v, nodes, activeBackends: 1, drainingBackends: 0, desiredNodes: 2, now: NOW }).map((x) => [x.type, x]));
    assert.equal(by.Programmed!.reason, 'NodeErrors');
    assert.equal(by.Programmed!.message, 'node-9: map full');
    by = Object.fromEntries(computeConditions({ address: ALLOWED, vip: v, nodes, activeBackends: 1, drainingBackends: 0, desiredNodes: 2, now: NOW,
      conflict: { lost: [{ claim: '198.19.0.10:80/TCP', heldBy: 'shop/old' }] } }).map((x) => [x.type, x]));
    assert.equal(by.Conflict!.status, 'True');
    assert.equal(by.Conflict!.message, '198.19.0.10:80/TCP is held by shop/old');
    assert.equal(by.Programmed!.reason, 'Conflict');
  });

  test('Programmed needs the backends revision too: a node at this generation but older backends is not programmed', () => {
    const v = vip('v');
    const at = (node: string, programmedBackendsRevision?: string) => ({ node, programmedGeneration: 3, programmedBackendsRevision });
    v.status = { backendsRevision: 'new' };
    let nodes: NodeStatus[] = [at('node-0', 'new'), at('node-1', 'old')];
    const of = () => Object.fromEntries(computeConditions({ address: ALLOWED, vip: v, nodes, activeBackends: 1, drainingBackends: 0, desiredNodes: 2, now: NOW }).map((x) => [x.type, x]));
    let by = of();
    assert.deepEqual([by.Programmed!.status, by.Programmed!.reason], ['False', 'Pending']);
    assert.equal(by.Programmed!.message, '1 of 2 node(s) programmed generation 3, backends rev new');
    assert.equal(by.Ready!.status, 'False');
    nodes = [at('node-0', 'new'), at('node-1')];
    assert.equal(of().Programmed!.status, 'False', 'an agent that reports no revision has not confirmed this one');
    nodes = [at('node-0', 'new'), at('node-1', 'new')];
    by = of();
    assert.deepEqual([by.Programmed!.status, by.Programmed!.reason, by.Ready!.status], ['True', 'AllNodes', 'True']);
  });

  test('backends that all weigh 0 take no new connection: not available, not Ready', () => {
    const v = vip('v');
    v.status = {};
    let nodes: NodeStatus[] = entries(3, 1);
    const of = (zeroWeightBackends: number) =>
      Object.fromEntries(computeConditions({ address: ALLOWED, vip: v, nodes, activeBackends: 2, drainingBackends: 0, zeroWeightBackends, desiredNodes: 1, now: NOW }).map((x) => [x.type, x]));
    let by = of(2);
    assert.equal(by.BackendsAvailable!.status, 'False');
    assert.equal(by.BackendsAvailable!.reason, 'AllWeightsZero');
    assert.match(by.BackendsAvailable!.message!, /^2 ready backend\(s\), 0 draining, 2 with weight 0: no new connection can be served/);
    assert.equal(by.Ready!.status, 'False');
    assert.match(by.Ready!.message!, /no new connection can be served/);
    by = of(1);
    assert.equal(by.BackendsAvailable!.status, 'True');
    assert.equal(by.BackendsAvailable!.message, '2 ready backend(s), 0 draining, 1 with weight 0');
    assert.equal(by.Ready!.status, 'True');
    // From pods: annotations of 0 on every Ready pod.
    const view: BalancerView = { exists: () => true, desiredAgents: () => 1, drainSeconds: () => DRAIN, mayShareNodes: () => false };
    const s = vipStatus({ address: ALLOWED, vip: v, pods: [pod('a', '198.18.40.1', { weight: '0' }), pod('b', '198.18.40.2', { weight: '0' })], balancers: view, now: NOW });
    assert.equal(s.status.readyBackends, 2);
    assert.equal(s.status.conditions!.find((c) => c.type === 'BackendsAvailable')!.reason, 'AllWeightsZero');
  });

  test('lastTransitionTime moves only when the status does; equality ignores order', () => {
    const v = vip('v');
    v.status = {};
    let nodes: NodeStatus[] = entries(3, 1);
    const first = computeConditions({ address: ALLOWED, vip: v, nodes, activeBackends: 1, drainingBackends: 0, desiredNodes: 1, now: NOW });
    v.status.conditions = first;
    const later = new Date(NOW.getTime() + 60_000);
    const same = computeConditions({ address: ALLOWED, vip: v, nodes, activeBackends: 1, drainingBackends: 0, desiredNodes: 1, now: later });
    assert.ok(conditionsEqual(first, [...same].reverse()), 'nothing changed, no status write');
    const changed = computeConditions({ address: ALLOWED, vip: v, nodes, activeBackends: 0, drainingBackends: 0, desiredNodes: 1, now: later });
    assert.ok(!conditionsEqual(first, changed));
    const by = Object.fromEntries(changed.map((x) => [x.type, x]));
    assert.deepEqual(by.BackendsAvailable!.lastTransitionTime, later);
    assert.deepEqual(by.Conflict!.lastTransitionTime, NOW);
  });
});

describe('balancer problems and events', () => {
  test('an address not allowed: AddressAllowed False with its reason, Programmed False, not Ready, and why', () => {
    const v = vip('v');
    v.status = {};
    let nodes: NodeStatus[] = [{ node: 'node-0', programmedGeneration: 3 }];
    const refused: AddressDecision = { allowed: false, address: ADDRESS, code: 'NotInPool', message: `${ADDRESS} is in no pool; no pool allows namespace shop for balancer default` };
    const by = Object.fromEntries(computeConditions({ address: refused, vip: v, nodes, activeBackends: 2, drainingBackends: 0, desiredNodes: 1, now: NOW }).map((x) => [x.type, x]));
    assert.deepEqual([by.AddressAllowed!.status, by.AddressAllowed!.reason, by.AddressAllowed!.message], ['False', 'NotInPool', refused.message]);
    assert.deepEqual([by.Programmed!.status, by.Programmed!.reason], ['False', 'AddressNotAllowed']);
    assert.equal(by.Ready!.status, 'False');
    assert.ok(by.Ready!.message.startsWith(refused.message), by.Ready!.message);
  });

  test('no XdpBalancer, or agents not scheduled: Programmed False with the reason, not Ready', () => {
    const v = vip('v');
    v.status = {};
    let nodes: NodeStatus[] = [];
    const by = Object.fromEntries(computeConditions({
      address: ALLOWED, vip: v, nodes, activeBackends: 2, drainingBackends: 0, desiredNodes: 0, now: NOW, balancerProblem: 'XdpBalancer "edge" does not exist',
    }).map((x) => [x.type, x]));
    assert.equal(by.AddressAllowed!.status, 'True');
    assert.equal(by.Programmed!.status, 'False');
    assert.equal(by.Programmed!.reason, 'NoBalancer');
    assert.equal(by.Programmed!.message, 'XdpBalancer "edge" does not exist');
    assert.equal(by.Ready!.status, 'False');
    assert.match(by.Ready!.message!, /XdpBalancer "edge" does not exist/);
  });

  test('a targetPort with delivery InPod: Programmed False, TargetPortNeedsNodeDelivery, not Ready; delivery Node is fine', () => {
    const v = vip('v', { ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }], delivery: 'InPod' });
    v.status = {};
    let nodes: NodeStatus[] = [{ node: 'node-0', programmedGeneration: v.metadata.generation }];
    const conditions = (spec: LoadBalancerVip['spec']) => Object.fromEntries(computeConditions({
      address: ALLOWED, vip: { ...v, spec }, nodes, activeBackends: 1, drainingBackends: 0, desiredNodes: 1, now: NOW, specProblem: specProblem(spec),
    }).map((x) => [x.type, x]));
    const by = conditions(v.spec);
    assert.deepEqual([by.Programmed!.status, by.Programmed!.reason], ['False', 'TargetPortNeedsNodeDelivery']);
    assert.match(by.Programmed!.message, /^port 80\/TCP has targetPort 8080: with delivery InPod .*set spec\.delivery: Node.*: programmed on no node$/);
    assert.equal(by.Ready!.status, 'False');
    assert.match(by.Ready!.message, /TargetPortNeedsNodeDelivery|targetPort 8080/);
    assert.equal(conditions({ ...v.spec, delivery: 'Node' }).Programmed!.status, 'True');
    assert.equal(specProblem({ ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }], delivery: 'InPod' }), undefined, 'a targetPort equal to the port needs nothing');
    assert.equal(specProblem({ ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }] }), undefined, 'delivery left out is Node: it translates');
  });

  test('backend changes read as what happened to which pod', () => {
    const b = (pod: string, ip: string, weight = 1, draining = false) => ({ pod, ip, weight, ...(draining ? { draining, drainingSince: NOW.toISOString() } : {}) });
    assert.equal(backendChanges([], [b('web-1', '198.18.40.1')]), 'added web-1 (198.18.40.1)');
    assert.equal(backendChanges([b('web-1', '198.18.40.1')], [b('web-1', '198.18.40.1')]), '');
    assert.equal(
      backendChanges(
        [b('a', '198.18.40.1'), b('b', '198.18.40.2'), b('c', '198.18.40.3', 1, true), b('d', '198.18.40.4')],
        [b('a', '198.18.40.1', 5), b('b', '198.18.40.2', 0, true), b('c', '198.18.40.3'), b('e', '198.18.40.5')],
      ),
      'added e (198.18.40.5); ready again c; weight a 1->5; draining b; removed d',
    );
  });
});

test('a pod\'s QUIC server id annotation: in its backend, kept while it drains, ignored when out of range, kept by trimming', () => {
  const annotated = (name: string, ip: string, id: string) => {
    const p = pod(name, ip);
    p.metadata!.annotations = { ...p.metadata!.annotations, [QUIC_SERVER_ID_ANNOTATION]: id };
    return p;
  };
  const pods = [annotated('web-1', '198.18.40.1', '7'), annotated('web-2', '198.18.40.2', '16384'), annotated('web-3', '198.18.40.3', 'x')];
  const trimmed = pods.map((p) => structuredClone(p));
  trimmed.forEach(trimPod);
  const r = resolveBackends(vip('v'), ADDRESS, trimmed, NOW, DRAIN);
  assert.deepEqual(r.backends.map((b) => [b.pod, b.quicServerId]), [['web-1', 7], ['web-2', undefined], ['web-3', undefined]]);
  assert.deepEqual(r.badQuicServerIds, [{ pod: 'web-2', value: '16384' }, { pod: 'web-3', value: 'x' }]);
  const shared = resolveBackends(vip('v'), ADDRESS, [annotated('a', '198.18.40.4', '9'), annotated('b', '198.18.40.5', '9')], NOW, DRAIN);
  assert.deepEqual(shared.badQuicServerIds, [{ pod: 'a', value: '9 (shared with b)' }, { pod: 'b', value: '9 (shared with a)' }]);
  const v = vip('v');
  v.status = { backends: r.backends };
  const drained = resolveBackends(v, ADDRESS, [], NOW, DRAIN);
  assert.deepEqual(drained.backends.map((b) => [b.pod, b.draining, b.quicServerId]), [['web-1', true, 7], ['web-2', true, undefined], ['web-3', true, undefined]]);
});

test('a trimmed pod resolves to the same backend, and keeps none of what resolution does not read', () => {
  const full = pod('web-1', ['198.18.40.1', '2001:db8:40::1'], { weight: '3', node: 'node-b' });
  full.metadata!.managedFields = [{ manager: 'kubelet', operation: 'Update' }];
  full.metadata!.annotations!['other'] = 'x'.repeat(1000);
  full.spec!.containers = [{ name: 'c', image: 'big', env: [{ name: 'A', value: 'b' }] }];
  full.status!.conditions!.push({ type: 'PodScheduled', status: 'True' });
  const before = resolveBackends(vip('v'), ADDRESS, [full], NOW, DRAIN);
  const trimmed = structuredClone(full);
  trimPod(trimmed);
  assert.deepEqual(resolveBackends(vip('v'), ADDRESS, [trimmed], NOW, DRAIN), before);
  assert.equal(trimmed.metadata!.managedFields, undefined);
  assert.deepEqual(trimmed.metadata!.annotations, { [WEIGHT_ANNOTATION]: '3' });
  assert.deepEqual(Object.keys(trimmed.metadata!).sort(), ['annotations', 'labels', 'name', 'namespace', 'resourceVersion']);
  assert.deepEqual(trimmed.spec, { nodeName: 'node-b', containers: [] });
  assert.deepEqual(trimmed.status!.conditions, [{ type: 'Ready', status: 'True' }]);
  const terminating = structuredClone(full);
  terminating.metadata!.deletionTimestamp = new Date(NOW);
  const trimmedTerminating = structuredClone(terminating);
  trimPod(trimmedTerminating);
  assert.ok(trimmedTerminating.metadata!.deletionTimestamp, 'deletion is kept: a terminating pod drains');
  assert.deepEqual(resolveBackends(vip('v'), ADDRESS, [trimmedTerminating], NOW, DRAIN), resolveBackends(vip('v'), ADDRESS, [terminating], NOW, DRAIN));
});

describe('status writes while nodes report one by one', () => {
  const view: BalancerView = { exists: () => true, desiredAgents: () => 3, drainSeconds: () => DRAIN, mayShareNodes: () => false };
  const at = (revision: string, n: number): NodeStatus[] =>
    Array.from({ length: n }, (_, i) => ({ node: `node-${i}`, programmedGeneration: 3, programmedBackendsRevision: revision }));

  test('one more node programmed is only progress; the last one, an error or a backend change is not', () => {
    const v = vip('v');
    const pods = [pod('a', '198.18.40.1')];
    const first = vipStatus({ address: ALLOWED, vip: v, pods, balancers: view, now: NOW }).status;
    const rev = first.backendsRevision!;
    v.status = vipStatus({ address: ALLOWED, vip: v, nodes: at(rev, 1), pods, balancers: view, now: NOW }).status;
    const two = vipStatus({ address: ALLOWED, vip: v, nodes: at(rev, 2), pods, balancers: view, now: NOW }).status;
    assert.equal(two.programmedNodes, '2/3');
    assert.equal(onlyProgress(v.status, two), true, '1/3 -> 2/3');
    const all = vipStatus({ address: ALLOWED, vip: v, nodes: at(rev, 3), pods, balancers: view, now: NOW }).status;
    assert.equal(onlyProgress(v.status, all), false, 'the step that completes it is written at once');
    const failing = vipStatus({ address: ALLOWED, vip: v, nodes: [...at(rev, 1), { node: 'node-2', lastError: 'map full' }], pods, balancers: view, now: NOW }).status;
    assert.equal(onlyProgress(v.status, failing), false, 'an error is written at once');
    const moved = vipStatus({ address: ALLOWED, vip: v, nodes: at(rev, 2), pods: [...pods, pod('b', '198.18.40.2')], balancers: view, now: NOW }).status;
    assert.equal(onlyProgress(v.status, moved), false, 'new backends are written at once');
  });
});
