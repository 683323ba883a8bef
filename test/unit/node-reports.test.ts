/** The controller's index of XdpNodeReports (src/controller/node-reports.ts) and what an agent reports (reportedVips). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import type { ReportedVip, XdpNodeReport } from '../../src/api/xdpnodereport.js';
import { reportedVips, sameReport } from '../../src/agent/sources/cluster-source.js';
import { NodeReports } from '../../src/controller/node-reports.js';

const report = (node: string, vips: ReportedVip[], balancer = 'default'): XdpNodeReport =>
  ({ metadata: { name: `${balancer}.${node}` }, balancer, node, vips });
const at = (name: string, generation: number, uid = `uid-${name}`): ReportedVip => ({ namespace: 'shop', name, uid, generation, backendsRevision: 'r1', reals: 2 });

test('a report event reconciles only the VIPs whose entries changed', () => {
  const index = new NodeReports();
  assert.deepEqual([...index.update(report('n1', [at('a', 1), at('b', 1)]), false)].sort(), ['shop/a', 'shop/b']);
  assert.deepEqual([...index.update(report('n1', [at('a', 1), at('b', 2)]), false)], ['shop/b'], 'a changed, b not');
  assert.deepEqual([...index.update(report('n1', [at('a', 1), at('b', 2)]), false)], [], 'the same report again');
  assert.deepEqual([...index.update(report('n1', [at('b', 2)]), false)], ['shop/a'], 'a left the report');
  assert.deepEqual(index.nodesOf('shop/a', 'uid-a', 'default'), []);
  assert.deepEqual([...index.update(report('n1', []), true)], ['shop/b'], 'the report deleted');
  assert.deepEqual(index.nodesOf('shop/b', 'uid-b', 'default'), []);
});

test('a VIP\'s nodes: each node\'s entry, of the VIP\'s balancer and its uid only, sorted by node', () => {
  const index = new NodeReports();
  index.update(report('n2', [at('a', 3)]), false);
  index.update(report('n1', [{ namespace: 'shop', name: 'a', uid: 'uid-a', error: 'map full' }]), false);
  index.update(report('n3', [at('a', 3, 'uid-of-a-deleted-vip')]), false);
  index.update(report('n4', [at('a', 3)], 'edge'), false);
  assert.deepEqual(index.nodesOf('shop/a', 'uid-a', 'default'), [
    { node: 'n1', lastError: 'map full' },
    { node: 'n2', programmedGeneration: 3, programmedBackendsRevision: 'r1', reals: 2 },
  ]);
  assert.deepEqual(index.nodesOf('shop/a', 'uid-a', 'edge').map((n) => n.node), ['n4']);
});

test('an agent reports what it programmed (generation, revision, reals) and what it refused, sorted', () => {
  const vip = (name: string, ns = 'shop'): LoadBalancerVip => ({
    metadata: { name, namespace: ns, uid: `uid-${name}`, generation: 4 },
    spec: { address: '198.19.0.10', ports: [{ port: 80, protocol: 'TCP' }], delivery: 'InPod' },
    status: { address: '198.19.0.10', backendsRevision: 'rev', backends: [{ ip: '198.18.40.1', weight: 1, pod: 'p1' }, { ip: '198.18.40.2', weight: 1, pod: 'p2' }] },
  });
  assert.deepEqual(reportedVips({ programmed: [vip('b'), vip('a', 'zoo')], refused: new Map([[vip('c'), 'port 80/TCP: refused']]) }), [
    { namespace: 'shop', name: 'b', uid: 'uid-b', generation: 4, backendsRevision: 'rev', reals: 2 },
    { namespace: 'shop', name: 'c', uid: 'uid-c', error: 'port 80/TCP: refused' },
    { namespace: 'zoo', name: 'a', uid: 'uid-a', generation: 4, backendsRevision: 'rev', reals: 2 },
  ]);
});

test('an unchanged VIP object keeps its report entry; a replaced one gets a new entry; equal reports compare equal', () => {
  const vip = (revision: string): LoadBalancerVip => ({
    metadata: { name: 'a', namespace: 'shop', uid: 'uid-a', generation: 1 },
    spec: { address: '198.19.0.10', ports: [{ port: 80, protocol: 'TCP' }], delivery: 'InPod' },
    status: { address: '198.19.0.10', backendsRevision: revision, backends: [{ ip: '198.18.40.1', weight: 1, pod: 'p1' }] },
  });
  const a = vip('r1');
  const first = reportedVips({ programmed: [a], refused: new Map() });
  const again = reportedVips({ programmed: [a], refused: new Map() });
  assert.equal(again[0], first[0], 'the same object: its reals are not counted again');
  assert.ok(sameReport(first, again));
  const equalCopy = reportedVips({ programmed: [vip('r1')], refused: new Map() });
  assert.notEqual(equalCopy[0], first[0]);
  assert.ok(sameReport(first, equalCopy), 'a new object with the same fields: the same report');
  assert.ok(!sameReport(first, reportedVips({ programmed: [vip('r2')], refused: new Map() })), 'a new backends revision');
  assert.ok(!sameReport(first, reportedVips({ programmed: [], refused: new Map([[a, 'refused']]) })), 'now refused');
  assert.ok(!sameReport(first, []), 'gone');
});

test('an upgrade: a node without a report counts by its old status.nodes entry; once it reports, the entry is ignored', () => {
  const index = new NodeReports();
  const legacy = [{ node: 'n1', programmedGeneration: 3 }, { node: 'n2', programmedGeneration: 2 }];
  index.update(report('n2', [at('a', 3)]), false);
  assert.deepEqual(index.nodesOf('shop/a', 'uid-a', 'default', legacy).map((n) => [n.node, n.programmedGeneration]), [['n1', 3], ['n2', 3]]);
  index.update(report('n1', []), false);
  assert.deepEqual(index.nodesOf('shop/a', 'uid-a', 'default', legacy).map((n) => n.node), ['n2'], 'n1 reports now, without the VIP');
});

