import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LoadBalancerVip } from '../../../src/api/loadbalancervip.js';
import type { NodeStatus } from '../../../src/api/xdpnodereport.js';
import { l2LeaseName } from '../../../src/api/xdpbalancer.js';
import { stableHash } from '../../../src/lib/stable-hash.js';
import { electL2Node, l2Candidates } from '../../../src/controller/l2/l2-election.js';

const NOW = new Date('2026-11-30T12:00:00Z');
const ADDRESS = '198.19.0.10';
/** The VIP and what its nodes report of it, as the election takes them. */
const vip = (nodes: NodeStatus[], l2?: { node: string; since: string }): { vip: LoadBalancerVip; nodes: NodeStatus[] } => ({
  vip: {
    metadata: { name: 'web', namespace: 'shop', generation: 2 },
    spec: { address: ADDRESS, ports: [{ port: 80, protocol: 'TCP' }] },
    status: l2 ? { l2 } : {},
  },
  nodes,
});
const programmed = (node: string, gen = 2): NodeStatus => ({ node, programmedGeneration: gen, reals: 1 });
const alive = (...nodes: string[]) => new Set(nodes);

test('candidates: alive, programmed (any generation), no error', () => {
  const v = vip([programmed('a'), programmed('b', 1), { node: 'c', lastError: 'refused' }, { node: 'd' }, programmed('e')]);
  assert.deepEqual(l2Candidates(v.nodes, alive('a', 'b', 'c', 'd')), ['a', 'b']);
});

test('the lowest hash of (address, node) wins when nobody holds it; the same whatever the order', () => {
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  const expected = [...nodes].sort((x, y) => stableHash(`${ADDRESS}/${x}`) - stableHash(`${ADDRESS}/${y}`))[0];
  const got = electL2Node({ ...vip(nodes.map((n) => programmed(n))), address: ADDRESS, alive: alive(...nodes), now: NOW });
  assert.deepEqual(got, { node: expected, since: NOW.toISOString() });
  const reversed = electL2Node({ ...vip([...nodes].reverse().map((n) => programmed(n))), address: ADDRESS, alive: alive(...nodes), now: NOW });
  assert.equal(reversed?.node, expected);
});

test('VIPs spread over the nodes instead of piling onto one', () => {
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  const count = new Map<string, number>();
  for (let i = 0; i < 400; i++) {
    const address = `198.19.${Math.floor(i / 256)}.${i % 256}`;
    const of = vip(nodes.map((n) => programmed(n)));
    const v = { ...of, vip: { ...of.vip, spec: { address, ports: [{ port: 80, protocol: 'TCP' as const }] } } };
    const node = electL2Node({ ...v, address, alive: alive(...nodes), now: NOW })!.node;
    count.set(node, (count.get(node) ?? 0) + 1);
  }
  for (const n of nodes) assert.ok((count.get(n) ?? 0) > 50, `${n}: ${count.get(n)} of 400 (${JSON.stringify([...count])})`);
});

test('sticky: the holder keeps it while a candidate, whatever the hash says; loses it when it is not', () => {
  const held = { node: 'zz', since: '2026-11-30T11:00:00.000Z' };
  const v = vip([programmed('a'), programmed('zz')], held);
  assert.equal(electL2Node({ ...v, address: ADDRESS, alive: alive('a', 'zz'), now: NOW }), held);
  assert.deepEqual(electL2Node({ ...v, address: ADDRESS, alive: alive('a'), now: NOW }), { node: 'a', since: NOW.toISOString() });
});

test('nothing to announce: no address allowed, or no candidate', () => {
  assert.equal(electL2Node({ ...vip([programmed('a')]), address: undefined, alive: alive('a'), now: NOW }), undefined);
  assert.equal(electL2Node({ ...vip([programmed('a')], { node: 'a', since: 'x' }), address: ADDRESS, alive: alive(), now: NOW }), undefined);
});

test('Lease names: readable when they fit, a valid distinct name when a node name is long', () => {
  assert.equal(l2LeaseName('default', 'worker-1'), 'xdplb-l2-default.worker-1');
  const long1 = l2LeaseName('default', `${'n'.repeat(250)}1`);
  const long2 = l2LeaseName('default', `${'n'.repeat(250)}2`);
  assert.ok(long1.length <= 253 && long2.length <= 253);
  assert.notEqual(long1, long2);
  assert.match(long1, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
});

test('what this controller last named wins over a VIP read before its write landed: no flip to the hash\'s choice', () => {
  const named = { node: 'zz', since: '2026-11-30T11:00:00.000Z' };
  // The cache shows no status.l2 yet, and now a second candidate.
  const stale = vip([programmed('a'), programmed('zz')]);
  assert.equal(electL2Node({ ...stale, address: ADDRESS, alive: alive('a', 'zz'), now: NOW, current: named }), named);
});
