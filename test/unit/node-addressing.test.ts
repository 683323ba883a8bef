/**
 * Node addressing, the pure parts: the controller writes each backend's node
 * address (status.backends[].nodeIP) and the VIP's addressing; a balancer
 * agent turns them into one real per node weighted by its pods; a backend
 * node plans its backend_node_svcs entries (pods as weighted slots) and
 * refuses what it cannot serve, with why; the node entries drain like the pod
 * entries.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Node } from '@kubernetes/client-node';
import { parseBackendFile } from '../../src/agent/backend/backend-sources.js';
import { backendsOfNode } from '../../src/agent/backend/cluster-backends.js';
import { apportionSlots, LocalAddresses, planNodeServices } from '../../src/agent/backend/node-plan.js';
import { podInterfacesFrom } from '../../src/agent/backend/pod-interfaces.js';
import { planServices, type PodBackend } from '../../src/agent/backend/service-plan.js';
import { NodeServiceTable } from '../../src/agent/backend/service-table.js';
import { realsOf } from '../../src/api/programmed-reals.js';
import type { BackendStatus, LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { NODE_SVC_SLOTS } from '../../src/bpf/consts.js';
import { BACKEND_MAPS, memoryMaps, typedMap } from '../../src/bpf/maps.js';
import { internalIps, trimNodeForPlacement } from '../../src/controller/balancer-placement.js';
import type { BalancerView } from '../../src/controller/balancer-controller.js';
import { vipStatus } from '../../src/controller/vip-status.js';
import { type IpAddress, parseIp } from '../../src/lib/ip.js';

const VETHS = [
  { ifindex: 7, ifname: 'veth1a', address: '02:00:00:00:00:07', mtu: 1500 },
  { ifindex: 8, ifname: 'veth2b', address: '02:00:00:00:00:08', mtu: 1500 },
  { ifindex: 9, ifname: 'veth3c', address: '02:00:00:00:00:09', mtu: 1500 },
];
const pods = podInterfacesFrom(
  [{ dst: '198.18.71.11', dev: 'veth1a' }, { dst: '198.18.71.12', dev: 'veth2b' }],
  [{ dst: '2001:db8:71::11', dev: 'veth1a' }, { dst: '2001:db8:71::12', dev: 'veth2b' }, { dst: '2001:db8:71::13', dev: 'veth3c' }],
  VETHS,
);
/** The node: its addresses on eth0 (what `ip -j addr` prints), a pod gateway address on a veth. */
const NODE = { v4: '198.18.0.5', v6: '2001:db8::5' };
const local = new LocalAddresses([
  { ifindex: 1, ifname: 'lo', addr_info: [{ local: '127.0.0.1' }] },
  { ifindex: 2, ifname: 'eth0', addr_info: [{ local: NODE.v4 }, { local: NODE.v6 }] },
]);
const VIP4 = '198.19.70.10';
const VIP6 = '2001:db8:79::10';
const backend = (vip: string, podAddress: string, over: Partial<PodBackend> = {}): PodBackend =>
  ({ vip, vipPort: 80, protocol: 'TCP', podAddress, targetPort: 8080, nodeAddress: NODE.v4, ...over });

function plan(backends: PodBackend[]) {
  const pod = planServices(backends, pods);
  return { pod, node: planNodeServices(backends, pods, local, new Set(pod.refused.map((r) => r.backend))) };
}
const texts = (a: readonly IpAddress[]) => a.map((x) => x.text);

describe('a node\'s entries: pods as weighted slots', () => {
  const a = parseIp('198.18.71.11');
  const b = parseIp('198.18.71.12');
  test('equal weights give one slot a pod, whatever the weight; others in proportion, divided by their common divisor', () => {
    assert.deepEqual(texts(apportionSlots([{ pod: a, weight: 100 }, { pod: b, weight: 100 }]).slots), [a.text, b.text]);
    assert.deepEqual(texts(apportionSlots([{ pod: a, weight: 200 }, { pod: b, weight: 100 }]).slots), [a.text, a.text, b.text]);
    assert.deepEqual(texts(apportionSlots([{ pod: a, weight: 0 }, { pod: b, weight: 5 }]).slots), [b.text], 'a draining pod has none');
    assert.deepEqual(apportionSlots([{ pod: a, weight: 0 }]).slots, [], 'all draining: no slot, no new flow');
  });

  test('weights that do not fit share NODE_SVC_SLOTS by weight, one slot at least; pods past it get none', () => {
    const { slots } = apportionSlots([{ pod: a, weight: 1000 }, { pod: b, weight: 1 }]);
    assert.equal(slots.length, NODE_SVC_SLOTS);
    assert.equal(slots.filter((s) => s.text === b.text).length, 1);
    const many = Array.from({ length: NODE_SVC_SLOTS + 2 }, (_, i) => ({ pod: parseIp(`198.18.72.${i + 1}`), weight: 1 }));
    const r = apportionSlots(many);
    assert.equal(r.slots.length, NODE_SVC_SLOTS);
    assert.deepEqual(texts(r.left), ['198.18.72.65', '198.18.72.66']);
  });

  test('one entry per (node address, VIP, port): the pods of the VIP\'s family, on the device of the node address', () => {
    const { node } = plan([
      backend(VIP4, '198.18.71.12', { weight: 2 }),
      backend(VIP4, '2001:db8:71::11'), // named by its IPv6 address: its IPv4 one is the slot
      backend(VIP6, '2001:db8:71::13', { nodeAddress: NODE.v6, ignoreSourcePort: true }),
      backend(VIP4, '198.18.71.11', { nodeAddress: NODE.v6 }), // IPv4 in IPv6 to the node
      backend(VIP4, '198.18.71.11', { nodeAddress: undefined }), // Pod addressing: no node entry
    ]);
    assert.deepEqual(node.refused, []);
    assert.deepEqual([...node.entries.values()].map((e) => ({ node: e.key.tunnelDst.text, vip: e.key.vip.text, nic: e.nic.ifname,
      slots: texts(e.value.slots), hashNoSrcPort: e.value.hashNoSrcPort })), [
      { node: NODE.v4, vip: VIP4, nic: 'eth0', slots: ['198.18.71.11', '198.18.71.12', '198.18.71.12'], hashNoSrcPort: false },
      { node: NODE.v6, vip: VIP6, nic: 'eth0', slots: ['2001:db8:71::13'], hashNoSrcPort: true },
      { node: NODE.v6, vip: VIP4, nic: 'eth0', slots: ['198.18.71.11'], hashNoSrcPort: false },
    ]);
  });

  test('refused with why: a node address not this node\'s or malformed, IPv6 through IPv4, a bad weight; a pod refused once', () => {
    const cases: [PodBackend, RegExp][] = [
      [backend(VIP4, '198.18.71.11', { nodeAddress: '198.18.0.99' }), /not this node's/],
      [backend(VIP4, '198.18.71.11', { nodeAddress: 'node-a' }), /not an IP address/],
      [backend(VIP6, '2001:db8:71::11'), /no IPv6 in IPv4/],
      [backend(VIP4, '198.18.71.11', { weight: -1 }), /weight -1/],
      [backend(VIP4, '198.18.71.99'), /not local/],
    ];
    for (const [b, why] of cases) {
      const { pod, node } = plan([b]);
      const reasons = [...pod.refused, ...node.refused].map((r) => r.reason);
      assert.equal(reasons.length, 1, `one refusal for ${b.nodeAddress} ${b.podAddress}: ${reasons.join('; ')}`);
      assert.match(reasons[0]!, why);
      assert.equal(node.entries.size, 0);
    }
  });

  test('the table: slots change in place; an entry whose pods left drains, then goes', () => {
    let now = 0;
    const maps = memoryMaps(BACKEND_MAPS);
    const table = new NodeServiceTable(maps.nodeServices, 1000, () => now);
    const one = plan([backend(VIP4, '198.18.71.11')]).node.entries;
    const two = plan([backend(VIP4, '198.18.71.11'), backend(VIP4, '198.18.71.12')]).node.entries;
    assert.equal(table.apply(one).added, 1);
    assert.equal(table.apply(two).changed, 1);
    assert.deepEqual(texts(table.entries()[0]!.value.slots), ['198.18.71.11', '198.18.71.12']);
    assert.equal(table.apply(new Map()).drainStarted, 1);
    now = 999;
    assert.equal(table.apply(new Map()).removed, 0, 'still draining: its flows reach the node');
    now = 1000;
    assert.equal(table.apply(new Map()).removed, 1);
    assert.equal(typedMap(BACKEND_MAPS.nodeServices, maps.nodeServices).keys().length, 0);
  });
});

describe('the node addresses in status, and what the agents make of them', () => {
  const NOW = new Date('2026-11-24T12:00:00Z');
  const NODES: Record<string, string[]> = { 'node-a': ['198.18.0.5', '2001:db8::5'], 'node-b': ['198.18.0.6'], 'node-v6': ['2001:db8::7'] };
  const view = (addressing: 'Pod' | 'Node'): BalancerView => ({
    exists: () => true, desiredAgents: () => 1, drainSeconds: () => 60, mayShareNodes: () => false,
    backendAddressing: () => addressing, nodeAddresses: (n) => NODES[n] ?? [],
  });
  const pod = (n: number, node: string, weight?: number) => ({
    metadata: { name: `web-${n}`, namespace: 'shop', labels: { app: 'web' }, ...(weight === undefined ? {} : { annotations: { 'xdplb.dev/weight': String(weight) } }) },
    spec: { containers: [], nodeName: node },
    status: { phase: 'Running', podIP: `198.18.40.${n}`, podIPs: [{ ip: `198.18.40.${n}` }, { ip: `2001:db8:40::${n}` }],
      conditions: [{ type: 'Ready', status: 'True' }] },
  });
  const vipOf = (address: string, delivery: 'Node' | 'InPod' = 'Node', status?: LoadBalancerVip['status']): LoadBalancerVip => ({
    metadata: { name: 'web', namespace: 'shop', generation: 1 },
    spec: { address, ports: [{ port: 80, protocol: 'TCP' }], backendSelector: { matchLabels: { app: 'web' } }, delivery },
    ...(status ? { status } : {}),
  });
  const allowed = (address: string) => ({ address, allowed: true, assigned: false }) as never;
  const statusOf = (vip: LoadBalancerVip, pods: ReturnType<typeof pod>[], addressing: 'Pod' | 'Node' = 'Node') =>
    vipStatus({ address: allowed(vip.spec.address!), vip, pods, balancers: view(addressing), now: NOW }).status;

  test('Node addressing: each backend gets its node\'s InternalIP of the VIP\'s family (IPv6 for IPv4 on an IPv6-only node)', () => {
    const s = statusOf(vipOf('198.19.0.10'), [pod(1, 'node-a'), pod(2, 'node-b'), pod(3, 'node-v6'), pod(4, 'node-gone')]);
    assert.equal(s.addressing, 'Node');
    assert.deepEqual(s.backends!.map((b) => [b.pod, b.nodeIP]), [['web-1', '198.18.0.5'], ['web-2', '198.18.0.6'], ['web-3', '2001:db8::7'],
      ['web-4', undefined]]);
    const v6 = statusOf(vipOf('2001:db8:19::10'), [pod(1, 'node-a'), pod(2, 'node-b')]);
    assert.deepEqual(v6.backends!.map((b) => [b.pod, b.nodeIP]), [['web-1', '2001:db8::5'], ['web-2', undefined]], 'no IPv6 in IPv4');
  });

  test('Pod addressing and delivery InPod: no node address, addressing Pod or absent', () => {
    const pods = [pod(1, 'node-a')];
    const p = statusOf(vipOf('198.19.0.10'), pods, 'Pod');
    assert.equal(p.addressing, 'Pod');
    assert.equal(p.backends![0]!.nodeIP, undefined);
    const inPod = statusOf(vipOf('198.19.0.10', 'InPod'), pods, 'Node');
    assert.equal(inPod.addressing, undefined, 'a pod that decapsulates itself is reached at its own address');
    assert.equal(inPod.backends![0]!.nodeIP, undefined);
  });

  test('a draining backend whose node is gone keeps the node address it had, so its flows finish', () => {
    const before = statusOf(vipOf('198.19.0.10'), [pod(1, 'node-gone-later')]);
    assert.equal(before.backends![0]!.nodeIP, undefined, 'unknown node');
    const had: BackendStatus = { ip: '198.18.40.1', weight: 1, pod: 'web-1', node: 'node-gone-later', nodeIP: '198.18.0.9' };
    const s = statusOf(vipOf('198.19.0.10', 'Node', { backends: [had] }), []);
    assert.deepEqual(s.backends!.map((b) => [b.draining, b.nodeIP]), [[true, '198.18.0.9']]);
  });

  test('the balancer: one real per node, weighted by the sum of its pods\' weights; draining pods count 0', () => {
    const s = statusOf(vipOf('198.19.0.10'), [pod(1, 'node-a', 3), pod(2, 'node-a'), pod(3, 'node-b'), pod(4, 'node-gone')]);
    const draining: BackendStatus = { ip: '198.18.40.9', weight: 0, pod: 'web-9', node: 'node-c', nodeIP: '198.18.0.8', draining: true };
    const vip = vipOf('198.19.0.10', 'Node', { ...s, backends: [...s.backends!, draining] });
    assert.deepEqual(realsOf(vip), [{ address: '198.18.0.5', weight: 4 }, { address: '198.18.0.6', weight: 1 }, { address: '198.18.0.8', weight: 0 }]);
    assert.deepEqual(realsOf({ ...vip, status: { ...vip.status, addressing: 'Pod' } }).map((r) => r.address),
      ['198.18.40.1', '198.18.40.2', '198.18.40.3', '198.18.40.4', '198.18.40.9'], 'Pod addressing: the pods');
  });

  test('the backend node: its backends carry the node address, weight and hashing in Node addressing only', () => {
    const conditions = [{ type: 'AddressAllowed', status: 'True', reason: 'InPool', message: '', lastTransitionTime: NOW }];
    const backends: BackendStatus[] = [
      { ip: '198.18.40.1', weight: 3, pod: 'web-1', node: 'node-a', nodeIP: '198.18.0.5' },
      { ip: '198.18.40.2', weight: 0, pod: 'web-2', node: 'node-a', nodeIP: '198.18.0.5', draining: true },
      { ip: '198.18.40.3', weight: 1, pod: 'web-3', node: 'node-b', nodeIP: '198.18.0.6' },
    ];
    const vip = (addressing: 'Pod' | 'Node'): LoadBalancerVip => ({
      ...vipOf('198.19.0.10'), spec: { ...vipOf('198.19.0.10').spec, hashing: { ignoreSourcePort: true } },
      status: { address: '198.19.0.10', conditions, backends, addressing },
    });
    assert.deepEqual(backendsOfNode([vip('Node')], 'node-a').map((b) => [b.podAddress, b.nodeAddress, b.weight, b.ignoreSourcePort]),
      [['198.18.40.1', '198.18.0.5', 3, true], ['198.18.40.2', '198.18.0.5', 0, true]]);
    assert.deepEqual(backendsOfNode([vip('Pod')], 'node-a').map((b) => b.nodeAddress), [undefined, undefined]);
  });

  test('the standalone file takes nodeAddress, weight and ignoreSourcePort', () => {
    const [b] = parseBackendFile(`backends:
  - { vip: ${VIP4}, vipPort: 80, podAddress: 198.18.71.11, targetPort: 8080, nodeAddress: ${NODE.v4}, weight: 2, ignoreSourcePort: true }`, 'f');
    assert.deepEqual(b, { vip: VIP4, vipPort: 80, protocol: 'TCP', podAddress: '198.18.71.11', targetPort: 8080, nodeAddress: NODE.v4, weight: 2,
      ignoreSourcePort: true });
    assert.throws(() => parseBackendFile(`backends: [{ vip: ${VIP4}, vipPort: 80, podAddress: 198.18.71.11, weight: heavy }]`, 'f'), /weight must be a number/);
  });

  test('the controller\'s node cache keeps each node\'s InternalIPs and nothing else of its status', () => {
    const n: V1Node = { metadata: { name: 'node-a' }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.5' },
      { type: 'Hostname', address: 'node-a' }, { type: 'InternalIP', address: '2001:db8::5' }], capacity: { cpu: '2' } } };
    trimNodeForPlacement(n);
    assert.deepEqual(n.status, { addresses: [{ type: 'InternalIP', address: '198.18.0.5' }, { type: 'InternalIP', address: '2001:db8::5' }] });
    assert.deepEqual(internalIps(n), ['198.18.0.5', '2001:db8::5']);
  });
});
