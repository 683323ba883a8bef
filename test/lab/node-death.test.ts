/**
 * A balancer node dies under continuous traffic: every process of its
 * namespace is killed (agent, BIRD) and the namespace deleted, so its link to
 * the router goes down. The router's BIRD drops the node's session and routes
 * at once (a directly connected peer whose interface went down: no hold
 * timer to wait for), and the flows it carried move to the other node, whose
 * identical Maglev rings send them to the same reals. Measured and reported:
 * the time until the router has no route via the dead node, and the
 * connections that failed meanwhile.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContinuousResult } from './client-results.js';
import { type Balancer, Lab, ROUTES_TIMEOUT_MS, VIP4, VIP6 } from './lab.js';
import { birdAvailable, requireBird } from './require-bird.js';

/** Traffic runs before and after the death, so it happens under load. */
const LEAD_MS = 1500;
const TRAFFIC_MS = 8000;
const WATCH_MS = 10;

describe('lab: a balancer node dies', () => {
  let lab: Lab;
  before(async () => {
    if (!birdAvailable()) return;
    lab = await Lab.upServing();
  });
  after(async () => {
    await lab?.down();
  });

  const kill = (b: Balancer) => {
    const pids = execFileSync('ip', ['netns', 'pids', b.ns], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    // The last process gone, deleting the namespace frees it: its veth, and the router's end, go away.
    execFileSync('ip', ['netns', 'del', b.ns]);
  };

  test('its namespace gone: the router drops its routes, traffic moves to the other node', async (t) => {
    if (!requireBird(t)) return;
    const [lb1, lb2] = lab.balancers as [Balancer, Balancer];
    const traffic = lab.clientRun<ContinuousResult>({ mode: 'continuous', vip: VIP4, port: 80, durationMs: TRAFFIC_MS });
    await sleep(LEAD_MS);
    const died = Date.now();
    kill(lb1);
    let gone = -1;
    while (Date.now() - died < ROUTES_TIMEOUT_MS) {
      if (!lab.routerNextHops(VIP4).includes(lb1.v4)) {
        gone = Date.now() - died;
        break;
      }
      await sleep(WATCH_MS);
    }
    assert.ok(gone >= 0, `the router still routes ${VIP4} via the dead node after ${ROUTES_TIMEOUT_MS} ms`);
    assert.deepEqual(lab.routerNextHops(VIP4), [lb2.v4]);
    assert.deepEqual(lab.routerNextHops(VIP6), [lb2.v6]);
    const c = await traffic;
    t.diagnostic(`routes via the dead node gone after ${gone} ms; continuous traffic: ${c.ok} connections, ${c.failures} failed${c.failures ? ` (${c.errors.slice(0, 3).join(', ')})` : ''}`);
    assert.ok(c.ok > 0);
    const afterwards = await lab.clientRun<ContinuousResult>({ mode: 'continuous', vip: VIP4, port: 80, durationMs: LEAD_MS });
    assert.equal(afterwards.failures, 0, `through the surviving node: ${afterwards.errors.join(', ')}`);
  });
});
