/**
 * Balancer settings changed by a new agent, as a rollout does: an xdpMode
 * change under continuous traffic (the old program off, the new one on in the
 * other mode: the gap is measured and reported with the connections that
 * failed), and a nic change (the program the previous agent left on the old
 * NIC comes off, it goes on the new one).
 *
 * Static routing to lb1 alone, so every packet goes through the node whose
 * agent changes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BALANCER_PROGRAM } from '../../src/bpf/consts.js';
import { requireKernel } from '../support/kernel.js';
import { type Balancer, Lab, VIP4 } from './lab.js';
import { type ContinuousResult } from './client-results.js';

/** Traffic runs on its own a while before and after the change, so both edges happen under load. */
const LEAD_MS = 1500;
const TRAFFIC_MS = 8000;
const OLD_NIC = 'old0';

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
});
