/**
 * Unmodified pods as backends, in the lab: worker nodes with pods laid out as
 * a CNI plugin lays them out, each worker running `xdplb-agent --mode
 * backend`; the pods run a plain TCP and UDP server on port 8080 (no VIP, no
 * privilege, no BPF). Real traffic from the client through both balancer
 * nodes, VIP port 80/53 translated to 8080, replies straight to the client:
 * to w1's pods by their own addresses (the router routes w1's pod network),
 * to w2's through w2's address (Node addressing: w2's pods are reachable only
 * through their node, as with an overlay).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireKernel } from '../support/kernel.js';
import { type Samples, sample, sum } from '../support/prometheus.js';
import { passedNotVip } from './report.js';
import { Lab, type LabPod, type LabWorker, POD_PORT } from './lab.js';
import { POD_VIP4, POD_VIP4_V6PODS, POD_VIP6, POD_VIP_TCP_PORT, POD_VIP_UDP_PORT, servePods } from './pod-vips.js';
import type { ConnectResult, ContinuousResult, LongResult, UdpResult } from './client-results.js';

const PODS_PER_WORKER = 2;
const CONNECTIONS = 300;
/** Long-lived connections held across a pod's arrival and another's departure. */
const LONG_LIVED = 12;
/** How long continuous traffic runs around each change; the changes happen inside it. */
const CHURN_TRAFFIC_MS = 20_000;
/** Short connections on a draining pod finish within this (each lasts milliseconds). */
const DRAIN_WAIT_MS = 2_000;
const PEERS_WAIT_MS = 30_000;
const POLL_MS = 100;

describe('lab: unmodified pods behind the backend datapath (delivery Node; Pod addressing to w1, Node addressing to w2)', () => {
  let lab: Lab;
  const served = (): LabPod[] => lab.pods();
  const connect = (vip: string, count: number) =>
    lab.clientRun<ConnectResult>({ mode: 'connect', vip, port: POD_VIP_TCP_PORT, count, concurrency: 8 });
  const delivered = (m: Samples) => sum(m, 'xdplb_backend_packets_total', { verdict: 'delivered' });
  const rewritten = (m: Samples) => sample(m, 'xdplb_backend_packets_total', { verdict: 'rewritten', reason: 'reply_rewritten' });

  before(async () => {
    if (process.getuid?.() !== 0) return;
    lab = await Lab.up({ routing: 'static', reals: 1, pods: PODS_PER_WORKER });
    for (const w of lab.workers) await lab.startBackendAgent(w);
    await servePods(lab, served());
    for (const b of lab.balancers) await lab.startAgent(b);
  });
  after(async () => {
    await lab?.down();
  });

  test('TCP to an IPv4, an IPv6 and an IPv4-over-IPv6-pods VIP: every connection answered by the pods on 8080 of both workers, through both balancers', async (t) => {
    if (!requireKernel(t)) return;
    const [w1, w2] = lab.workers as [LabWorker, LabWorker];
    const before = await lab.backendMetrics(w1);
    const before2 = await lab.backendMetrics(w2);
    const balancersBefore = await Promise.all(lab.balancers.map((b) => lab.metrics(b)));
    for (const vip of [POD_VIP4, POD_VIP6, POD_VIP4_V6PODS]) {
      const r = await connect(vip, CONNECTIONS);
      t.diagnostic(`${vip}:${POD_VIP_TCP_PORT}: ${JSON.stringify(r.byReal)}, ${r.failures} failed`);
      assert.equal(r.failures, 0, `${vip}: ${r.errors.slice(0, 5).join(', ')}`);
      assert.deepEqual(Object.keys(r.byReal).sort(), served().map((p) => p.name).sort(), `${vip}: every pod answered`);
    }
    const m = await lab.backendMetrics(w1);
    const m2 = await lab.backendMetrics(w2);
    const after = await Promise.all(lab.balancers.map((b) => lab.metrics(b)));
    t.diagnostic(`w1 delivered ${delivered(m) - delivered(before)}, w2 ${delivered(m2) - delivered(before2)}`);
    // SYN and ACK of each connection at least, over both workers.
    assert.ok(delivered(m) - delivered(before) + delivered(m2) - delivered(before2) >= 3 * CONNECTIONS * 2, 'the workers decapsulated and translated');
    for (const reason of ['to_pod_v4_in_v4', 'to_pod_v6_in_v6', 'to_pod_v4_in_v6']) {
      assert.ok(sample(m, 'xdplb_backend_packets_total', { verdict: 'delivered', reason }) > 0, `w1 (pod addresses): ${reason} counted`);
      assert.ok(sample(m2, 'xdplb_backend_packets_total', { verdict: 'delivered', reason: `node_${reason}` }) > 0, `w2 (its node address): node_${reason} counted`);
    }
    assert.ok(rewritten(m) - rewritten(before) + rewritten(m2) - rewritten(before2) >= 3 * CONNECTIONS, 'the pods\' replies left as the VIP, rewritten and routed by the program');
    for (const x of [m, m2]) assert.equal(sum(x, 'xdplb_backend_packets_total', { verdict: 'drop' }), 0, 'nothing dropped');
    for (const [i, b] of lab.balancers.entries()) {
      const packets = (s: Samples) => sample(s, 'xdplb_vip_packets_total', { vip: `${POD_VIP4}:${POD_VIP_TCP_PORT}/TCP` });
      assert.ok(packets(after[i]!) > packets(balancersBefore[i]!), `${b.name} took part (ECMP)`);
      // Replies never pass a balancer: only the client's packets (to a VIP) and its probes' answers reach it.
      const other = passedNotVip(after[i]!) - passedNotVip(balancersBefore[i]!);
      assert.ok(other <= 4, `${b.name} saw ${other} non-VIP packets besides its probes' answers`);
    }
  });

  test('UDP to VIP port 53 answered from 8080 by the pods, IPv4 and IPv6', async (t) => {
    if (!requireKernel(t)) return;
    for (const vip of [POD_VIP4, POD_VIP6]) {
      const sourcePorts = Array.from({ length: 120 }, (_, i) => 47000 + i);
      const u = await lab.clientRun<UdpResult>({ mode: 'udp', vip, port: POD_VIP_UDP_PORT, sourcePorts });
      assert.equal(u.failures, 0, `${vip}: ${u.errors.slice(0, 5).join(', ')}`);
      const pods = new Set(Object.values(u.byPort).map((answer) => answer.split(' ')[0]!.replace('real=', '')));
      t.diagnostic(`${vip}:${POD_VIP_UDP_PORT}/UDP answered by ${[...pods].join(', ')}`);
      assert.deepEqual([...pods].sort(), served().map((p) => p.name).sort());
    }
  });

  test('the pods see the client\'s own address as the peer of their port 8080: no VIP, no NAT of the source', async (t) => {
    if (!requireKernel(t)) return;
    const longs = Array.from({ length: LONG_LIVED }, () =>
      lab.clientRun<LongResult>({ mode: 'long', vip: POD_VIP4, port: POD_VIP_TCP_PORT, durationMs: 6000, intervalMs: 200 }));
    const peers = await waitForPeers(served(), LONG_LIVED);
    await Promise.all(longs);
    t.diagnostic(`peers of the pods' :${POD_PORT}: ${[...new Set(peers)].join(', ')} (${peers.length} connections)`);
    assert.ok(peers.length >= LONG_LIVED);
    for (const peer of peers) assert.equal(peer, lab.clientAddress.v4, 'the peer is the client itself');
  });

  test('a pod added and one removed under continuous traffic: 0 failed connections, long-lived ones on the others unbroken', async (t) => {
    if (!requireKernel(t)) return;
    const w2 = lab.workers.find((w) => !w.routed)!;
    const leaving = served()[0]!;
    const longs = Array.from({ length: LONG_LIVED }, () =>
      lab.clientRun<LongResult>({ mode: 'long', vip: POD_VIP4, port: POD_VIP_TCP_PORT, durationMs: CHURN_TRAFFIC_MS, intervalMs: 500 }));
    const traffic = [POD_VIP4, POD_VIP6].map((vip) => lab.clientRun<ContinuousResult>({ mode: 'continuous', vip, port: POD_VIP_TCP_PORT, durationMs: CHURN_TRAFFIC_MS }));
    await sleep(CHURN_TRAFFIC_MS / 5);
    const added = await lab.addPod(w2);
    await servePods(lab, served());
    t.diagnostic(`added ${added.name}`);
    await sleep(CHURN_TRAFFIC_MS / 5);
    // The way the controller removes a backend: drain (weight 0) first, then remove it, then the pod goes.
    await servePods(lab, served(), [leaving]);
    await sleep(DRAIN_WAIT_MS);
    await servePods(lab, served().filter((p) => p !== leaving));
    await lab.removePod(leaving);
    t.diagnostic(`removed ${leaving.name}`);
    const results = await Promise.all(traffic);
    const longResults = await Promise.all(longs);
    for (const [i, r] of results.entries()) {
      t.diagnostic(`continuous to ${[POD_VIP4, POD_VIP6][i]}: ${r.ok} ok, ${r.failures} failed`);
      assert.ok(r.ok > 0);
      assert.equal(r.failures, 0, r.errors.slice(0, 5).join(', '));
    }
    const onOthers = longResults.filter((l) => l.real !== leaving.name);
    t.diagnostic(`long-lived: ${longResults.map((l) => `${l.real} ${l.received}/${l.sent}${l.error ? ` (${l.error})` : ''}`).join('; ')}`);
    assert.ok(onOthers.length > 0, 'some long-lived connections were on pods that stayed');
    for (const l of onOthers) {
      assert.equal(l.error, '', `${l.real}: ${l.error}`);
      assert.equal(l.received, l.sent, `${l.real}: ${l.received} of ${l.sent} echoed`);
    }
    const r = await connect(POD_VIP4, CONNECTIONS);
    assert.equal(r.failures, 0);
    assert.deepEqual(Object.keys(r.byReal).sort(), served().map((p) => p.name).sort(), 'the new pod serves, the removed one does not');
    assert.ok(r.byReal[added.name]! > 0);
  });
});

/** The peer addresses of the pods' established connections on POD_PORT, once there are at least `n` (ss in each pod). */
async function waitForPeers(pods: readonly LabPod[], n: number): Promise<string[]> {
  const deadline = Date.now() + PEERS_WAIT_MS;
  for (;;) {
    const peers = pods.flatMap((p) => execFileSync('ip', ['netns', 'exec', p.ns, 'ss', '-Htn', 'state', 'established', `( sport = :${POD_PORT} )`],
      { encoding: 'utf8' }).split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/).at(-1)!.replace(/^\[?(?:::ffff:)?/, '').replace(/\]?:\d+$/, '')));
    if (peers.length >= n) return peers;
    if (Date.now() > deadline) throw new Error(`only ${peers.length} of ${n} connections reached the pods within ${PEERS_WAIT_MS} ms`);
    await sleep(POLL_MS);
  }
}
