/** The prober's runtime on a fake network: a real that answers, refuses or stays silent, and a fake clock. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ETH_HLEN, parseSegment, TCP_ACK, TCP_RST, TCP_SYN } from '../../../src/agent/health/probe-packet.js';
import { type ProbeTarget, Prober } from '../../../src/agent/health/prober.js';
import type { HealthState } from '../../../src/agent/health/thresholds.js';
import { healthTargetKey } from '../../../src/api/health-check.js';

const ENCAP = { srcMac: '02:00:00:00:80:01', nextHopMac: '02:00:00:00:80:02', srcV4: '198.18.80.1', srcV6: '2001:db8:80::1' };
const CHECK = { port: 80, intervalMs: 1000, timeoutMs: 300, unhealthyThreshold: 3, healthyThreshold: 2 };
const IPV4_HLEN = 20;

type Mode = 'answer' | 'refuse' | 'silent';

/** Answers each SYN (the inner packet of an IPIP frame) as a real would, by mode; records RSTs. */
class FakeNet {
  mode: Mode = 'answer';
  queue: Buffer[] = [];
  rsts = 0;
  sent = 0;
  send(frame: Buffer): void {
    this.sent++;
    const inner = frame.subarray(ETH_HLEN + IPV4_HLEN);
    const s = parseSegment(inner)!;
    if (s.flags & TCP_RST) {
      this.rsts++;
      return;
    }
    if (this.mode === 'silent') return;
    const reply = Buffer.from(inner.subarray(0, IPV4_HLEN + 20));
    inner.copy(reply, 12, 16, 20); // source: the VIP
    inner.copy(reply, 16, 12, 16); // destination: the probe's source
    reply.writeUInt16BE(s.dstPort, IPV4_HLEN);
    reply.writeUInt16BE(s.srcPort, IPV4_HLEN + 2);
    reply.writeUInt32BE(12345, IPV4_HLEN + 4);
    reply.writeUInt32BE((s.seq + 1) >>> 0, IPV4_HLEN + 8);
    reply[IPV4_HLEN + 13] = this.mode === 'answer' ? TCP_SYN | TCP_ACK : TCP_RST | TCP_ACK;
    this.queue.push(reply);
  }
  receive(): Buffer[] {
    const q = this.queue;
    this.queue = [];
    return q;
  }
  close(): void {}
}

function setup(targets: ProbeTarget[]) {
  const net = new FakeNet();
  let now = 0;
  const changes: { key: string; state: HealthState }[] = [];
  const prober = new Prober({ io: net, encap: () => ENCAP, now: () => now, random: () => 0.5, onChange: (t, state) => changes.push({ key: t.key, state }) });
  prober.setTargets(targets);
  const advance = (ms: number) => {
    for (const end = now + ms; now < end; now += 20) prober.tick();
  };
  return { net, prober, changes, advance };
}

const target = (real: string, extra: Partial<ProbeTarget> = {}): ProbeTarget =>
  ({ key: healthTargetKey('shop/web', real), vipName: 'shop/web', vip: '198.19.80.10', real, check: CHECK, ...extra });

test('a real that answers stays healthy; each answer is ended by a RST through the tunnel', () => {
  const { net, prober, changes, advance } = setup([target('198.18.81.11')]);
  advance(10_000);
  assert.deepEqual(changes, []);
  assert.equal(prober.counts.success, 10);
  assert.equal(net.rsts, 10);
  assert.equal(prober.state(target('198.18.81.11').key)?.healthy, true);
});

test('silence: unhealthy after exactly N timeouts; answering again: healthy after M successes', () => {
  const { net, prober, changes, advance } = setup([target('198.18.81.11')]);
  advance(2000);
  net.mode = 'silent';
  advance(2500);
  assert.equal(changes.length, 0, 'two timeouts so far');
  advance(1000);
  assert.equal(changes.length, 1);
  assert.equal(changes[0]!.state.healthy, false);
  assert.match(changes[0]!.state.reason!, /no SYN-ACK from 198\.18\.81\.11 within 300 ms/);
  assert.equal(prober.counts.timeout, 3);
  net.mode = 'answer';
  advance(1000);
  assert.equal(changes.length, 1, 'one success is not enough');
  advance(1000);
  assert.equal(changes.length, 2);
  assert.equal(changes[1]!.state.healthy, true);
});

test('a RST from the real is a failure that names it', () => {
  const { net, changes, advance } = setup([target('198.18.81.11')]);
  net.mode = 'refuse';
  advance(3500);
  assert.equal(changes.length, 1);
  assert.match(changes[0]!.state.reason!, /RST/);
});

test('an answer with the wrong acknowledgement or to a port no probe used is ignored', () => {
  const { net, prober, advance } = setup([target('198.18.81.11')]);
  net.mode = 'silent';
  advance(500); // the first probe is in flight
  const forged = Buffer.alloc(40);
  forged[0] = 0x45;
  forged[9] = 6;
  Buffer.from([198, 19, 80, 10]).copy(forged, 12);
  Buffer.from([198, 18, 80, 1]).copy(forged, 16);
  forged.writeUInt16BE(80, 20);
  forged.writeUInt16BE(61000, 22);
  forged.writeUInt32BE(1, 28); // not ISN + 1
  forged[33] = TCP_SYN | TCP_ACK;
  net.queue.push(forged);
  advance(1000);
  assert.equal(prober.counts.success, 0);
});

test('known unhealthy: starts unhealthy; removed targets are forgotten', () => {
  const t = target('198.18.81.12', { knownUnhealthy: { since: 1, reason: 'judged elsewhere' } });
  const { prober, changes, advance } = setup([t, target('198.18.81.11')]);
  assert.equal(prober.state(t.key)?.healthy, false);
  advance(3000);
  assert.equal(changes.filter((c) => c.key === t.key && c.state.healthy).length, 1);
  prober.setTargets([t]);
  assert.equal(prober.state(target('198.18.81.11').key), undefined);
  assert.equal(prober.states().size, 1);
});

test('no encapsulation settings: nothing sent, nothing judged', () => {
  const net = new FakeNet();
  const changes: unknown[] = [];
  let now = 0;
  const prober = new Prober({ io: net, encap: () => null, now: () => now, onChange: (t) => changes.push(t) });
  prober.setTargets([target('198.18.81.11')]);
  for (; now < 10_000; now += 20) prober.tick();
  assert.equal(net.sent, 0);
  assert.ok(prober.counts.notSent >= 9);
  assert.deepEqual(changes, []);
});
