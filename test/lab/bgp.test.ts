/**
 * VIPs announced by BGP in the lab: each balancer node's agent programs its
 * VIPs, then announces them through the BIRD beside it; the router learns
 * them from both nodes and routes by ECMP. Checked under continuous traffic:
 * a node withdraws a VIP that leaves it, withdraws everything before its
 * program detaches on SIGTERM (once its forwarded packets stopped), and keeps announcing (and serving) when its
 * agent is killed, since the program stays attached.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Samples, sample } from '../support/prometheus.js';
import { type Balancer, Lab, labVips, ROUTES_TIMEOUT_MS, sameSessions, VIP4, VIP4_V6REALS, VIP6 } from './lab.js';
import { birdAvailable, requireBird } from './require-bird.js';
import { type ContinuousResult } from './client-results.js';

/** Long enough to span a stop and its withdrawal (2 s settle by default) with traffic on both sides of it. */
const TRAFFIC_MS = 8000;
/** Traffic runs on its own a while before a node is stopped, so the stop happens under load. */
const LEAD_MS = 1500;
const WATCH_MS = 20;

describe('lab: VIPs announced by BGP', () => {
  let lab: Lab;
  before(async () => {
    if (!birdAvailable()) return;
    lab = await Lab.upServing();
  });
  after(async () => {
    await lab?.down();
  });

  /** The agent's metrics once `ok` holds (they follow BIRD with a poll's delay). */
  const metricsWhen = async (b: Balancer, ok: (m: Samples) => boolean): Promise<Samples> => {
    const deadline = Date.now() + ROUTES_TIMEOUT_MS;
    let m = await lab.metrics(b);
    while (!ok(m) && Date.now() < deadline) {
      await sleep(WATCH_MS * 10);
      m = await lab.metrics(b);
    }
    return m;
  };
  const xdpOn = (b: Balancer) => lab.ip(b.ns, 'link', 'show', 'dev', 'eth0').includes('prog/xdp');
  const continuous = () => lab.clientRun<ContinuousResult>({ mode: 'continuous', vip: VIP4, port: 80, durationMs: TRAFFIC_MS });

  test('the router learns every VIP from both nodes: two ECMP next hops per /32 and /128; agents export session metrics', async (t) => {
    if (!requireBird(t)) return;
    for (const vip of [VIP4, VIP4_V6REALS]) assert.deepEqual(lab.routerNextHops(vip), lab.balancers.map((b) => b.v4).sort(), vip);
    assert.deepEqual(lab.routerNextHops(VIP6), lab.balancers.map((b) => b.v6).sort(), VIP6);
    const learnt = lab.routerBirdc('show', 'route', 'for', VIP4, 'all');
    assert.match(learnt, /BGP\.as_path: 64512/);
    for (const b of lab.balancers) {
      // The agent reads BIRD's sessions every few seconds: wait for a reading after the sessions came up.
      const m = await metricsWhen(b, (x) => sample(x, 'xdplb_bgp_session_up', { peer: b.gatewayV4 }) === 1 && sample(x, 'xdplb_bgp_session_up', { peer: b.gatewayV6 }) === 1);
      assert.equal(sample(m, 'xdplb_bgp_session_up', { peer: b.gatewayV4 }), 1, `${b.name}'s IPv4 session`);
      assert.equal(sample(m, 'xdplb_bgp_session_up', { peer: b.gatewayV6 }), 1, `${b.name}'s IPv6 session`);
      assert.equal(sample(m, 'xdplb_bgp_announced_prefixes', { peer: b.gatewayV4 }), 2, 'two IPv4 VIPs to the IPv4 peer');
      assert.equal(sample(m, 'xdplb_bgp_announced_prefixes', { peer: b.gatewayV6 }), 1, 'one IPv6 VIP to the IPv6 peer');
      assert.equal(sample(m, 'xdplb_bgp_withdrawn'), 0);
    }
    const r = await lab.clientRun<{ byReal: Record<string, number>; failures: number }>({ mode: 'connect', vip: VIP6, port: 80, count: 200, concurrency: 8 });
    assert.equal(r.failures, 0);
  });

  test('a VIP deleted from the nodes is withdrawn from the router; the sessions stay up', async (t) => {
    if (!requireBird(t)) return;
    const sessions = lab.routerSessions();
    const traffic = continuous();
    await lab.applyVips(labVips(lab).filter((v) => v.address !== VIP4_V6REALS));
    await lab.waitForRoutes([VIP4_V6REALS], []);
    await lab.waitForRoutes([VIP4], lab.balancers);
    const c = await traffic;
    assert.equal(c.failures, 0, c.errors.join(', '));
    const after = lab.routerSessions();
    assert.ok(sameSessions(after, sessions), `a reload restarted no session: ${JSON.stringify(sessions)} -> ${JSON.stringify(after)}`);
    await lab.applyVips(labVips(lab));
    await lab.waitForRoutes([VIP4_V6REALS], lab.balancers);
  });

  test('SIGTERM: the node withdraws its routes before its program detaches; no connection fails', async (t) => {
    if (!requireBird(t)) return;
    const [lb1, lb2] = lab.balancers as [Balancer, Balancer];
    // An agent that detaches on exit: the order of withdrawal and detach is what a removal does.
    await lab.stopAgent(lb1, 'SIGKILL');
    await lab.startAgent(lb1, ['--detach-on-exit']);
    const traffic = continuous();
    await sleep(LEAD_MS);
    let withdrawnWhileAttached: boolean | null = null;
    let watching = true;
    const watch = (async () => {
      while (watching && withdrawnWhileAttached === null) {
        const attached = xdpOn(lb1);
        if (!lab.routerNextHops(VIP4).includes(lb1.v4)) withdrawnWhileAttached = attached;
        else if (!attached) withdrawnWhileAttached = false;
        await sleep(WATCH_MS);
      }
    })();
    await lab.stopAgent(lb1, 'SIGTERM');
    watching = false;
    await watch;
    const c = await traffic;
    assert.equal(withdrawnWhileAttached, true, 'the route via lb1 left the router while lb1 still had its program');
    assert.ok(!xdpOn(lb1), 'then the program detached');
    assert.deepEqual(lab.routerNextHops(VIP4), [lb2.v4], 'lb2 carries the VIP alone');
    assert.equal(c.failures, 0, `failed: ${c.errors.join(', ')}`);
    assert.ok(lb1.log.some((l) => l.includes('VIP routes withdrawn')), 'the agent logged the withdrawal');
    // It detached only once its own forwarded packets had stopped (the router had moved the flows), within drainSeconds.
    const drained = lb1.log.find((l) => l.includes('traffic moved: detaching') || l.includes('detaching anyway'));
    assert.ok(drained?.includes('traffic moved: detaching'), `the agent waited for the traffic to move: ${drained}`);
    await lab.startAgent(lb1);
    await lab.waitForRoutes([VIP4, VIP4_V6REALS, VIP6], lab.balancers);
  });

  test('kill -9 of an agent: its routes and program stay, no connection fails; the next agent keeps announcing', async (t) => {
    if (!requireBird(t)) return;
    const lb2 = lab.balancers[1]!;
    const traffic = continuous();
    await sleep(LEAD_MS);
    await lab.stopAgent(lb2, 'SIGKILL');
    await sleep(LEAD_MS);
    assert.ok(xdpOn(lb2), 'the program stays attached');
    assert.deepEqual(lab.routerNextHops(VIP4), lab.balancers.map((b) => b.v4).sort(), 'BIRD still announces lb2\'s VIPs');
    const c = await traffic;
    assert.equal(c.failures, 0, `failed: ${c.errors.join(', ')}`);
    await lab.startAgent(lb2);
    await lab.waitForRoutes([VIP4, VIP4_V6REALS, VIP6], lab.balancers);
  });

  test('a program detached behind the agent\'s back: the node withdraws its routes; a new agent attaches and announces again', async (t) => {
    if (!requireBird(t)) return;
    const lb1 = lab.balancers[0]!;
    lab.ip(lb1.ns, 'link', 'set', 'dev', 'eth0', 'xdp', 'off');
    await lab.waitForRoutes([VIP4, VIP6], [lab.balancers[1]!]);
    const m = await metricsWhen(lb1, (x) => sample(x, 'xdplb_bgp_withdrawn') === 1);
    assert.equal(sample(m, 'xdplb_bgp_withdrawn'), 1);
    assert.ok(lb1.log.some((l) => l.includes('node unhealthy') && l.includes('nothing is attached')), 'the agent said why');
    await lab.stopAgent(lb1, 'SIGKILL');
    await lab.startAgent(lb1);
    await lab.waitForRoutes([VIP4, VIP4_V6REALS, VIP6], lab.balancers);
  });
});
