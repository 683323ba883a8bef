/**
 * Balancer settings changed by a new agent, as a rollout does: an xdpMode
 * change under continuous traffic (the old program off, the new one on in the
 * other mode: the gap is measured and reported with the connections that
 * failed), a nic change (the program the previous agent left on the old
 * NIC comes off, it goes on the new one), and a capacities change rolled
 * through both nodes (new maps beside the old ones, the connection table
 * copied, the program swapped).
 *
 * Static routing to lb1 alone, so every packet goes through the node whose
 * agent changes; the capacities change routes to both nodes (ECMP).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BALANCER_PROGRAM } from '../../src/bpf/consts.js';
import { pinnedMapInfo } from '../../src/libbpf/map-info.js';
import type { CapacityChangeResult } from '../../src/agent/capacities/capacity-change.js';
import { requireKernel } from '../support/kernel.js';
import { sample } from '../support/prometheus.js';
import { type Balancer, Lab, type LabReal, labVips, VIP4 } from './lab.js';
import { type ContinuousResult, LONG_LIVED_MIN_MESSAGES, type LongResult } from './client-results.js';

/** Traffic runs on its own a while before and after the change, so both edges happen under load. */
const LEAD_MS = 1500;
const TRAFFIC_MS = 8000;
const OLD_NIC = 'old0';
/** What the capacities change gives the new agents (the lab starts them with 512 VIPs, 4095 reals, 65536 connections). */
const NEW_CAPACITIES = { vips: 16, reals: 64, connectionTable: 131072 };
const CAPACITY_ARGS = ['--max-vips', String(NEW_CAPACITIES.vips), '--max-reals', String(NEW_CAPACITIES.reals),
  '--connection-table', String(NEW_CAPACITIES.connectionTable)];
/** Connections opened before the change and kept open through it (2^-16: none lands on the real that drains). */
const LONG_LIVED = 16;
/** Long-lived connections come up within seconds; generous, for a loaded machine. */
const ESTABLISHED_TIMEOUT_MS = 60_000;

describe('lab: settings changed by a new agent', () => {
  let lab: Lab;
  let lb1: Balancer;
  before(async () => {
    if (process.getuid?.() !== 0) return;
    ({ lab, lb1 } = await Lab.upThroughFirstBalancer());
  });
  after(async () => {
    await lab?.down();
  });

  /** The XDP mode of the program on a link of lb1, or null: `ip link` says xdpgeneric or xdp(drv). */
  const modeOn = (dev: string) => {
    const text = lab.ip(lb1.ns, '-d', 'link', 'show', 'dev', dev);
    return /xdpgeneric/.test(text) ? 'generic' : /prog\/xdp/.test(text) ? 'native' : null;
  };

  test('xdpMode changed: the program changes mode with a gap the agent measures; traffic goes on', async (t) => {
    if (!requireKernel(t)) return;
    const before = modeOn('eth0');
    assert.ok(before, 'the program is on eth0');
    const next = before === 'native' ? 'generic' : 'native';
    const traffic = lab.clientRun<ContinuousResult>({ mode: 'continuous', vip: VIP4, port: 80, durationMs: TRAFFIC_MS });
    await sleep(LEAD_MS);
    await lab.stopAgent(lb1, 'SIGTERM'); // a rollout: the program stays
    await lab.startAgent(lb1, ['--xdp-mode', next]);
    const c = await traffic;
    assert.equal(modeOn('eth0'), next);
    const line = lb1.log.find((l) => l.includes('changed XDP mode'));
    assert.ok(line, 'the agent logged the mode change');
    const { gapMicros, from } = JSON.parse(line!) as { gapMicros: number; from: string };
    assert.equal(from, before);
    t.diagnostic(`${before} -> ${next}: no program on the NIC for ${gapMicros} µs; continuous traffic: ${c.ok} connections, ${c.failures} failed`);
    assert.ok(c.ok > 0);
    const after = await lab.clientRun<ContinuousResult>({ mode: 'continuous', vip: VIP4, port: 80, durationMs: LEAD_MS });
    assert.equal(after.failures, 0, `after the change: ${after.errors.join(', ')}`);
  });

  test('nic changed: the program the previous agent left on the old NIC comes off; it is on the new one', async (t) => {
    if (!requireKernel(t)) return;
    // The old NIC: a link of lb1 carrying this balancer's pinned program, as the previous agent (--nic old0) left it.
    lab.ip(lb1.ns, 'link', 'add', OLD_NIC, 'type', 'veth', 'peer', 'name', `${OLD_NIC}p`);
    try {
      lab.ip(lb1.ns, 'link', 'set', 'dev', OLD_NIC, 'up');
      lab.nsenterIp(lb1.ns, 'link', 'set', 'dev', OLD_NIC, 'xdpgeneric', 'pinned', `${lb1.pinDir}/${BALANCER_PROGRAM}_prog`);
      assert.equal(modeOn(OLD_NIC), 'generic');
      await lab.stopAgent(lb1, 'SIGTERM');
      await lab.startAgent(lb1);
      assert.equal(modeOn(OLD_NIC), null, 'detached from the old NIC');
      assert.ok(modeOn('eth0'), 'on the new one');
      assert.ok(lb1.log.some((l) => l.includes('nic changed: detached from the old NIC') && l.includes(`"from":"${OLD_NIC}"`)));
      const c = await lab.clientRun<ContinuousResult>({ mode: 'continuous', vip: VIP4, port: 80, durationMs: LEAD_MS });
      assert.equal(c.failures, 0, c.errors.join(', '));
    } finally {
      lab.ip(lb1.ns, 'link', 'del', OLD_NIC);
    }
  });

  /** The id of the XDP program on a balancer's eth0, or 0. */
  const programOn = (b: Balancer) =>
    (JSON.parse(lab.ip(b.ns, '-j', 'link', 'show', 'dev', 'eth0')) as { xdp?: { prog?: { id: number } } }[])[0]?.xdp?.prog?.id ?? 0;

  /** TCP connections a real has established on port 80. */
  const establishedOn = (r: LabReal) =>
    execFileSync('ip', ['netns', 'exec', r.ns, 'ss', '-Htn', 'state', 'established', '( sport = :80 )'], { encoding: 'utf8' })
      .split('\n').filter(Boolean).length;

  test('capacities changed, rolled through both nodes: new maps swapped in, the connection table copied; no connection lost', async (t) => {
    if (!requireKernel(t)) return;
    const lb2 = lab.balancers[1]!;
    const [real1, real2] = lab.reals;
    const stopFile = join(lab.workDir, 'stop-capacities-traffic');
    const traffic: Promise<unknown>[] = [];
    try {
      await lab.startAgent(lb2);
      lab.routeVia([lb1, lb2]);
      // Long-lived connections through both nodes and to both reals; then real1 drains: new flows go to real2 only,
      // so real1's connections reach it after the change only if the connection table was copied (the rings no longer name it).
      const longs = Array.from({ length: LONG_LIVED }, () =>
        lab.clientRun<LongResult>({ mode: 'long', vip: VIP4, port: 80, intervalMs: 50, stopFile }));
      traffic.push(...longs);
      const deadline = Date.now() + ESTABLISHED_TIMEOUT_MS;
      while (establishedOn(real1!) + establishedOn(real2!) < LONG_LIVED) {
        assert.ok(Date.now() < deadline, `long-lived connections not established after ${ESTABLISHED_TIMEOUT_MS} ms`);
        await sleep(100);
      }
      const onReal1 = establishedOn(real1!);
      assert.ok(onReal1 > 0, 'no long-lived connection on real1');
      await lab.applyVips(labVips(lab).map((v) => ({ ...v, reals: v.reals.map((r) => ({ ...r, weight: r.address === real1!.v4 ? 0 : 1 })) })));
      const continuous = lab.clientRun<ContinuousResult>({ mode: 'continuous', vip: VIP4, port: 80, stopFile });
      traffic.push(continuous);
      const tcpBefore = lab.clientTcp();
      await sleep(LEAD_MS);

      const changed: { node: string; result: CapacityChangeResult & { ms: number }; restartMs: number }[] = [];
      for (const b of [lb1, lb2]) {
        const before = programOn(b);
        const logFrom = b.log.length;
        const stopped = Date.now();
        await lab.stopAgent(b, 'SIGTERM'); // a rollout: the program stays
        await lab.startAgent(b, CAPACITY_ARGS);
        const restartMs = Date.now() - stopped;
        const line = b.log.slice(logFrom).find((l) => l.includes('map layout changed'));
        assert.ok(line, `${b.name}: the agent logged the change`);
        const result = JSON.parse(line!) as CapacityChangeResult & { ms: number };
        changed.push({ node: b.name, result, restartMs });
        assert.equal(result.replaced, before);
        assert.equal(programOn(b), result.program, `${b.name}: the new program is on eth0`);
        assert.notEqual(result.program, before);
        const pinned = (map: string) => pinnedMapInfo(join(b.pinDir, map))?.maxEntries;
        assert.equal(pinned('vip_map'), NEW_CAPACITIES.vips);
        assert.equal(pinned('reals'), NEW_CAPACITIES.reals + 1);
        assert.equal(pinned('conn_table'), NEW_CAPACITIES.connectionTable);
        assert.equal(existsSync(`${b.pinDir}_staging`), false, `${b.name}: no staging directory left`);
        const c = result.connections;
        assert.ok(c.copied > 0, `${b.name}: no connection copied`);
        assert.equal(c.droppedRealGone + c.droppedTableFull + c.droppedUnreadable, 0, `${b.name}: ${JSON.stringify(c)}`);
        const m = await lab.metrics(b);
        assert.equal(sample(m, 'xdplb_capacity_change_connections_total', { result: 'copied' }), c.copied);
        assert.equal(sample(m, 'xdplb_vips_capacity'), NEW_CAPACITIES.vips);
        assert.equal(sample(m, 'xdplb_connection_table_capacity'), NEW_CAPACITIES.connectionTable);
      }
      await sleep(LEAD_MS);
      writeFileSync(stopFile, '');
      const [c, ...l] = await Promise.all([continuous, ...longs]);
      const tcpAfter = lab.clientTcp();
      for (const { node, result, restartMs } of changed) {
        t.diagnostic(`${node}: ${JSON.stringify(result.from)} -> ${JSON.stringify(result.to)}; ${result.connections.copied} connection entries copied ` +
          `(${result.connections.copiedAfterSwap} made during the swap), ${result.connections.droppedRealGone + result.connections.droppedTableFull} dropped; ` +
          `the change took ${result.ms} ms in the agent, ${restartMs} ms from SIGTERM to the new agent ready`);
      }
      t.diagnostic(`continuous traffic: ${c!.ok} connections, ${c!.failures} failed; ${LONG_LIVED} long-lived connections (${onReal1} on the draining real1): ` +
        `${l.filter((r) => r.error === '' && r.received >= r.sent - 1).length} unbroken, ${l.reduce((n, r) => n + r.sent, 0)} messages; ` +
        `the client retransmitted ${tcpAfter.synRetrans - tcpBefore.synRetrans} SYNs and ${tcpAfter.retransSegs - tcpBefore.retransSegs} segments`);
      assert.equal(c!.failures, 0, `new connections failed: ${c!.errors.join(', ')}`);
      assert.ok(c!.ok > 0);
      assert.ok(l.some((r) => r.real === 'real1'));
      for (const r of l) {
        assert.equal(r.error, '', `a long-lived connection to ${r.real} broke: ${r.error}`);
        assert.ok(r.received >= r.sent - 1 && r.sent >= LONG_LIVED_MIN_MESSAGES, `long-lived connection to ${r.real}: ${r.received}/${r.sent}`);
      }
    } finally {
      writeFileSync(stopFile, '');
      await Promise.allSettled(traffic);
      rmSync(stopFile, { force: true });
      lab.routeVia([lb1]);
      await lab.applyVips(labVips(lab)).catch((err: Error) => t.diagnostic(`VIPs not restored: ${err.message}`));
    }
  });
});
