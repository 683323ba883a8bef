/**
 * Faults of the balancer node's network, under traffic: the node's IPv4
 * source address lost for a while (the agent keeps encapsulating with the
 * last good one, reports it, and takes the address back, changed or not, with
 * no VIP event), and its NIC deleted and created again (the agent puts the
 * program back and is not ready in between).
 *
 * Static routing to lb1 alone: every packet of the test goes through the node
 * under test, and no BGP session depends on the address the test removes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireKernel } from '../support/kernel.js';
import { type Samples, sample } from '../support/prometheus.js';
import { type Balancer, Lab, labVips, VIP4 } from './lab.js';
import { type ConnectResult, type ContinuousResult } from './client-results.js';

interface ProbeResult {
  at: number | null;
  attempts: number;
  error?: string;
}

const CLIENT = fileURLToPath(new URL('./programs/client.js', import.meta.url));

/** How long the address stays away: longer than two of the agent's 2-s polls, so it must notice. */
const ADDRESS_LOSS_MS = 5000;
/** Traffic runs on its own a while before and after the fault, so both edges happen under load. */
const LEAD_MS = 1500;
const TRAFFIC_MS = LEAD_MS + ADDRESS_LOSS_MS + 4000;
/** What the agent must notice within (its poll is 2 s): generous, for a loaded CI machine. */
const NOTICE_TIMEOUT_MS = 30_000;
const WATCH_MS = 200;
const PROBE_INTERVAL_MS = 20;
const CHECK_CONNECTIONS = 100;
const SUBNET_V4_PREFIX = 24;
/** An address of lb1's subnet no node has: the node's address after it changed. */
const CHANGED_V4 = '198.18.21.3';
/** An extra VIP with IPv6 reals only: a VIP event during the loss that must not take the IPv4 VIPs with it. */
const EXTRA_VIP6 = { name: 'extra6', address: '2001:db8:19::20', ports: [{ port: 80, protocol: 'TCP' as const }] };

describe('lab: faults of the balancer node\'s network', () => {
  let lab: Lab;
  let lb1: Balancer;
  before(async () => {
    if (process.getuid?.() !== 0) return;
    ({ lab, lb1 } = await Lab.upThroughFirstBalancer());
  });
  after(async () => {
    await lab?.down();
  });

  const metricsWhen = async (what: string, ok: (m: Samples) => boolean): Promise<Samples> => {
    const deadline = Date.now() + NOTICE_TIMEOUT_MS;
    for (;;) {
      const m = await lab.metrics(lb1);
      if (ok(m)) return m;
      if (Date.now() > deadline) throw new Error(`timed out after ${NOTICE_TIMEOUT_MS} ms waiting for ${what}:\n${lb1.log.slice(-10).join('\n')}`);
      await sleep(WATCH_MS);
    }
  };
  const stale = (m: Samples, setting: string) => sample(m, 'xdplb_encap_setting_stale', { setting });
  const sourceV4 = (m: Samples) => [...m.keys()].find((k) => k.startsWith('xdplb_encap_info{'))?.match(/source_v4="([^"]*)"/)?.[1];
  /** The agent's /readyz: its status and why. */
  const readyz = () => lab.httpGet(lb1, '/readyz').then((text) => ({ ready: true, text }), (err: Error) => ({ ready: false, text: err.message }));
  const replaceV4 = (from: string, to: string) => {
    lab.ip(lb1.ns, 'addr', 'del', `${from}/${SUBNET_V4_PREFIX}`, 'dev', 'eth0');
    lab.ip(lb1.ns, 'addr', 'add', `${to}/${SUBNET_V4_PREFIX}`, 'dev', 'eth0');
    // The default route left with the address, as it does on a host whose address is renewed: put back, as DHCP would.
    lab.ip(lb1.ns, 'route', 'replace', 'default', 'via', lb1.gatewayV4);
  };

  test('the IPv4 source address gone for 5 s: no VIP removed, no connection fails, a VIP event still applies; loss and return reported once', async (t) => {
    if (!requireKernel(t)) return;
    // Without its address the node answers no ARP for it: the router keeps its MAC, as it would for a node it reaches by another address.
    const mac = (JSON.parse(lab.ip(lb1.ns, '-j', 'link', 'show', 'dev', 'eth0')) as { address: string }[])[0]!.address;
    lab.ip(lab.router, 'neigh', 'replace', lb1.v4, 'lladdr', mac, 'dev', lb1.name, 'nud', 'permanent');
    const vipsBefore = sample(await lab.metrics(lb1), 'xdplb_vips');
    const traffic = lab.clientRun<ContinuousResult>({ mode: 'continuous', vip: VIP4, port: 80, durationMs: TRAFFIC_MS });
    await sleep(LEAD_MS);

    lab.ip(lb1.ns, 'addr', 'del', `${lb1.v4}/${SUBNET_V4_PREFIX}`, 'dev', 'eth0');
    const removedAt = Date.now();
    const lost = await metricsWhen('source_v4 reported stale', (m) => stale(m, 'source_v4') === 1);
    assert.equal(sample(lost, 'xdplb_vips'), vipsBefore, 'no VIP removed');
    assert.equal(sourceV4(lost), lb1.v4, 'the last good address stays programmed');
    // A VIP event while the address is gone: programmed beside the IPv4 VIPs, which need the kept address.
    await lab.applyVips([...labVips(lab), { ...EXTRA_VIP6, reals: lab.reals.map((r) => ({ address: r.v6, weight: 1 })) }]);
    await metricsWhen('the extra VIP programmed', (m) => sample(m, 'xdplb_vips') === vipsBefore + 1);
    await sleep(Math.max(0, ADDRESS_LOSS_MS - (Date.now() - removedAt)));

    lab.ip(lb1.ns, 'addr', 'add', `${lb1.v4}/${SUBNET_V4_PREFIX}`, 'dev', 'eth0');
    lab.ip(lb1.ns, 'route', 'replace', 'default', 'via', lb1.gatewayV4);
    const back = await metricsWhen('source_v4 back', (m) => stale(m, 'source_v4') === 0);
    assert.equal(sample(back, 'xdplb_vips'), vipsBefore + 1, 'still every VIP');
    const c = await traffic;
    assert.equal(c.failures, 0, `failed: ${c.errors.join(', ')}`);
    assert.ok(c.ok > 0, 'connections were made');
    t.diagnostic(`continuous traffic across the loss: ${c.ok} connections, ${c.failures} failed`);
    const count = (text: string) => lb1.log.filter((l) => l.includes(text)).length;
    assert.equal(count('IPv4 source address lost'), 1, 'the loss logged once');
    assert.equal(count('IPv4 source address is back'), 1, 'the return logged once');
    await lab.applyVips(labVips(lab));
  });

  test('a changed IPv4 address is programmed without any VIP event, and traffic goes on', async (t) => {
    if (!requireKernel(t)) return;
    replaceV4(lb1.v4, CHANGED_V4);
    try {
      await metricsWhen(`source_v4 ${CHANGED_V4} programmed`, (m) => sourceV4(m) === CHANGED_V4);
      const r = await lab.clientRun<ConnectResult>({ mode: 'connect', vip: VIP4, port: 80, count: CHECK_CONNECTIONS, concurrency: 8 });
      assert.equal(r.failures, 0, `failed: ${r.errors.join(', ')}`);
    } finally {
      replaceV4(CHANGED_V4, lb1.v4);
    }
    await metricsWhen(`source_v4 ${lb1.v4} programmed again`, (m) => sourceV4(m) === lb1.v4);
  });

  test('the NIC deleted and created again: not ready while it is missing, the program goes back on, traffic is served', async (t) => {
    if (!requireKernel(t)) return;
    lab.deleteNic(lb1);
    const deadline = Date.now() + NOTICE_TIMEOUT_MS;
    let missing = await readyz();
    while (!missing.text.includes('eth0 is missing') && Date.now() < deadline) {
      await sleep(WATCH_MS);
      missing = await readyz();
    }
    assert.equal(missing.ready, false, '/readyz fails while the NIC is missing');
    assert.match(missing.text, /eth0 is missing/);
    assert.equal(sample(await lab.metrics(lb1), 'xdplb_xdp_attached'), 0);

    await lab.restoreNic(lb1);
    lab.routeVia([lb1]); // the router's routes left with its side of the veth
    const restoredAt = Date.now();
    // The probe prints "started" before its result: its last line is the JSON.
    const probe = lab.runNode(lab.client, CLIENT, [JSON.stringify({ mode: 'probe', vip: VIP4, port: 80, durationMs: NOTICE_TIMEOUT_MS, intervalMs: PROBE_INTERVAL_MS })])
      .then((out) => JSON.parse(out.trim().split('\n').at(-1)!) as ProbeResult, (err: Error) => ({ at: null, attempts: 0, error: err.message }));
    let readyAt: number | null = null;
    while (readyAt === null && Date.now() < restoredAt + NOTICE_TIMEOUT_MS) {
      if ((await readyz()).ready) readyAt = Date.now();
      else await sleep(WATCH_MS / 2);
    }
    const served = await probe;
    assert.ok(readyAt !== null, `/readyz ready again within ${NOTICE_TIMEOUT_MS} ms:\n${lb1.log.slice(-10).join('\n')}`);
    assert.ok(served.at !== null, `the VIP answers again within ${NOTICE_TIMEOUT_MS} ms ${served.error ?? ''}`);
    t.diagnostic(`NIC re-created: ready after ${readyAt - restoredAt} ms, first connection served after ${served.at - restoredAt} ms`);
    const m = await lab.metrics(lb1);
    assert.equal(sample(m, 'xdplb_xdp_attached'), 1);
    assert.equal(sample(m, 'xdplb_xdp_reattaches_total'), 1);
    const r = await lab.clientRun<ConnectResult>({ mode: 'connect', vip: VIP4, port: 80, count: CHECK_CONNECTIONS, concurrency: 8 });
    assert.equal(r.failures, 0, `failed: ${r.errors.join(', ')}`);
    assert.ok(lb1.log.some((l) => l.includes('program back on the re-created NIC')), 'the agent said so');
  });
});
