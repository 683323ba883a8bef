/**
 * The lab's traffic with both balancer agents run as their DaemonSet runs
 * them: uid 0 holding only the capabilities the DaemonSet adds (CAP_BPF,
 * CAP_PERFMON, CAP_NET_ADMIN, CAP_NET_RAW), no_new_privs. TCP and UDP, IPv4
 * and IPv6, reach the lab's reals through both; the health probes get their
 * answers; an agent restarted under the same capabilities adopts its pins and
 * the traffic goes on.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AGENT_CAPABILITIES } from '../../src/controller/agent-daemonset.js';
import { requireKernel } from '../support/kernel.js';
import { sample } from '../support/prometheus.js';
import { setprivPrefix } from '../support/setpriv.js';
import type { ConnectResult, UdpResult } from './client-results.js';
import { type Balancer, Lab, labVips, VIP4, VIP4_V6REALS, VIP6 } from './lab.js';

const CAPS = AGENT_CAPABILITIES.BPF;
const AS_DAEMONSET = { prefix: setprivPrefix(CAPS) };
/** CapEff of exactly CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_PERFMON (38), CAP_BPF (39). */
const CAP_EFF = '000000c000003000';
const ports = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
/** Probes are answered within a few intervals (10 s by default); what the agents do is awaited with a generous bound. */
const PROBE_WAIT_MS = 120_000;
const POLL_MS = 500;

describe('lab: traffic through agents holding only their DaemonSet\'s capabilities', () => {
  let lab: Lab;
  before(async () => {
    if (process.getuid?.() !== 0) return;
    lab = await Lab.up({ routing: 'static' });
    lab.writeVips(labVips(lab));
    for (const b of lab.balancers) await lab.startAgent(b, [], AS_DAEMONSET);
  });
  after(async () => {
    await lab?.down();
  });

  const connect = (vip: string, count: number) => lab.clientRun<ConnectResult>({ mode: 'connect', vip, port: 80, count, concurrency: 8 });
  const status = (b: Balancer) => readFileSync(`/proc/${b.agent!.pid}/status`, 'utf8');

  test('each agent holds those capabilities and no others, with no_new_privs', (t) => {
    if (!requireKernel(t)) return;
    assert.deepEqual(CAPS, ['BPF', 'PERFMON', 'NET_ADMIN', 'NET_RAW']);
    for (const b of lab.balancers) {
      const s = status(b);
      for (const set of ['CapEff', 'CapPrm', 'CapBnd']) assert.match(s, new RegExp(`^${set}:\\s*${CAP_EFF}$`, 'm'), `${b.name} ${set}`);
      assert.match(s, /^NoNewPrivs:\s*1$/m, b.name);
    }
  });

  test('TCP to every VIP family and UDP: all answered, by every real, through both balancers', async (t) => {
    if (!requireKernel(t)) return;
    const r = await connect(VIP4, 300);
    assert.equal(r.failures, 0, `failed: ${r.errors.join(', ')}`);
    assert.deepEqual(Object.keys(r.byReal).sort(), ['real1', 'real2', 'real3']);
    for (const vip of [VIP6, VIP4_V6REALS]) {
      const c = await connect(vip, 90);
      assert.equal(c.failures, 0, `${vip}: ${c.errors.join(', ')}`);
      assert.equal(Object.keys(c.byReal).length, 3, `${vip} spread: ${JSON.stringify(c.byReal)}`);
    }
    for (const vip of [VIP4, VIP6]) {
      const u = await lab.clientRun<UdpResult>({ mode: 'udp', vip, port: 53, sourcePorts: ports(41000, 60) });
      assert.equal(u.failures, 0, `${vip} UDP: ${u.errors.join(', ')}`);
      assert.equal(new Set(Object.values(u.byPort)).size, 3);
    }
    for (const b of lab.balancers) {
      assert.ok(sample(await lab.metrics(b), 'xdplb_vip_packets_total', { vip: `${VIP4}:80/TCP` }) > 0, `${b.name} took part (ECMP)`);
    }
  });

  test('the health probes (packet sockets: CAP_NET_RAW) are sent and answered', async (t) => {
    if (!requireKernel(t)) return;
    for (const b of lab.balancers) {
      const deadline = Date.now() + PROBE_WAIT_MS;
      for (;;) {
        const m = await lab.metrics(b);
        if (sample(m, 'xdplb_health_probes_total', { result: 'success' }) > 0) break;
        if (Date.now() > deadline) assert.fail(`${b.name}: no probe answered within ${PROBE_WAIT_MS} ms:\n${b.log.slice(-10).join('\n')}`);
        await sleep(POLL_MS);
      }
      assert.equal(sample(await lab.metrics(b), 'xdplb_health_probes_total', { result: 'not_sent' }), 0, b.name);
      assert.ok(!b.log.some((l) => l.includes('cannot open the health probe sockets')), b.name);
    }
  });

  test('an agent restarted under the same capabilities adopts its pins, takes the program over, and the traffic goes on', async (t) => {
    if (!requireKernel(t)) return;
    const b = lab.balancers[0]!;
    await lab.stopAgent(b);
    b.log.length = 0;
    await lab.startAgent(b, [], AS_DAEMONSET);
    const deadline = Date.now() + PROBE_WAIT_MS;
    while (!b.log.some((l) => l.includes('took over the attached program'))) {
      if (Date.now() > deadline) assert.fail(`${b.name} did not take its program over:\n${b.log.slice(-10).join('\n')}`);
      await sleep(POLL_MS);
    }
    const r = await connect(VIP4, 150);
    assert.equal(r.failures, 0, `failed: ${r.errors.join(', ')}`);
    assert.ok(sample(await lab.metrics(b), 'xdplb_vip_packets_total', { vip: `${VIP4}:80/TCP` }) > 0, `${b.name} forwards again`);
  });
});
