/**
 * L2 mode on the lab variant without a router daemon: the client and both
 * balancer nodes share one Ethernet segment and the client reaches the VIPs
 * on-link, so it finds them by ARP/NDP. A real kube-apiserver, the
 * controller and cluster-mode agents; the default XdpBalancer gets spec.l2.
 *
 * Checked: one node per VIP (status.l2.node) answers ARP and Neighbor
 * Solicitations; when it stops (SIGTERM, detaching) the other node takes the
 * VIP over and announces it, under continuous traffic and a long-lived
 * connection: no connection fails and the long-lived one goes on (both nodes'
 * rings send it to the same real); the gap is measured.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { environment } from '../support/environment.js';
import { sample } from '../support/prometheus.js';
import { LONG_LIVED_MIN_MESSAGES } from '../lab/client-results.js';
import { VIP6 } from '../lab/lab.js';
import { vipManifest } from './invalid-vips.js';
import type { LabOperatorEnv } from './operator/lab-env.js';
import { waitFor } from './operator/lab-env.js';

const HTTP = 80;
/** The default: a handover on SIGTERM does not wait for it, and a loaded machine's late renewal does not move VIPs. */
const LEASE_SECONDS = 10;
/** How long the test watches a returning node not take its VIP back. */
const STICKY_WATCH_MS = 3000;
/** Traffic runs on its own a while before and after the change, so both edges happen under load. */
const LEAD_MS = 1500;
const TRAFFIC_MS = 9000;
const LONG_INTERVAL_MS = 100;
/** Generous: the machine may be loaded. */
const TAKEOVER_TIMEOUT_MS = 60_000;
const WATCH_MS = 20;

describe('L2 mode: one node answers ARP/NDP for a VIP; another takes over when it stops', () => {
  let env: LabOperatorEnv;
  const { need } = environment('lab operator environment', async () => {
    if (process.getuid?.() !== 0) throw new Error('the lab needs root');
    env = await (await import('./operator/lab-env.js')).LabOperatorEnv.up({ routing: 'l2' });
    try {
      await env.startL2(LEASE_SECONDS);
      for (const r of env.backendNames) await env.setBackend(r, 'ready');
      for (const [name, address] of [['web4', env.vip4], ['web6', VIP6]]) {
        env.kubectl(['apply', '-f', '-'], vipManifest(`  address: "${address}"\n  ports: [{port: ${HTTP}, targetPort: ${env.backendPort}}]\n  backendSelector: {matchLabels: {app: web}}`, name!, env.namespace));
      }
    } catch (err) {
      await env.down();
      throw err;
    }
    return env;
  });

  const getVip = (name: string) => JSON.parse(env.kubectl(['get', 'lbvip', name, '-n', env.namespace, '-o', 'json'])) as LoadBalancerVip;
  const l2Node = (name: string) => getVip(name).status?.l2?.node;
  const balancer = (node: string) => env.lab.balancers.find((b) => b.name === node)!;
  const macOf = (node: string) => (JSON.parse(env.lab.ip(balancer(node).ns, '-j', 'link', 'show', 'dev', 'eth0')) as { address: string }[])[0]!.address;
  /** The MAC the client's neighbor table has for an address, or null. */
  const clientNeighbor = (address: string): string | null => {
    const rows = JSON.parse(env.lab.ip(env.lab.client, '-j', 'neigh', 'show', 'to', address) || '[]') as { lladdr?: string }[];
    return rows[0]?.lladdr ?? null;
  };
  const answered = async (node: string) => sample(await env.agentMetrics(node), 'xdplb_l2_addresses_answered');
  /** `ip -d link` shows "prog/xdp" (native) or "xdpgeneric" while a program is on the NIC. */
  const xdpOn = (node: string) => /prog\/xdp|xdpgeneric/.test(env.lab.ip(balancer(node).ns, '-d', 'link', 'show', 'dev', 'eth0'));

  test('each VIP is announced by one node, shown in its status; the client resolves it to that node and is served', async (t) => {
    if (!need(t)) return;
    // The announcer may move while nodes report one by one, or when a Lease is renewed late on a
    // loaded machine: the nodes and the table that shows them are read together, until they agree.
    const { n4, n6, wide } = await waitFor('each VIP\'s L2 node, as kubectl get -o wide shows it', () => {
      const table = env.kubectl(['get', 'lbvip', '-n', env.namespace, '-o', 'wide']);
      return { n4: l2Node('web4'), n6: l2Node('web6'), wide: table };
    }, (s) => !!s.n4 && !!s.n6 && new RegExp(`\\b${s.n4}\\b`).test(s.wide.split('\n').find((l) => l.startsWith('web4')) ?? ''), TAKEOVER_TIMEOUT_MS);
    assert.ok(env.nodes.includes(n4!) && env.nodes.includes(n6!), `${n4}, ${n6}`);
    assert.match(wide, /L2 NODE/);
    // Each node answers for the VIPs it was named for, and only those.
    for (const node of env.nodes) {
      const expected = [n4, n6].filter((n) => n === node).length;
      await waitFor(`${node} answering for ${expected} address(es)`, () => answered(node), (x) => x === expected, TAKEOVER_TIMEOUT_MS);
    }
    // Each node's entry of the balancer's status says how many it answers for.
    await waitFor('the L2 counts in the XdpBalancer status', () => JSON.parse(env.kubectl(['get', 'xdpbalancer', 'default', '-o', 'jsonpath={.status.nodes}']) || '[]') as
      { node: string; l2?: { answering: number } }[], (e) => env.nodes.every((n) => e.find((x) => x.node === n)?.l2?.answering === [n4, n6].filter((x) => x === n).length),
    TAKEOVER_TIMEOUT_MS);
    for (const [vip, node] of [[env.vip4, n4!], [VIP6, n6!]] as const) {
      const r = await env.connect(vip, HTTP, 200);
      assert.equal(r.failures, 0, `${vip}: ${r.errors.join(', ')}`);
      assert.equal(Object.keys(r.byReal).length, env.backendNames.length, `${vip}: every real answered: ${JSON.stringify(r.byReal)}`);
      assert.equal(clientNeighbor(vip), macOf(node), `the client resolved ${vip} to ${node}'s MAC`);
    }
  });

  test('the announcing node stops (SIGTERM, detaching): the other takes the VIP over and announces it; no connection fails', async (t) => {
    if (!need(t)) return;
    // Agents that detach on exit: what removing a node from the balancer does. A restart slower
    // than the Lease (a loaded machine) may move the VIP meanwhile: the announcing node is read after.
    for (const node of env.nodes) {
      await env.lab.stopAgent(balancer(node), 'SIGKILL');
      await env.startAgentWith(node, ['--detach-on-exit']);
    }
    const [from] = await waitFor('the client resolving the VIP to the announcing node', async () => {
      await env.connect(env.vip4, HTTP, 1);
      const node = l2Node('web4');
      return [node, node && clientNeighbor(env.vip4) === macOf(node)] as const;
    }, ([, agreed]) => !!agreed, TAKEOVER_TIMEOUT_MS) as [string, boolean];
    const to = env.nodes.find((n) => n !== from)!;
    const traffic = env.continuous(env.vip4, HTTP, TRAFFIC_MS);
    const long = env.long(env.vip4, HTTP, TRAFFIC_MS, LONG_INTERVAL_MS);
    await sleep(LEAD_MS);
    const stopAt = Date.now();
    let statusAt = 0;
    let clientAt = 0;
    let watching = true;
    const toMac = macOf(to);
    const watch = (async () => {
      while (watching && (!statusAt || !clientAt)) {
        if (!statusAt && l2Node('web4') === to) statusAt = Date.now();
        if (!clientAt && clientNeighbor(env.vip4) === toMac) clientAt = Date.now();
        await sleep(WATCH_MS);
      }
    })();
    await env.lab.stopAgent(balancer(from), 'SIGTERM');
    await waitFor('the takeover seen in status and by the client', () => statusAt > 0 && clientAt > 0, (x) => x, TAKEOVER_TIMEOUT_MS);
    watching = false;
    await watch;
    const [c, l] = await Promise.all([traffic, long]);
    t.diagnostic(`takeover: status.l2.node ${from} -> ${to} after ${statusAt - stopAt} ms; the client's neighbor entry moved after ${clientAt - stopAt} ms; ` +
      `${c.ok} connections ok, ${c.failures} failed; long-lived: ${l.received}/${l.sent} answers`);
    assert.equal(c.failures, 0, `failed: ${c.errors.join(', ')}`);
    assert.equal(l.error, '', `the long-lived connection broke: ${l.error}`);
    assert.ok(l.received >= LONG_LIVED_MIN_MESSAGES && l.received === l.sent, `long-lived: ${l.received}/${l.sent}`);
    assert.ok(!xdpOn(from), `${from}'s program detached once the traffic moved`);
    const drained = balancer(from).log.find((x) => x.includes('traffic moved: detaching') || x.includes('detaching anyway'));
    assert.ok(drained?.includes('traffic moved: detaching'), `${from} waited for the traffic to move before detaching: ${drained}`);
    assert.equal(await answered(to), [l2Node('web4'), l2Node('web6')].filter((n) => n === to).length, `${to} answers for what it holds`);
    assert.ok(sample(await env.agentMetrics(to), 'xdplb_l2_announcements_total') >= 1, `${to} announced the address it took over`);
    // Back: the VIP stays where it is (a move costs every client an update).
    await env.startAgentWith(from, []);
    await sleep(STICKY_WATCH_MS);
    assert.equal(l2Node('web4'), to, 'the returning node does not take the VIP back');
    const r = await env.connect(env.vip4, HTTP, 100);
    assert.equal(r.failures, 0, r.errors.join(', '));
  });
});
