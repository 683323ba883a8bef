/**
 * A balancer node dies while its link to the router stays up (a hung kernel,
 * a machine cut off behind a switch port that stays up): no interface goes
 * down, so the router learns of it only from the node's silence on its BGP
 * sessions: by BFD within multiplier x interval when both ends run it, else
 * when the BGP hold timer runs out.
 *
 * Made here by dropping every packet into and out of lb1's namespace
 * (nftables: netdev ingress and inet output), killing its agent and BIRD
 * (their sockets close unheard: no FIN, no ICMP) and detaching its XDP
 * program, which sees packets before nftables and would go on serving. The
 * router runs BFD (300 ms x 3, spec.bgp.bfd's defaults) and offers a 9 s
 * hold time. Measured under continuous traffic and long-lived connections:
 * the time until the router's kernel routes to the VIPs no longer go via lb1,
 * and the connections that failed meanwhile; first with BFD on both ends,
 * then with lb1's agent running no BFD (the hold timer). Until the route
 * moves, a new flow the router hashes to lb1 is lost (its SYN retried on lb1
 * at 1 and 3 s, when the client gives up); a long-lived one stalls and goes
 * on through lb2, whose identical rings pick the same real.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseBfdSessions } from '../../src/agent/announce/bird-status.js';
import { BIRD_CONFIG_NAME } from '../../src/api/xdpbalancer.js';
import { sample } from '../support/prometheus.js';
import { type ContinuousResult, LONG_LIVED_MIN_MESSAGES, type LongResult } from './client-results.js';
import { type Balancer, Lab, labVips, ROUTES_TIMEOUT_MS, sameSessions, VIP4, VIP4_V6REALS, VIP6 } from './lab.js';
import { birdAvailable, requireBird } from './require-bird.js';
import { ROUTER_BFD_PROTOCOL } from './router-bird.js';

/** The hold time the lab router offers: what a node without BFD is dropped after, at the latest. */
const HOLD_SECONDS = 9;
/** Traffic runs this long before the death and after the routes moved. */
const LEAD_MS = 1500;
const WATCH_MS = 10;
const POLL_MS = 200;
/** Back-to-back connections, from this many clients at once (a SYN lost to the dead node holds its client up to 3 s). */
const CONTINUOUS_CLIENTS = 2;
const LONG_LIVED = 8;
const DEAD_TABLE = 'xdplb_lab_dead';
/** Every packet into and out of a node's namespace dropped; XDP runs before these hooks and is detached apart. */
const SILENCE = `table netdev ${DEAD_TABLE} {
  chain in {
    type filter hook ingress device "eth0" priority 0; policy drop;
  }
}
table inet ${DEAD_TABLE} {
  chain out {
    type filter hook output priority 0; policy drop;
  }
}
`;

type Family = 'v4' | 'v6';
const FAMILIES: [Family, string][] = [['v4', VIP4], ['v6', VIP6]];

interface Death {
  /** ms from the death until the router's route to the VIP no longer went via the node, per family. */
  goneMs: Record<Family, number>;
  /** The router's session with the node then (BIRD's state and last error). */
  info: Record<Family, string>;
  continuous: ContinuousResult;
  longs: LongResult[];
  synRetrans: number;
}

describe('lab: a balancer node dies while its link stays up', () => {
  let lab: Lab;
  before(async () => {
    if (!birdAvailable()) return;
    lab = await Lab.upServing({ bfd: {}, holdSeconds: HOLD_SECONDS });
    // No new flow hash on a retransmission timeout: the router's ECMP uses the hash the client's socket gave its packets
    // (veth keeps it), so a SYN or segment lost to the dead node would otherwise be retried on a fresh 50% chance of the
    // live one, where a router hashing the IPv4 headers retries it on the same dead node until the route moves.
    execFileSync('ip', ['netns', 'exec', lab.client, 'sysctl', '-qw', 'net.core.txrehash=0']);
  });
  after(async () => {
    await lab?.down();
  });

  const nft = (b: Balancer, args: string[], input?: string) =>
    execFileSync('ip', ['netns', 'exec', b.ns, 'nft', ...args], { input, stdio: ['pipe', 'pipe', 'pipe'], encoding: 'utf8' });
  /** The router's BFD sessions, address -> Up, Down, Init (birdc prints the reply without its codes; every line of it is 1020). */
  const routerBfd = () =>
    parseBfdSessions(lab.routerBirdc('show', 'bfd', 'sessions').split('\n').map((text) => ({ code: 1020, text })), ROUTER_BFD_PROTOCOL);
  /** BIRD's Info column for the router's session with a node: state and last error. */
  const sessionInfo = (b: Balancer, family: Family) =>
    lab.routerBirdc('show', 'protocols', `${b.name}_${family}`).trim().split('\n').at(-1)!.trim().split(/\s+/).slice(5).join(' ');
  const hop = (b: Balancer, family: Family) => (family === 'v4' ? b.v4 : b.v6);

  const until = async (what: string, ok: () => boolean | Promise<boolean>) => {
    const deadline = Date.now() + ROUTES_TIMEOUT_MS;
    while (!(await ok())) {
      assert.ok(Date.now() < deadline, `timed out after ${ROUTES_TIMEOUT_MS} ms waiting for ${what}`);
      await sleep(POLL_MS);
    }
  };

  /** The node falls silent, stops serving, and its agent and BIRD die; returns when it died. */
  const dieSilently = async (b: Balancer): Promise<number> => {
    const died = Date.now();
    nft(b, ['-f', '-'], SILENCE);
    await lab.stopAgent(b, 'SIGKILL');
    await lab.stopBird(b, 'SIGKILL');
    lab.ip(b.ns, 'link', 'set', 'dev', 'eth0', 'xdp', 'off');
    return died;
  };

  /** Brings a node back, whatever state a test left it in; its BIRD starts on the configuration its new agent writes. */
  const revive = async (b: Balancer, agentArgs: string[] = []) => {
    await lab.stopAgent(b, 'SIGKILL');
    await lab.stopBird(b, 'SIGKILL');
    nft(b, ['flush', 'ruleset']);
    rmSync(join(b.birdDir, BIRD_CONFIG_NAME), { force: true });
    await lab.startBgp();
    await lab.startAgent(b, agentArgs);
  };

  /** Kills the node silently under traffic and watches the router until its routes no longer go via the node. */
  const dieUnderTraffic = async (b: Balancer): Promise<Death> => {
    const stopFile = join(lab.workDir, `stop-${b.name}-${Date.now()}`);
    const traffic: Promise<unknown>[] = [];
    try {
      const longs = Array.from({ length: LONG_LIVED }, () => lab.clientRun<LongResult>({ mode: 'long', vip: VIP4, port: 80, intervalMs: 50, stopFile }));
      const continuous = Array.from({ length: CONTINUOUS_CLIENTS }, () =>
        lab.clientRun<ContinuousResult>({ mode: 'continuous', vip: VIP4, port: 80, stopFile }));
      traffic.push(...longs, ...continuous);
      await sleep(LEAD_MS);
      const tcpBefore = lab.clientTcp();
      const died = await dieSilently(b);
      const goneMs: Record<Family, number> = { v4: -1, v6: -1 };
      const info: Record<Family, string> = { v4: '', v6: '' };
      while (goneMs.v4 < 0 || goneMs.v6 < 0) {
        assert.ok(Date.now() - died < ROUTES_TIMEOUT_MS, `the router still routes via the dead ${b.name} after ${ROUTES_TIMEOUT_MS} ms`);
        for (const [family, vip] of FAMILIES) {
          if (goneMs[family] >= 0 || lab.routerNextHops(vip).includes(hop(b, family))) continue;
          goneMs[family] = Date.now() - died;
          info[family] = sessionInfo(b, family);
        }
        await sleep(WATCH_MS);
      }
      await sleep(LEAD_MS);
      writeFileSync(stopFile, '');
      const results = await Promise.all(continuous);
      const sum = (f: (c: ContinuousResult) => number) => results.reduce((n, c) => n + f(c), 0);
      return {
        goneMs,
        info,
        continuous: { ok: sum((c) => c.ok), failures: sum((c) => c.failures), errors: results.flatMap((c) => c.errors) },
        longs: await Promise.all(longs),
        synRetrans: lab.clientTcp().synRetrans - tcpBefore.synRetrans,
      };
    } finally {
      writeFileSync(stopFile, '');
      await Promise.allSettled(traffic);
      rmSync(stopFile, { force: true });
    }
  };

  /** What every death must come to: the other node alone carries the VIPs, serves new connections, and no long-lived one broke. */
  const checkAftermath = async (t: TestContext, dead: Balancer, survivor: Balancer, d: Death, mechanism: string) => {
    const unbroken = d.longs.filter((r) => r.error === '' && r.received >= r.sent - 1 && r.sent >= LONG_LIVED_MIN_MESSAGES);
    t.diagnostic(`${mechanism}: the router's routes via ${dead.name} gone after ${d.goneMs.v4} ms (IPv4) and ${d.goneMs.v6} ms (IPv6); ` +
      `sessions: ${d.info.v4} / ${d.info.v6}; continuous traffic (${CONTINUOUS_CLIENTS} clients): ${d.continuous.ok} connections, ` +
      `${d.continuous.failures} failed${d.continuous.failures ? ` (${[...new Set(d.continuous.errors)].join(', ')})` : ''}, ` +
      `${d.synRetrans} SYNs retransmitted; ${unbroken.length} of ${LONG_LIVED} long-lived connections unbroken`);
    assert.deepEqual(lab.routerNextHops(VIP4), [survivor.v4]);
    assert.deepEqual(lab.routerNextHops(VIP6), [survivor.v6]);
    assert.ok(d.continuous.ok > 0);
    for (const r of d.longs) {
      assert.equal(r.error, '', `a long-lived connection to ${r.real} broke: ${r.error}`);
      assert.ok(r.received >= r.sent - 1 && r.sent >= LONG_LIVED_MIN_MESSAGES, `long-lived connection to ${r.real}: ${r.received}/${r.sent}`);
    }
    const afterwards = await lab.clientRun<ContinuousResult>({ mode: 'continuous', vip: VIP4, port: 80, durationMs: LEAD_MS });
    assert.equal(afterwards.failures, 0, `through the surviving node: ${afterwards.errors.join(', ')}`);
  };

  const bfdUp = () => until('the router\'s BFD sessions with both nodes to come up',
    () => lab.balancers.flatMap((b) => [b.v4, b.v6]).every((a) => routerBfd().get(a) === 'Up'));

  test('BFD comes up with both nodes, their agents report it; a VIP change reloads their BIRD without restarting a BGP or BFD session', async (t) => {
    if (!requireBird(t)) return;
    await bfdUp();
    for (const b of lab.balancers) {
      await until(`${b.name}'s agent to report its BFD sessions up`, async () => {
        const m = await lab.metrics(b);
        return sample(m, 'xdplb_bfd_session_up', { peer: b.gatewayV4 }) === 1 && sample(m, 'xdplb_bfd_session_up', { peer: b.gatewayV6 }) === 1;
      });
    }
    const sessions = lab.routerSessions();
    assert.equal(sessions.length, 8, `4 BGP and 4 BFD sessions: ${JSON.stringify(sessions)}`);
    await lab.applyVips(labVips(lab).filter((v) => v.address !== VIP4_V6REALS));
    await lab.waitForRoutes([VIP4_V6REALS], []);
    await lab.applyVips(labVips(lab));
    await lab.waitForRoutes([VIP4_V6REALS], lab.balancers);
    const after = lab.routerSessions();
    assert.ok(sameSessions(after, sessions), `two reloads restarted no session: ${JSON.stringify(sessions)} -> ${JSON.stringify(after)}`);
  });

  test('with BFD on both ends: the router ends the sessions when BFD goes down and drops its routes; traffic moves to the other node', async (t) => {
    if (!requireBird(t)) return;
    const [lb1, lb2] = lab.balancers as [Balancer, Balancer];
    await bfdUp();
    const d = await dieUnderTraffic(lb1);
    for (const family of ['v4', 'v6'] as const) assert.match(d.info[family], /BFD session down/, `the router's ${family} session ended by BFD`);
    assert.equal(routerBfd().get(lb2.v4), 'Up', 'the other node\'s BFD session stays up');
    await checkAftermath(t, lb1, lb2, d, 'BFD (spec.bgp.bfd: {}, 300 ms x 3)');
  });

  test(`without BFD on the node: the router drops its routes when its ${HOLD_SECONDS} s hold timer runs out`, async (t) => {
    if (!requireBird(t)) return;
    const [lb1, lb2] = lab.balancers as [Balancer, Balancer];
    await revive(lb1, ['--bgp', JSON.stringify({ ...lab.bgpSettings(), bfd: undefined })]); // the last --bgp wins
    assert.notEqual(routerBfd().get(lb1.v4), 'Up', `${lb1.name} runs no BFD`);
    assert.ok(!(await lab.metrics(lb1)).has(`xdplb_bfd_session_up{peer="${lb1.gatewayV4}"}`), 'no BFD metric without spec.bgp.bfd');
    const d = await dieUnderTraffic(lb1);
    for (const family of ['v4', 'v6'] as const) assert.match(d.info[family], /Hold timer expired/, `the router's ${family} session ended by its hold timer`);
    await checkAftermath(t, lb1, lb2, d, `hold timer (${HOLD_SECONDS} s, no BFD)`);
  });
});
