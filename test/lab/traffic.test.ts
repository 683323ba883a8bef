/**
 * Real traffic through the lab: TCP and UDP from a client, through two XDP
 * balancer nodes running xdplb-agent, to reals that answer directly (DSR).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { UDP_IDLE_TIMEOUT_S } from '../../src/bpf/consts.js';
import { requireKernel } from '../support/kernel.js';
import { type Samples, sample, sum } from '../support/prometheus.js';
import { connectionId, quicInitial, quicShortHeader } from '../support/quic-packets.js';
import { passedNotVip } from './report.js';
import { CLIENT_MTU, Lab, labVips, VIP4, VIP4_V6REALS, VIP6 } from './lab.js';
import { type ConnectResult, type ContinuousResult, type LargeResult, LONG_LIVED_MIN_MESSAGES, type LongResult, type UdpResult } from './client-results.js';

const ports = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
const UDP_ETH_IP_UDP = 14 + 20 + 8;
const PINGS = 3;
/** The client is one router hop from the balancers: an answer sent with TTL 64 arrives with 63. */
const ECHO_TTL_AT_CLIENT = 63;
/** The router's routes to the client, narrowed: IPv6's minimum, below the 1500 bytes the client's MSS allows for. */
const NARROW_MTU = 1280;
/** A line the real echoes in several full-sized segments. */
const LARGE_LINE = 8000;
/** The agent reads its NIC every 2 s; generous for a loaded machine. */
const MTU_FOLLOWED_TIMEOUT_MS = 60_000;
/** A real that learns the path MTU resends within a second or two; generous for a loaded machine. */
const LARGE_TIMEOUT_MS = 30_000;
/** Past the idle timeout, for a loaded machine's late packets. */
const UDP_IDLE_MARGIN_S = 4;
const AGENT = fileURLToPath(new URL('../../src/agent/main.js', import.meta.url));

describe('lab: real traffic through XDP balancers', () => {
  let lab: Lab;
  before(async () => {
    if (process.getuid?.() !== 0) return;
    lab = await Lab.up({ routing: 'static' }); // tests steer traffic with routeVia
    lab.writeVips(labVips(lab));
    for (const b of lab.balancers) await lab.startAgent(b);
  });
  after(async () => {
    await lab?.down();
  });

  const connect = (vip: string, count: number, port = 80) =>
    lab.clientRun<ConnectResult>({ mode: 'connect', vip, port, count, concurrency: 8 });

  test('hundreds of TCP connections to an IPv4 VIP: all answered, spread by Maglev, replies bypass the balancers', async (t) => {
    if (!requireKernel(t)) return;
    const before = await Promise.all(lab.balancers.map((b) => lab.metrics(b)));
    const n = 600;
    const r = await connect(VIP4, n);
    assert.equal(r.failures, 0, `failed: ${r.errors.join(', ')}`);
    const total = Object.values(r.byReal).reduce((a, b) => a + b, 0);
    assert.equal(total, n);
    assert.deepEqual(Object.keys(r.byReal).sort(), ['real1', 'real2', 'real3']);
    // Maglev splits the ring evenly; random client ports add binomial noise (sd ~ 11.5 at 200).
    for (const [real, count] of Object.entries(r.byReal)) assert.ok(Math.abs(count - n / 3) < n / 3 / 4, `${real}: ${count} of ${n}`);
    const after = await Promise.all(lab.balancers.map((b) => lab.metrics(b)));
    // Every packet that reached a balancer was for the VIP (or a health probe's answer): the replies went real -> router -> client.
    for (let i = 0; i < 2; i++) {
      const other = passedNotVip(after[i]!) - passedNotVip(before[i]!);
      assert.ok(other <= 4, `balancer ${i + 1} saw ${other} non-VIP packets besides its probes' answers`);
    }
    const tx = (s: Samples[]) => s.reduce((acc, m) => acc + sample(m, 'xdplb_packets_total', { verdict: 'tx', reason: 'tx_encap' }), 0);
    assert.ok(tx(after) - tx(before) >= n * 3, 'at least SYN, ACK and FIN of every connection went through XDP');
    for (const b of lab.balancers) assert.ok(sample(after[lab.balancers.indexOf(b)]!, 'xdplb_vip_packets_total', { vip: `${VIP4}:80/TCP` }) > 0, `${b.name} took part (ECMP)`);
  });

  test('IPv6 VIP with IPv6 reals, IPv4 VIP with IPv6 reals, and UDP, end to end', async (t) => {
    if (!requireKernel(t)) return;
    for (const vip of [VIP6, VIP4_V6REALS]) {
      const r = await connect(vip, 90);
      assert.equal(r.failures, 0, `${vip}: ${r.errors.join(', ')}`);
      assert.equal(Object.keys(r.byReal).length, 3, `${vip} spread: ${JSON.stringify(r.byReal)}`);
    }
    for (const vip of [VIP4, VIP6]) {
      const u = await lab.clientRun<UdpResult>({ mode: 'udp', vip, port: 53, sourcePorts: ports(41000, 60) });
      assert.equal(u.failures, 0, `${vip} UDP: ${u.errors.join(', ')}`);
      assert.equal(new Set(Object.values(u.byPort)).size, 3);
    }
  });

  test('ping to a VIP is answered by the balancer, not a real; a port no VIP has is dropped there, not routed back', async (t) => {
    if (!requireKernel(t)) return;
    const count = (s: Samples[], verdict: string, reason: string) => s.reduce((a, m) => a + sample(m, 'xdplb_packets_total', { verdict, reason }), 0);
    const before = await Promise.all(lab.balancers.map((b) => lab.metrics(b)));
    for (const vip of [VIP4, VIP6]) {
      const ping = spawnSync('ip', ['netns', 'exec', lab.client, 'ping', '-n', '-c', String(PINGS), '-i', '0.2', '-W', '5', vip], { encoding: 'utf8' });
      const said = `${ping.stdout}${ping.stderr}`;
      assert.match(said, new RegExp(`${PINGS} packets transmitted, ${PINGS} received`), said);
      assert.match(said, new RegExp(`from ${vip}: icmp_seq=1 ttl=${ECHO_TTL_AT_CLIENT} `), `answered from the VIP, TTL 64 less the router's hop: ${said}`);
    }
    // The host would forward a packet for a port no VIP has back to the router (the VIP is none of its addresses);
    // XDP drops it, so the client's SYNs go unanswered: a timeout, not a refusal or an unreachable.
    const noPort = await connect(VIP4, 1, 81);
    assert.deepEqual(noPort.errors, ['timeout']);
    const after = await Promise.all(lab.balancers.map((b) => lab.metrics(b)));
    assert.equal(count(after, 'tx', 'tx_icmp_echo_reply') - count(before, 'tx', 'tx_icmp_echo_reply'), 2 * PINGS, 'every request answered in XDP');
    assert.ok(count(after, 'drop', 'drop_vip_no_port') - count(before, 'drop', 'drop_vip_no_port') >= 1, 'the SYN to port 81 dropped in XDP');
    for (let i = 0; i < 2; i++) {
      const passed = count([after[i]!], 'pass', 'pass_vip_not_tcp_udp') - count([before[i]!], 'pass', 'pass_vip_not_tcp_udp');
      assert.equal(passed, 0, `balancer ${i + 1} passed nothing for the VIP addresses to its host`);
    }
  });

  test('path MTU discovery works for DSR reals: the router\'s "fragmentation needed" / "packet too big" reaches the flow\'s real', async (t) => {
    if (!requireKernel(t)) return;
    const icmpErrors = (s: Samples[]) => s.reduce((a, m) => a + sample(m, 'xdplb_packets_total', { verdict: 'tx', reason: 'tx_icmp_error' }), 0);
    const before = await Promise.all(lab.balancers.map((b) => lab.metrics(b)));
    // The reals answer in segments as large as the client's MSS allows (1500-byte packets); the router's routes to the
    // client take fewer (a route's MTU: the link's own would also drop the client's 1500-byte packets on the veth).
    // The router tells the sender, which is the VIP: only the real's kernel can act on it. Without the balancer
    // forwarding the error the connection stalls: no real learns the path's MTU (checked by hand with the router's
    // "fragmentation needed" dropped: the same transfer timed out).
    const narrowed = [['-4', `${lab.clientAddress.v4}/32`], ['-6', `${lab.clientAddress.v6}/128`]];
    for (const [family, prefix] of narrowed) lab.ip(lab.router, family!, 'route', 'add', prefix!, 'dev', lab.clientLink, 'mtu', String(NARROW_MTU));
    try {
      for (const vip of [VIP4, VIP6]) {
        const r = await lab.clientRun<LargeResult>({ mode: 'large', vip, port: 80, count: LARGE_LINE, durationMs: LARGE_TIMEOUT_MS });
        assert.deepEqual([r.error, r.received], ['', LARGE_LINE], `${vip}, answered by ${r.real || 'no real'}`);
      }
    } finally {
      for (const [family, prefix] of narrowed) lab.ip(lab.router, family!, 'route', 'del', prefix!, 'dev', lab.clientLink);
    }
    const after = await Promise.all(lab.balancers.map((b) => lab.metrics(b)));
    assert.ok(icmpErrors(after) - icmpErrors(before) >= 2, `the router's errors went to the reals through XDP: ${icmpErrors(before)} -> ${icmpErrors(after)}`);
  });

  test('a client whose packets are too big to encapsulate is told the MTU that fits, and its large request gets through', async (t) => {
    if (!requireKernel(t)) return;
    const b = lab.balancers[0]!;
    const tooBig = async () => sample(await lab.metrics(b), 'xdplb_packets_total', { verdict: 'tx', reason: 'tx_icmp_too_big' });
    const mtu = (JSON.parse(lab.ip(b.ns, '-j', 'link', 'show', 'dev', 'eth0')) as { mtu: number }[])[0]!.mtu;
    lab.routeVia([b]);
    // The balancer's NIC down to the client's MTU: a full-sized client packet plus the outer header no longer fits.
    lab.ip(b.ns, 'link', 'set', 'dev', 'eth0', 'mtu', String(CLIENT_MTU));
    try {
      for (const vip of [VIP4, VIP6]) {
        // Until the agent has followed the NIC's MTU a request passes whole; once it has, the first is answered as too
        // big and the client resends smaller. Every request must get through; the answer must come.
        const deadline = Date.now() + MTU_FOLLOWED_TIMEOUT_MS;
        let answered = 0;
        do {
          const before = await tooBig();
          const r = await lab.clientRun<LargeResult>({ mode: 'large', vip, port: 80, count: LARGE_LINE, durationMs: LARGE_TIMEOUT_MS });
          assert.deepEqual([r.error, r.received], ['', LARGE_LINE], `${vip}, answered by ${r.real || 'no real'}`);
          answered = (await tooBig()) - before;
        } while (answered === 0 && Date.now() < deadline);
        assert.ok(answered >= 1, `${vip}: the client was told its packets were too big`);
      }
    } finally {
      lab.ip(b.ns, 'link', 'set', 'dev', 'eth0', 'mtu', String(mtu));
      lab.routeVia(lab.balancers);
      // The client keeps the lowered path MTU for minutes: later tests count its packets.
      lab.ip(lab.client, 'route', 'flush', 'cache');
      lab.ip(lab.client, '-6', 'route', 'flush', 'cache');
    }
  });

  test('the same flow reaches the same real through either balancer node', async (t) => {
    if (!requireKernel(t)) return;
    const flows = ports(42000, 150);
    try {
      lab.routeVia([lab.balancers[0]!]);
      const via1 = await lab.clientRun<UdpResult>({ mode: 'udp', vip: VIP4, port: 53, sourcePorts: flows });
      lab.routeVia([lab.balancers[1]!]);
      const via2 = await lab.clientRun<UdpResult>({ mode: 'udp', vip: VIP4, port: 53, sourcePorts: flows });
      assert.equal(via1.failures + via2.failures, 0);
      assert.deepEqual(via2.byPort, via1.byPort);
      assert.equal(new Set(Object.values(via1.byPort)).size, 3);
    } finally {
      lab.routeVia(lab.balancers);
    }
  });

  test('a draining real keeps its connections and gets no new ones; removing a real moves only its flows', async (t) => {
    if (!requireKernel(t)) return;
    // Long-lived connections on every real (24: all three reals get some), opened before the drain.
    const longs = Array.from({ length: 24 }, () =>
      lab.clientRun<LongResult>({ mode: 'long', vip: VIP4, port: 80, durationMs: 3000, intervalMs: 100 }));
    // UDP flows mapped through lb1 only, replayed later through lb2 (no connection table there).
    const flows = ports(43000, 150);
    lab.routeVia([lab.balancers[0]!]);
    let mapped: UdpResult;
    try {
      mapped = await lab.clientRun<UdpResult>({ mode: 'udp', vip: VIP4, port: 53, sourcePorts: flows });
    } finally {
      lab.routeVia(lab.balancers);
    }
    const drained = labVips(lab).map((v) => ({ ...v, reals: v.reals.map((r) => ({ ...r, weight: r.address === lab.reals[0]!.v4 ? 0 : 1 })) }));
    await lab.applyVips(drained);
    const fresh = await connect(VIP4, 300);
    assert.equal(fresh.failures, 0);
    assert.equal(fresh.byReal.real1 ?? 0, 0, `new connections reached the draining real: ${JSON.stringify(fresh.byReal)}`);
    const results = await Promise.all(longs);
    assert.ok(results.some((r) => r.real === 'real1'), 'no long-lived connection landed on real1');
    for (const r of results) {
      assert.equal(r.error, '', `a connection to ${r.real} broke: ${r.error}`);
      assert.ok(r.received >= r.sent - 1 && r.sent >= LONG_LIVED_MIN_MESSAGES, `connection to ${r.real}: ${r.received}/${r.sent}`);
    }

    // Remove real1 for good, and replay the UDP flows through the other node.
    await lab.applyVips(labVips(lab, (r) => r.name !== 'real1'));
    lab.routeVia([lab.balancers[1]!]);
    try {
      const replay = await lab.clientRun<UdpResult>({ mode: 'udp', vip: VIP4, port: 53, sourcePorts: flows });
      assert.equal(replay.failures, 0);
      let moved = 0;
      for (const p of flows) {
        const was = mapped.byPort[p]!;
        const now = replay.byPort[p]!;
        if (was === 'real1') {
          assert.notEqual(now, 'real1');
          moved++;
        } else assert.equal(now, was, `flow ${p} moved from ${was} to ${now} although its real stayed`);
      }
      assert.ok(moved > 10, `only ${moved} flows were on real1`);
    } finally {
      lab.routeVia(lab.balancers);
      await lab.applyVips(labVips(lab));
    }
  });

  test('an idle UDP flow follows a changed ring after the idle timeout; an active one keeps its real', async (t) => {
    if (!requireKernel(t)) return;
    const idle = ports(47000, 100);
    const active = ports(47100, 100);
    lab.routeVia([lab.balancers[0]!]); // one node's table
    let allReals = false;
    try {
      await lab.applyVips(labVips(lab, (r) => r.name !== 'real3'));
      const before = await lab.clientRun<UdpResult>({ mode: 'udp', vip: VIP4, port: 53, sourcePorts: [...idle, ...active] });
      assert.equal(before.failures, 0);
      const sent = Date.now();
      await lab.applyVips(labVips(lab)); // real3 joins: the ring moves about a third of the flows to it
      allReals = true;
      await sleep(UDP_IDLE_TIMEOUT_S * 1000 / 2);
      const kept = await lab.clientRun<UdpResult>({ mode: 'udp', vip: VIP4, port: 53, sourcePorts: active });
      assert.equal(kept.failures, 0);
      await sleep(Math.max(0, sent + (UDP_IDLE_TIMEOUT_S + UDP_IDLE_MARGIN_S) * 1000 - Date.now()));
      const after = await lab.clientRun<UdpResult>({ mode: 'udp', vip: VIP4, port: 53, sourcePorts: [...idle, ...active] });
      assert.equal(after.failures, 0);
      for (const p of active) assert.equal(after.byPort[p], before.byPort[p], `active flow ${p} moved from ${before.byPort[p]} to ${after.byPort[p]}`);
      const toNew = idle.filter((p) => after.byPort[p] === 'real3');
      assert.ok(toNew.length > 10, `only ${toNew.length} of ${idle.length} idle flows followed the new ring to real3`);
      t.diagnostic(`${toNew.length} of ${idle.length} idle flows followed the ring to real3; ${active.length} active flows kept their reals`);
    } finally {
      lab.routeVia(lab.balancers);
      if (!allReals) await lab.applyVips(labVips(lab)); // an unchanged file is not applied again
    }
  });

  test('QUIC: a connection keeps its real from new client ports, through either balancer, by the server id in its connection ID', async (t) => {
    if (!requireKernel(t)) return;
    const serverId = (name: string) => lab.reals.findIndex((r) => r.name === name) + 1;
    const send = (payload: Buffer, sourcePorts: number[]) =>
      lab.clientRun<UdpResult>({ mode: 'udp', vip: VIP4, port: 53, sourcePorts, payloadHex: payload.toString('hex') });
    const initial = await send(quicInitial(), [48000]);
    const real = initial.byPort[48000]!;
    assert.ok(real, `the Initial was answered: ${initial.errors.join(', ')}`);
    const migrated = (from: number) => send(quicShortHeader(connectionId(serverId(real))), ports(from, 100));
    // Without connection-ID routing the client's new ports follow the ring (through both balancers: ECMP).
    const plain = await migrated(48100);
    assert.equal(plain.failures, 0);
    const lostWithout = Object.values(plain.byPort).filter((r) => r !== real).length;
    const quicVips = labVips(lab).map((v) => (v.name !== 'web4' ? v : {
      ...v, quicConnectionIdRouting: true, reals: v.reals.map((r, i) => ({ ...r, quicServerId: i + 1 })),
    }));
    await lab.applyVips(quicVips);
    try {
      const routed = await migrated(48200);
      assert.equal(routed.failures, 0);
      const lost = Object.values(routed.byPort).filter((r) => r !== real).length;
      t.diagnostic(`short headers from 100 new client ports: ${lost} left ${real} with connection-ID routing, ${lostWithout} without`);
      assert.equal(lost, 0, `${lost} of 100 packets of the migrated connection reached another real`);
      assert.ok(lostWithout > 30, `without connection-ID routing only ${lostWithout} of 100 left ${real}: the test would not tell`);
    } finally {
      await lab.applyVips(labVips(lab));
    }
  });

  test('kill -9 of an agent during traffic, then a restart: zero failed requests, long-lived connections survive', async (t) => {
    if (!requireKernel(t)) return;
    const [lb1] = lab.balancers;
    const long = lab.clientRun<LongResult>({ mode: 'long', vip: VIP4, port: 80, durationMs: 7000, intervalMs: 50 });
    const traffic = lab.clientRun<ContinuousResult>({ mode: 'continuous', vip: VIP4, port: 80, durationMs: 7000 });
    const udpBefore = await lab.clientRun<UdpResult>({ mode: 'udp', vip: VIP4, port: 53, sourcePorts: ports(44000, 50) });
    await sleep(1000);
    await lab.stopAgent(lb1!, 'SIGKILL');
    await sleep(1500); // the program runs on without its agent
    await lab.startAgent(lb1!);
    const [l, c] = await Promise.all([long, traffic]);
    assert.equal(c.failures, 0, `failed requests: ${c.errors.join(', ')}`);
    assert.ok(c.ok > 100, `only ${c.ok} requests in 7 s`);
    assert.equal(l.error, '');
    assert.ok(l.received >= l.sent - 1 && l.sent > 100, `long-lived connection: ${l.received}/${l.sent}`);
    const udpAfter = await lab.clientRun<UdpResult>({ mode: 'udp', vip: VIP4, port: 53, sourcePorts: ports(44000, 50) });
    assert.deepEqual(udpAfter.byPort, udpBefore.byPort, 'flows kept their reals across the restart');
    assert.ok(lb1!.log.some((line) => line.includes('took over the attached program')), 'the new agent replaced its predecessor in place');
  });

  test('a bad VIP file is rejected with file, path and reason, and the balancer keeps serving', async (t) => {
    if (!requireKernel(t)) return;
    const bad = labVips(lab).map((v, i) => (i === 0 ? { ...v, ports: [{ port: 70000, protocol: 'TCP' as const }] } : v));
    const logLength = lab.balancers.map((b) => b.log.length);
    lab.writeVips(bad);
    const deadline = Date.now() + 5000;
    const rejected = (i: number) =>
      lab.balancers[i]!.log.slice(logLength[i]).find((l) => l.includes('rejected the VIP file') && l.includes('vips[0].ports[0].port') && l.includes(lab.configPath));
    while (!(rejected(0) && rejected(1)) && Date.now() < deadline) await sleep(50);
    assert.ok(rejected(0) && rejected(1), 'both agents logged the rejection with the path of the bad field');
    assert.match(rejected(0)!, /70000 is not an integer in 1\.\.65535/);
    const r = await connect(VIP4, 60);
    assert.equal(r.failures, 0);
    await lab.applyVips(labVips(lab));
  });

  test('the metrics endpoint counts the traffic exactly, per VIP and per real', async (t) => {
    if (!requireKernel(t)) return;
    const before = await Promise.all(lab.balancers.map((b) => lab.metrics(b)));
    const payload = 'hello 45000'.length; // the client sends "hello <port>"
    const flows = ports(45000, 200);
    const u = await lab.clientRun<UdpResult>({ mode: 'udp', vip: VIP4, port: 53, sourcePorts: flows });
    assert.equal(u.failures, 0);
    const after = await Promise.all(lab.balancers.map((b) => lab.metrics(b)));
    const delta = (name: string, labels: Record<string, string>) =>
      after.reduce((acc, m, i) => acc + sum(m, name, labels) - sum(before[i]!, name, labels), 0);
    const vip = `${VIP4}:53/UDP`;
    assert.equal(delta('xdplb_vip_packets_total', { vip }), flows.length);
    assert.equal(delta('xdplb_vip_bytes_total', { vip }), flows.length * (UDP_ETH_IP_UDP + payload));
    assert.equal(delta('xdplb_vip_new_flows_total', { vip }), flows.length);
    const perReal = new Map<string, number>();
    for (const real of Object.values(u.byPort)) perReal.set(real, (perReal.get(real) ?? 0) + 1);
    // A real's counter also counts other VIPs' packets: a late segment of an earlier test's connection (seen once: one
    // more packet to a real) lands in the window. Exact when there was none.
    const strays = delta('xdplb_vip_packets_total', {}) - delta('xdplb_vip_packets_total', { vip });
    for (const real of lab.reals) {
      const got = delta('xdplb_real_packets_total', { real: real.v4 });
      const want = perReal.get(real.name) ?? 0;
      assert.ok(got >= want && got <= want + strays, `packets to ${real.name}: ${got}, ${want} of this VIP and ${strays} of others in the window`);
    }
    assert.equal(sample(after[0]!, 'xdplb_vips'), 5);
    assert.equal(sample(after[0]!, 'xdplb_vips_capacity'), 512);
    assert.equal(sample(after[0]!, 'xdplb_xdp_mode_info', { mode: 'native', nic: 'eth0' }), 1);
  });

  test('a changed next hop MAC is followed without dropping traffic for long', async (t) => {
    if (!requireKernel(t)) return;
    const b = lab.balancers[0]!;
    lab.routeVia([b]);
    try {
      const logFrom = b.log.length;
      const newMac = '02:00:00:00:21:01';
      // The router's leg gets a new MAC and announces it (what a gratuitous ARP does to lb1's table).
      lab.ip(lab.router, 'link', 'set', 'dev', b.name, 'address', newMac);
      lab.ip(b.ns, 'neigh', 'replace', '198.18.21.1', 'lladdr', newMac, 'dev', 'eth0', 'nud', 'reachable');
      const deadline = Date.now() + 10_000;
      while (!b.log.slice(logFrom).some((l) => l.includes('next hop changed')) && Date.now() < deadline) await sleep(100);
      assert.ok(b.log.slice(logFrom).some((l) => l.includes('next hop changed') && l.includes(newMac)), 'the agent logged the new next hop');
      // Frames to the old MAC would be dropped by the router as "other host": these work only if the agent followed.
      const r = await connect(VIP4, 60);
      assert.equal(r.failures, 0, r.errors.join(', '));
    } finally {
      lab.routeVia(lab.balancers);
    }
  });

  test('SIGTERM leaves the balancer serving; --detach-on-exit and cleanup remove program and pins', async (t) => {
    if (!requireKernel(t)) return;
    const b = lab.balancers[1]!;
    const xdpOn = () => lab.ip(b.ns, 'link', 'show', 'dev', 'eth0').includes('prog/xdp');
    lab.routeVia([b]);
    try {
      await lab.stopAgent(b, 'SIGTERM');
      assert.ok(xdpOn(), 'the program stays attached without its agent');
      assert.ok(readdirSync(b.pinDir).includes('xdplb_balancer_prog'));
      const served = await connect(VIP4, 60);
      assert.equal(served.failures, 0, 'traffic flows while no agent runs');

      await lab.runNode(b.ns, AGENT, ['cleanup', '--nic', 'eth0', '--pin-dir', b.pinDir]);
      assert.ok(!xdpOn(), 'cleanup detached the program');
      assert.ok(!existsSync(b.pinDir), 'cleanup removed the pins');

      await lab.startAgent(b, ['--detach-on-exit']);
      assert.ok(xdpOn());
      await lab.stopAgent(b, 'SIGTERM');
      assert.ok(!xdpOn(), '--detach-on-exit detached on SIGTERM');
      assert.ok(!existsSync(b.pinDir));
    } finally {
      if (!b.agent) await lab.startAgent(b);
      lab.routeVia(lab.balancers);
    }
    const back = await connect(VIP4, 60);
    assert.equal(back.failures, 0);
  });
});
