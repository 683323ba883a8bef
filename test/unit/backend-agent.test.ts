/** The backend agent's pure steps: pods' veths from `ip -j` output, the plan of backend_svcs entries, the table's diff and drain. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { podInterfacesFrom } from '../../src/agent/backend/pod-interfaces.js';
import { planServices, type PodBackend } from '../../src/agent/backend/service-plan.js';
import { ServiceTable } from '../../src/agent/backend/service-table.js';
import { BACKEND_MAPS, memoryMaps, typedMap } from '../../src/bpf/maps.js';

const VETHS = [
  { ifindex: 7, ifname: 'veth1a', address: '02:00:00:00:00:07', mtu: 1500 },
  { ifindex: 8, ifname: 'veth2b', address: '02:00:00:00:00:08', mtu: 1500 },
];
/** What `ip -j -4 route` and `ip -j -6 route` print on a ptp/kindnet node (plus what is no pod). */
const ROUTES_V4 = [
  { dst: 'default', gateway: '198.18.0.1', dev: 'eth0' },
  { dst: '198.18.0.0/24', dev: 'eth0', protocol: 'kernel', scope: 'link' },
  { dst: '198.18.71.11', dev: 'veth1a', scope: 'link' },
  { dst: '198.18.71.12/32', dev: 'veth2b', scope: 'link' },
  { dst: '198.18.72.0/24', dev: 'veth2b', scope: 'link' }, // not a host route
  { dst: '198.18.73.5', dev: 'tunl0', scope: 'link' }, // not a veth
];
const ROUTES_V6 = [
  { dst: '2001:db8:71::1', dev: 'veth1a', protocol: 'kernel' }, // the node's own address on the veth
  { dst: '2001:db8:71::11', dev: 'veth1a', protocol: 'boot' },
];
const pods = podInterfacesFrom(ROUTES_V4, ROUTES_V6, VETHS);

const VIP4 = '198.19.70.10';
const VIP6 = '2001:db8:79::10';
const backend = (vip: string, podAddress: string, over: Partial<PodBackend> = {}): PodBackend =>
  ({ vip, vipPort: 80, protocol: 'TCP', podAddress, targetPort: 8080, ...over });

describe('pods\' veths from routes', () => {
  test('a pod is a veth with host routes through it, not the kernel\'s routes of node addresses', () => {
    assert.deepEqual(pods.all.map((i) => ({ ifname: i.ifname, ifindex: i.ifindex, addresses: i.addresses.map((a) => a.text) })), [
      { ifname: 'veth1a', ifindex: 7, addresses: ['198.18.71.11', '2001:db8:71::11'] },
      { ifname: 'veth2b', ifindex: 8, addresses: ['198.18.71.12'] },
    ]);
  });
});

describe('the plan of backend_svcs entries', () => {
  const entries = (plan: ReturnType<typeof planServices>) => [...plan.entries.values()].map((e) =>
    `${e.key.tunnelDst.text} ${e.key.vip.text}:${e.key.vipPort} -> ${e.value.address.text}:${e.value.port} on ${e.ifname}`).sort();

  test('a dual-stack pod: IPv4 VIP through both its addresses (IPv4 in IPv6 too), IPv6 VIP through its IPv6 one', () => {
    const plan = planServices([backend(VIP4, '198.18.71.11'), backend(VIP6, '198.18.71.11')], pods);
    assert.deepEqual(plan.refused, []);
    assert.deepEqual(entries(plan), [
      `198.18.71.11 ${VIP4}:80 -> 198.18.71.11:8080 on veth1a`,
      `2001:db8:71::11 ${VIP4}:80 -> 198.18.71.11:8080 on veth1a`,
      `2001:db8:71::11 ${VIP6}:80 -> 2001:db8:71::11:8080 on veth1a`,
    ]);
  });

  test('refused, with why: not local, no address of the VIP\'s family, bad ports and addresses, a conflicting target port', () => {
    const plan = planServices([
      backend(VIP4, '198.18.99.9'),
      backend(VIP6, '198.18.71.12'),
      backend(VIP4, '198.18.71.12', { vipPort: 0 }),
      backend(VIP4, '198.18.71.12', { targetPort: 70000 }),
      backend('not-an-ip', '198.18.71.12'),
      backend(VIP4, '198.18.71.12'),
      backend(VIP4, '198.18.71.12', { targetPort: 9090 }),
    ], pods);
    assert.deepEqual(plan.refused.map((r) => r.reason.split(':')[0]), [
      'pod address 198.18.99.9 is not local',
      'the pod behind veth2b has no IPv6 address for IPv6 VIP 2001',
      'VIP port 0 is not in 1..65535 (all-port VIPs are not served to pods',
      'target port 70000 is not in 1..65535',
      'VIP "not-an-ip" is not an IP address',
      'conflicts with an earlier backend',
    ]);
    assert.deepEqual(entries(plan), [`198.18.71.12 ${VIP4}:80 -> 198.18.71.12:8080 on veth2b`]);
  });
});

describe('the table: a diff, and removed entries kept while they drain', () => {
  const DRAIN_MS = 1000;

  test('adds, rewrites a changed target port in place, keeps a removed entry for the drain period, then deletes it', () => {
    const raw = memoryMaps(BACKEND_MAPS).services;
    const map = typedMap(BACKEND_MAPS.services, raw);
    let now = 0;
    const table = new ServiceTable(raw, DRAIN_MS, () => now);
    const both = planServices([backend(VIP4, '198.18.71.11'), backend(VIP4, '198.18.71.12')], pods).entries;
    assert.deepEqual({ ...table.apply(both), failed: undefined }, { added: 3, changed: 0, drainStarted: 0, removed: 0, failed: undefined });
    const moved = planServices([backend(VIP4, '198.18.71.11', { targetPort: 9090 })], pods).entries;
    const change = table.apply(moved);
    assert.deepEqual([change.added, change.changed, change.drainStarted, change.removed], [0, 2, 1, 0]);
    assert.equal(map.keys().length, 3, 'the removed pod\'s entry drains');
    assert.deepEqual(table.draining().map((e) => e.key.tunnelDst.text), ['198.18.71.12']);
    now += DRAIN_MS;
    assert.equal(table.apply(moved).removed, 1);
    assert.equal(map.keys().length, 2);
    assert.ok(map.keys().every((k) => map.get(k)!.port === 9090));
  });

  test('a restarted agent adopts the entries; those its first plan lacks start draining then', () => {
    const raw = memoryMaps(BACKEND_MAPS).services;
    new ServiceTable(raw, DRAIN_MS).apply(planServices([backend(VIP4, '198.18.71.12')], pods).entries);
    let now = 0;
    const adopted = new ServiceTable(raw, DRAIN_MS, () => now);
    assert.equal(adopted.entries().length, 1);
    assert.equal(adopted.apply(new Map()).drainStarted, 1);
    now += DRAIN_MS;
    assert.equal(adopted.apply(new Map()).removed, 1);
  });

  test('no drain period: removed at once', () => {
    const raw = memoryMaps(BACKEND_MAPS).services;
    const table = new ServiceTable(raw, 0);
    table.apply(planServices([backend(VIP4, '198.18.71.12')], pods).entries);
    assert.equal(table.apply(new Map()).removed, 1);
  });
});
