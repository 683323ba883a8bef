/**
 * A flood of spoofed SYNs, ten times the connection table, through a lab
 * balancer: established connections keep their reals even when the ring
 * changes after the flood, and new connections made during the flood succeed.
 * The flood comes from hping3 in the client's namespace, from an address that
 * does not exist (the reals' SYN-ACKs go nowhere, as a spoofed flood's do).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireKernel } from '../support/kernel.js';
import { sample } from '../support/prometheus.js';
import { type ConnectResult, type LongResult } from './client-results.js';
import { Lab, labVips, VIP4 } from './lab.js';

/** The balancers' connection table: small, so that ten times it is a flood a test can send. */
const CONNECTION_TABLE = 2048;
const FLOOD_SYNS = 10 * CONNECTION_TABLE + 4096;
/** A source no namespace has: nobody answers the reals' SYN-ACKs, and the flood's flows never leave SYN. */
const SPOOFED_SOURCE = '198.18.200.1';
/** hping3 counts the source port up from here, one per SYN: FLOOD_SYNS distinct flows. */
const FLOOD_FIRST_PORT = 1024;
const FLOOD_INTERVAL = 'u20';
const LONG_LIVED = 40;
/** Idle through the flood, as most long-lived connections are most of the time: an LRU keeps busy flows anyway. */
const LONG_INTERVAL_MS = 10_000;
/** After the greeting, lines at 10 and 20 s: the flood and the ring change fall before the first. */
const LONG_DURATION_MS = 25_000;
const LONG_MESSAGES = 2;
const FLOOD_TIMEOUT_MS = 120_000;

/** Runs hping3 in a namespace; resolves with its exit code and output. */
function hping(lab: Lab, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=/var/run/netns/${lab.client}`, 'hping3', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGINT'), FLOOD_TIMEOUT_MS);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('lab: a spoofed SYN flood', () => {
  let lab: Lab;
  before(async () => {
    if (process.getuid?.() !== 0) return;
    lab = await Lab.up({ routing: 'static' });
    // Two of the three reals now; the third joins after the flood and moves a third of the ring.
    lab.writeVips(labVips(lab, (r) => r.name !== 'real3'));
    const [lb1] = lab.balancers;
    await lab.startAgent(lb1!, ['--connection-table', String(CONNECTION_TABLE)]);
    lab.routeVia([lb1!]); // every packet through the node whose table is flooded
  });
  after(async () => {
    await lab?.down();
  });

  test(`established connections keep their reals through ${FLOOD_SYNS} spoofed SYNs and a ring change; new ones succeed`, async (t) => {
    if (!requireKernel(t)) return;
    const [lb1] = lab.balancers;
    const longs = Array.from({ length: LONG_LIVED }, () =>
      lab.clientRun<LongResult>({ mode: 'long', vip: VIP4, port: 80, durationMs: LONG_DURATION_MS, intervalMs: LONG_INTERVAL_MS }));
    await sleep(1000); // connected: each has had its greeting

    const synsBefore = sample(await lab.metrics(lb1!), 'xdplb_packets_total', { verdict: 'tx', reason: 'tx_encap' });
    const flood = hping(lab, ['-S', '-p', '80', '-a', SPOOFED_SOURCE, '-s', String(FLOOD_FIRST_PORT), '-i', FLOOD_INTERVAL,
      '-c', String(FLOOD_SYNS), '-q', VIP4]);
    const during = lab.clientRun<ConnectResult>({ mode: 'connect', vip: VIP4, port: 80, count: 300, concurrency: 8 });
    const f = await flood;
    const fresh = await during;
    const encapsulated = sample(await lab.metrics(lb1!), 'xdplb_packets_total', { verdict: 'tx', reason: 'tx_encap' }) - synsBefore;
    assert.ok(encapsulated >= FLOOD_SYNS, `the balancer sent on ${encapsulated} packets, fewer than the flood's ${FLOOD_SYNS}: ${f.output}`);

    await lab.applyVips(labVips(lab));
    const results = await Promise.all(longs);
    const broken = results.filter((r) => r.error !== '' || r.received < r.sent || r.sent < LONG_MESSAGES);
    t.diagnostic(`long-lived: ${LONG_LIVED - broken.length}/${LONG_LIVED} survived; new during the flood: ${300 - fresh.failures}/300`);
    assert.deepEqual(broken.map((r) => `${r.real} ${r.sent}/${r.received} ${r.error}`), [], 'long-lived connections that broke');
    assert.equal(fresh.failures, 0, `new connections during the flood failed: ${fresh.errors.slice(0, 5).join(', ')}`);
  });
});
