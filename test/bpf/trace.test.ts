/**
 * Packet tracing in the balancer program (BPF_PROG_TEST_RUN): records only
 * for what a session asked, with the real, path and reason the packet got,
 * the rate limit, and pcap output that tcpdump reads.
 */
import { allowedCpus, onCpu } from '../../src/libbpf/cpus.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { u32Key } from '../../src/bpf/structs.js';
import { XdpAction } from '../../src/libbpf/test-run.js';
import { readTraceCounters } from '../../src/agent/dataplane/counters.js';
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import type { TraceEvent, TraceLoss } from '../../src/api/trace.js';
import { parseTraceFilter } from '../../src/api/trace-filter.js';
import { TraceLimitError } from '../../src/agent/trace/trace-rules.js';
import { Tracer } from '../../src/agent/trace/tracer.js';
import { PcapWriter } from '../../src/cli/pcap-writer.js';
import { BalancerHarness } from '../support/balancer-harness.js';
import { requireKernel } from '../support/kernel.js';
import { buildEcho, buildIcmpError, quoteOf } from '../support/icmp-packets.js';
import { ICMP_PROTO } from '../../src/bpf/consts.js';
import { buildPacket, ETH_HLEN, parseEncapsulated, type PacketSpec } from '../support/packets.js';

const WEB = '198.19.1.10';
const OTHER = '198.19.1.11';
const V6_VIP = '2001:db8:19:1::10';
const STICKY = '198.19.1.12';
const VIPS: VipSpec[] = [
  { address: WEB, port: 80, protocol: 'TCP', reals: ['198.18.1.1', '198.18.1.2', '198.18.1.3'].map((address) => ({ address, weight: 1 })) },
  { address: OTHER, port: 80, protocol: 'TCP', reals: [{ address: '198.18.1.4', weight: 1 }] },
  { address: V6_VIP, port: 443, protocol: 'TCP', reals: [{ address: '2001:db8:1::1', weight: 1 }] },
  { address: STICKY, port: 80, protocol: 'TCP', hashNoSrcPort: true, reals: [{ address: '198.18.1.5', weight: 1 }] },
];
const CLIENT = '198.18.100.1';
const tcp = (dst: string, sport: number, extra: Partial<PacketSpec> = {}) =>
  buildPacket({ src: CLIENT, dst, proto: 'tcp', sport, dport: 80, ack: !extra.syn, ...extra });

describe('packet tracing', () => {
  let h: BalancerHarness;
  let tracer: Tracer;
  before(() => {
    if (process.getuid?.() !== 0) return;
    h = new BalancerHarness();
    h.apply(VIPS);
    tracer = new Tracer(h.lb.maps, () => h.dp.installedVipNums(), 1);
  });
  after(() => {
    tracer?.shutdown();
    h?.close();
  });

  /** Runs packets with a session open; returns what the session received. */
  function traced(filter: Parameters<typeof parseTraceFilter>[0], packets: Buffer[], rate?: number) {
    const events: TraceEvent[] = [];
    const results: ReturnType<BalancerHarness['run']>[] = [];
    const close = tracer.open({ filter: parseTraceFilter(filter), rate, onEvent: (e) => events.push(e) });
    try {
      for (const p of packets) results.push(h.run(p));
      tracer.poll();
    } finally {
      close();
    }
    return { events, results };
  }

  test('off: no record, no counter moves', (t) => {
    if (!requireKernel(t)) return;
    const before = readTraceCounters(h.lb.maps);
    for (let i = 0; i < 10; i++) assert.equal(h.run(tcp(WEB, 1000 + i, { syn: true })).action, XdpAction.TX);
    assert.deepEqual(readTraceCounters(h.lb.maps), before);
    assert.equal(h.lb.maps.traceCtl.lookup(u32Key(0))!.readUInt32LE(0), 0, 'rule_count');
  });

  test('one VIP: a record per packet of it with its real, path and reason; none for another VIP', (t) => {
    if (!requireKernel(t)) return;
    const packets = [tcp(WEB, 2000, { syn: true }), tcp(OTHER, 2000, { syn: true }), tcp(WEB, 2000), tcp(OTHER, 2001), tcp(WEB, 2000, { syn: true })];
    const { events, results } = traced({ vip: [`${WEB}:80/TCP`] }, packets);
    assert.equal(events.length, 3, 'three packets of the traced VIP');
    const realOfFlow = parseEncapsulated(results[0]!.output).outerDst;
    assert.deepEqual(events.map((e) => [e.vip, e.real, e.path, e.reason, e.verdict]), [
      [`${WEB}:80/TCP`, realOfFlow, 'ring_new_flow', 'tx_encap', 'tx'],
      [`${WEB}:80/TCP`, realOfFlow, 'half_open_hit', 'tx_encap', 'tx'],
      [`${WEB}:80/TCP`, realOfFlow, 'ring_syn', 'tx_encap', 'tx'],
    ]);
    const first = events[0]!;
    assert.deepEqual([first.src, first.sport, first.dst, first.dport, first.proto], [CLIENT, 2000, WEB, 80, 'TCP']);
    assert.ok(Buffer.from(first.frameIn, 'base64').equals(packets[0]!), 'frameIn is the frame as received');
    assert.ok(Buffer.from(first.frameOut, 'base64').equals(results[0]!.output), 'frameOut is the frame as sent');
    assert.equal(first.outLen, results[0]!.output.length);
    assert.ok(Math.abs(Date.parse(first.time) - Date.now()) < 60_000, `wall time ${first.time}`);
  });

  test('a client match: a dropped fragment and a non-VIP packet come with their reasons', (t) => {
    if (!requireKernel(t)) return;
    const fragment = buildPacket({ src: CLIENT, dst: WEB, proto: 'tcp', sport: 3000, dport: 80, fragment: { more: false, offset: 100 } });
    const notVip = tcp('198.19.1.99', 3001);
    const otherClient = buildPacket({ src: '198.18.101.1', dst: WEB, proto: 'tcp', sport: 3002, dport: 80, syn: true });
    const { events, results } = traced({ client: '198.18.100.0/24' }, [fragment, notVip, otherClient]);
    assert.deepEqual(results.map((r) => r.action), [XdpAction.DROP, XdpAction.PASS, XdpAction.TX]);
    assert.deepEqual(events.map((e) => [e.dst, e.vip, e.reason, e.verdict, e.path]), [
      [WEB, null, 'drop_fragment', 'drop', 'none'],
      ['198.19.1.99', null, 'pass_not_vip', 'pass', 'none'],
    ]);
    assert.equal(events[1]!.frameOut, '', 'nothing was transmitted');
  });

  test('a client match: an answered echo request, a packet for a port no VIP has, an error about the client\'s flow', (t) => {
    if (!requireKernel(t)) return;
    const ping = buildEcho({ src: CLIENT, dst: WEB });
    const answer = buildPacket({ src: WEB, dst: CLIENT, proto: 'tcp', sport: 80, dport: 3101, ack: true });
    const error = buildIcmpError({ src: '198.18.50.1', dst: WEB, type: ICMP_PROTO.ICMP_DEST_UNREACH, code: 4, mtu: 1400, quoted: quoteOf(answer) });
    const { events, results } = traced({ client: CLIENT }, [ping, tcp(WEB, 3100, { dport: 81 }), error]);
    assert.deepEqual(results.map((r) => r.action), [XdpAction.TX, XdpAction.DROP, XdpAction.TX]);
    // The error is recorded as the flow it is about (the client's), with the VIP and the real it went to.
    assert.deepEqual(events.map((e) => [e.proto, e.src, e.dst, e.dport, e.vip, e.reason, e.verdict, e.path]), [
      ['ICMP', CLIENT, WEB, 0, null, 'tx_icmp_echo_reply', 'tx', 'none'],
      ['TCP', CLIENT, WEB, 81, null, 'drop_vip_no_port', 'drop', 'none'],
      ['TCP', CLIENT, WEB, 80, `${WEB}:80/TCP`, 'tx_icmp_error', 'tx', 'ring_new_flow'],
    ]);
    assert.equal(events[2]!.real, parseEncapsulated(results[2]!.output).outerDst);
    assert.ok(Buffer.from(events[0]!.frameIn, 'base64').equals(ping), 'frameIn: the request');
    assert.ok(Buffer.from(events[0]!.frameOut, 'base64').equals(results[0]!.output), 'frameOut: the answer as sent');
  });

  test('a VIP hashing without the source port: the record keeps the port the packet came from', (t) => {
    if (!requireKernel(t)) return;
    const { events } = traced({ vip: [STICKY], port: '4242' }, [tcp(STICKY, 4242, { syn: true }), tcp(STICKY, 4243, { syn: true })]);
    assert.deepEqual(events.map((e) => [e.sport, e.real, e.reason]), [[4242, '198.18.1.5', 'tx_encap']]);
  });

  test('a port match, IPv6', (t) => {
    if (!requireKernel(t)) return;
    const v6 = buildPacket({ src: '2001:db8:100::1', dst: V6_VIP, proto: 'tcp', sport: 4000, dport: 443, syn: true });
    const { events } = traced({ port: '443' }, [v6, tcp(WEB, 4001)]);
    assert.deepEqual(events.map((e) => [e.vip, e.real, e.reason, e.family]), [[`[${V6_VIP}]:443/TCP`, '2001:db8:1::1', 'tx_encap', 6]]);
  });

  test('the rate limit caps records and counts the rest', (t) => {
    if (!requireKernel(t)) return;
    const before = readTraceCounters(h.lb.maps);
    const packets = Array.from({ length: 20 }, (_, i) => tcp(WEB, 5000 + i, { syn: true }));
    const { events } = traced({ vip: [WEB] }, packets, 5);
    const after = readTraceCounters(h.lb.maps);
    assert.equal(events.length, 5);
    assert.equal(after.RATE_LIMITED - before.RATE_LIMITED, 15n);
    assert.equal(after.EMITTED - before.EMITTED, 5n);
  });

  test('each session has its own budget: a flood on one session\'s VIP costs another session no record', async (t) => {
    if (!requireKernel(t)) return;
    const a: TraceEvent[] = [];
    const b: TraceEvent[] = [];
    const lossA: TraceLoss[] = [];
    const lossB: TraceLoss[] = [];
    const closeA = tracer.open({ filter: parseTraceFilter({ vip: [WEB] }), rate: 5, onEvent: (e) => a.push(e), onLoss: (l) => lossA.push(l) });
    const closeB = tracer.open({ filter: parseTraceFilter({ vip: [OTHER] }), rate: 10, onEvent: (e) => b.push(e), onLoss: (l) => lossB.push(l) });
    try {
      // A's VIP gets 40 packets before and among B's 10: A's budget (5) runs out, B's (10) must not.
      // On one CPU: budgets are per CPU, and a run moved to the other CPU would find a fresh one.
      await onCpu(allowedCpus()[0]!, () => {
        for (let i = 0; i < 40; i++) h.run(tcp(WEB, 7000 + i, { syn: true }));
        for (let i = 0; i < 10; i++) {
          h.run(tcp(OTHER, 7100 + i, { syn: true }));
          h.run(tcp(WEB, 7200 + i, { syn: true }));
        }
      });
      tracer.poll();
      assert.equal(a.length, 5, 'A: its rate');
      assert.equal(b.length, 10, 'B: every packet of its VIP, however busy A\'s VIP is');
      assert.equal(lossA.reduce((n, l) => n + l.rateLimited, 0), 45, 'A is told what its budget dropped');
      assert.deepEqual(lossB, [], 'B lost nothing, and is not told of A\'s loss');
    } finally {
      closeA();
      closeB();
    }
  });

  test('a packet two sessions match is recorded while either has room, for both', (t) => {
    if (!requireKernel(t)) return;
    const narrow: TraceEvent[] = [];
    const wide: TraceEvent[] = [];
    const lossNarrow: TraceLoss[] = [];
    const closeNarrow = tracer.open({ filter: parseTraceFilter({ vip: [WEB] }), rate: 2, onEvent: (e) => narrow.push(e),
      onLoss: (l) => lossNarrow.push(l) });
    const closeWide = tracer.open({ filter: parseTraceFilter({ port: '80' }), rate: 100, onEvent: (e) => wide.push(e) });
    try {
      for (let i = 0; i < 6; i++) h.run(tcp(WEB, 7300 + i, { syn: true }));
      tracer.poll();
      assert.deepEqual([narrow.length, wide.length], [6, 6], 'the wide session paid for the records past the narrow one\'s rate');
      assert.deepEqual(lossNarrow, [], 'nothing went unrecorded');
    } finally {
      closeNarrow();
      closeWide();
    }
  });

  test('sessions share the program: each gets its own packets; too many rules are refused', (t) => {
    if (!requireKernel(t)) return;
    const a: TraceEvent[] = [];
    const b: TraceEvent[] = [];
    const closeA = tracer.open({ filter: parseTraceFilter({ vip: [WEB] }), onEvent: (e) => a.push(e) });
    const closeB = tracer.open({ filter: parseTraceFilter({ vip: [OTHER] }), onEvent: (e) => b.push(e) });
    try {
      h.run(tcp(WEB, 6000, { syn: true }));
      h.run(tcp(OTHER, 6001, { syn: true }));
      tracer.poll();
      assert.deepEqual([a.map((e) => e.dst), b.map((e) => e.dst)], [[WEB], [OTHER]]);
      // Each session needs one rule per VIP it names: two VIPs here, one rule each for the others.
      const closeC = tracer.open({ filter: parseTraceFilter({ vip: [WEB, OTHER] }), onEvent: () => undefined });
      const more = Array.from({ length: 4 }, (_, i) =>
        tracer.open({ filter: parseTraceFilter({ port: String(8000 + i) }), onEvent: () => undefined }));
      assert.throws(() => tracer.open({ filter: parseTraceFilter({ port: '9000' }), onEvent: () => undefined }),
        (err: Error) => err instanceof TraceLimitError && /need 9 rules, the program has 8/.test(err.message));
      assert.equal(tracer.sessionCount, 7, 'the refused session is not left open');
      for (const close of [closeC, ...more]) close();
    } finally {
      closeA();
      closeB();
    }
    assert.equal(h.lb.maps.traceCtl.lookup(u32Key(0))!.readUInt32LE(0), 0, 'closing the last session turns tracing off');
  });

  test('an agent starting on maps left tracing (its predecessor died) turns tracing off; on clean maps it writes nothing', (t) => {
    if (!requireKernel(t)) return;
    const writes = () => h.lb.maps.traceCtl.writes + h.lb.maps.traceBudget.writes;
    const before = writes();
    new Tracer(h.lb.maps, () => h.dp.installedVipNums(), 1);
    assert.equal(writes(), before, 'tracing was off: nothing written');
    const close = tracer.open({ filter: parseTraceFilter({}), onEvent: () => undefined });
    try {
      assert.equal(h.lb.maps.traceCtl.lookup(u32Key(0))!.readUInt32LE(0), 1);
      new Tracer(h.lb.maps, () => h.dp.installedVipNums(), 1); // as if the first agent had died here
      assert.equal(h.lb.maps.traceCtl.lookup(u32Key(0))!.readUInt32LE(0), 0, 'stale rule cleared');
      const before2 = readTraceCounters(h.lb.maps);
      h.run(tcp(WEB, 6600, { syn: true }));
      assert.deepEqual(readTraceCounters(h.lb.maps), before2, 'nothing matches any more');
    } finally {
      close();
    }
  });

  test('a session that ends itself mid-batch (count reached) frees the ring safely', (t) => {
    if (!requireKernel(t)) return;
    const events: TraceEvent[] = [];
    const close = tracer.open({
      filter: parseTraceFilter({ vip: [WEB] }),
      onEvent: (e) => {
        events.push(e);
        close();
      },
    });
    for (let i = 0; i < 3; i++) h.run(tcp(WEB, 6500 + i, { syn: true }));
    // The reader is closed while two records of the batch are still to be
    // decoded: they must be copies, not views of the unmapped ring.
    tracer.poll();
    assert.equal(events.length, 1);
    assert.equal(tracer.sessionCount, 0);
    assert.equal(h.lb.maps.traceCtl.lookup(u32Key(0))!.readUInt32LE(0), 0);
  });

  test('pcap: tcpdump reads the frames before and after encapsulation', (t) => {
    if (!requireKernel(t)) return;
    const dir = mkdtempSync(join(tmpdir(), 'xdplb-trace-'));
    try {
      const { events } = traced({ vip: [WEB] }, [tcp(WEB, 7000, { syn: true }), tcp(WEB, 7000)]);
      const file = join(dir, 'trace.pcap');
      const w = new PcapWriter(file);
      for (const e of events) w.write(e);
      w.close();
      assert.equal(w.frames, 4);
      const out = execFileSync('tcpdump', ['-nn', '-r', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      const lines = out.trim().split('\n');
      assert.equal(lines.length, 4, out);
      const real = events[0]!.real!;
      assert.match(lines[0]!, new RegExp(`IP ${CLIENT.replace(/\./g, '\\.')}\\.7000 > ${WEB.replace(/\./g, '\\.')}\\.80: Flags \\[S\\]`));
      assert.match(lines[1]!, new RegExp(`IP 198\\.18\\.0\\.1 > ${real.replace(/\./g, '\\.')}: IP ${CLIENT.replace(/\./g, '\\.')}\\.7000 > ${WEB.replace(/\./g, '\\.')}\\.80: Flags \\[S\\]`));
      assert.match(lines[3]!, /IP 198\.18\.0\.1 > .*: IP .*Flags \[\.\]/);
      assert.equal(ETH_HLEN, 14);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
