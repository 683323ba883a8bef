/**
 * What the balancer does for a VIP address beyond its VIPs' ports, on real
 * packets (BPF_PROG_TEST_RUN): echo requests answered in XDP (or dropped where
 * a VIP turns answers off), TCP/UDP to a port no VIP has dropped, other ICMP
 * left to the host.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { XdpAction } from '../../src/libbpf/test-run.js';
import { ICMP_PROTO } from '../../src/bpf/consts.js';
import { IcmpBudgetLayout } from '../../src/bpf/structs.js';
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { parseIp } from '../../src/lib/ip.js';
import { type BalancerHarness, ENCAP, useBalancerHarness } from '../support/balancer-harness.js';
import { requireKernel } from '../support/kernel.js';
import { buildEcho, buildIcmpError, parseIcmp, quoteOf } from '../support/icmp-packets.js';
import { PROTO_ICMPV6 } from '../support/l2-packets.js';
import { buildPacket, ETH_HLEN, IPV4_HLEN, IPV6_HLEN, parseEncapsulated, PROTO_ICMP } from '../support/packets.js';

const CLIENT4 = '198.18.100.1';
const CLIENT6 = '2001:db8:100::1';
const CLIENT_MAC = '02:00:00:00:00:aa';
const NIC_MAC = '02:00:00:00:00:01';
const VIP4 = '198.19.0.10';
const VIP6 = '2001:db8:19::10';
/** Addresses with a VIP that turns echo answers off (and one that does not). */
const QUIET4 = '198.19.0.20';
const QUIET6 = '2001:db8:19::20';
const reals4 = [{ address: '198.18.1.1', weight: 1 }];
const reals6 = [{ address: '2001:db8:1::1', weight: 1 }];
/** A VIP with several reals: which one an error reaches tells whether it followed the flow. */
const SPREAD4 = '198.19.0.30';
const SPREAD6 = '2001:db8:19::30';
const SPREAD_REALS4 = ['198.18.1.1', '198.18.1.2', '198.18.1.3', '198.18.1.4'];
const SPREAD_REALS6 = ['2001:db8:1::1', '2001:db8:1::2', '2001:db8:1::3', '2001:db8:1::4'];
/** An IPv4 VIP with IPv6 reals: its packets take the larger outer header. */
const V6_REALS_VIP4 = '198.19.0.40';
/** A router on the way from the reals to the clients. */
const ROUTER4 = '198.18.50.1';
const ROUTER6 = '2001:db8:50::1';

const VIPS: VipSpec[] = [
  { address: VIP4, port: 80, protocol: 'TCP', reals: reals4 },
  { address: VIP4, port: 53, protocol: 'UDP', reals: reals4 },
  { address: QUIET4, port: 80, protocol: 'TCP', reals: reals4 },
  { address: QUIET4, port: 443, protocol: 'TCP', icmpEcho: false, reals: reals4 },
  { address: VIP6, port: 443, protocol: 'TCP', reals: reals6 },
  { address: QUIET6, port: 443, protocol: 'TCP', icmpEcho: false, reals: reals6 },
  { address: SPREAD4, port: 80, protocol: 'TCP', reals: SPREAD_REALS4.map((address) => ({ address, weight: 1 })) },
  { address: SPREAD4, port: 53, protocol: 'UDP', reals: SPREAD_REALS4.map((address) => ({ address, weight: 1 })) },
  { address: SPREAD6, port: 443, protocol: 'TCP', reals: SPREAD_REALS6.map((address) => ({ address, weight: 1 })) },
  { address: V6_REALS_VIP4, port: 80, protocol: 'TCP', reals: reals6 },
];

const counted = (r: { changed: object }) => JSON.stringify(r.changed, (_, v) => (typeof v === 'bigint' ? Number(v) : v));

describe('balancer: ICMP and ports of VIP addresses', () => {
  let h: BalancerHarness;
  useBalancerHarness(VIPS, (x) => (h = x));

  function expectVerdict(pkt: Buffer, action: number, reason: string) {
    const r = h.runCounted(pkt);
    assert.equal(r.action, action, counted(r));
    assert.deepEqual(r.changed, { [reason]: 1n });
    if (action === XdpAction.PASS) assert.ok(r.output.equals(pkt), 'passed untouched');
  }

  /**
   * Sends a packet the program must answer itself (as `reason`): the answer goes back to the sender's MAC from ours,
   * from the packet's destination address to its source, with both checksums adding up. Returns it and its parts.
   */
  function expectAnswer(pkt: Buffer, reason: string) {
    const r = h.runCounted(pkt);
    assert.equal(r.action, XdpAction.TX, counted(r));
    assert.deepEqual(r.changed, { [reason]: 1n });
    const out = r.output;
    assert.deepEqual([out.subarray(0, 6), out.subarray(6, 12)], [pkt.subarray(6, 12), pkt.subarray(0, 6)], 'MACs swapped');
    const a = parseIcmp(out);
    assert.ok(a.ipChecksumOk, 'IPv4 header checksum');
    assert.ok(a.checksumOk, 'ICMP checksum');
    const ip = out.subarray(ETH_HLEN);
    const req = pkt.subarray(ETH_HLEN);
    const [src, dst] = a.family === 4 ? [12, 16] : [8, 24];
    const len = a.family === 4 ? 4 : 16;
    assert.deepEqual([ip.subarray(src, src + len), ip.subarray(dst, dst + len)], [req.subarray(dst, dst + len), req.subarray(src, src + len)],
      'from the packet\'s destination to its source');
    return { out, a, ip, req };
  }

  /** Sends an echo request that must be answered; checks every byte of the answer against the request. */
  function expectReply(request: Buffer): Buffer {
    const { out: reply, a, ip, req } = expectAnswer(request, 'TX_ICMP_ECHO_REPLY');
    assert.equal(reply.length, request.length, 'the answer is the request, rewritten in place');
    const q = parseIcmp(request);
    if (a.family === 4) {
      assert.equal(ip[8], ICMP_PROTO.ICMP_REPLY_TTL);
      assert.ok(ip.subarray(0, 8).equals(req.subarray(0, 8)), 'version, TOS, length, id, DF unchanged');
      assert.equal(a.msg[0], ICMP_PROTO.ICMP_ECHO_REPLY);
    } else {
      assert.equal(ip[7], ICMP_PROTO.ICMP_REPLY_TTL);
      assert.ok(ip.subarray(0, 7).equals(req.subarray(0, 7)), 'version, class, flow label, length, next header unchanged');
      assert.equal(a.msg[0], ICMP_PROTO.ICMPV6_ECHO_REPLY);
    }
    assert.equal(a.msg[1], 0, 'code 0');
    assert.ok(a.msg.subarray(4).equals(q.msg.subarray(4)), 'identifier, sequence number and data echoed');
    assert.ok(reply.subarray(ETH_HLEN + ip.length).equals(request.subarray(ETH_HLEN + req.length)), 'trailing bytes untouched');
    return reply;
  }

  test('an echo request to a VIP address is answered from the VIP, IPv4 and IPv6', (t) => {
    if (!requireKernel(t)) return;
    expectReply(buildEcho({ src: CLIENT4, dst: VIP4, ttl: 17, srcMac: CLIENT_MAC, dstMac: NIC_MAC }));
    expectReply(buildEcho({ src: CLIENT6, dst: VIP6, ttl: 3, srcMac: CLIENT_MAC, dstMac: NIC_MAC }));
    // Checksums updated, not recomputed: a request whose sum carries through every byte position still adds up.
    for (let id = 0; id < 2048; id += 97) {
      expectReply(buildEcho({ src: CLIENT4, dst: VIP4, id, sequence: 0xffff - id, ttl: id & 0xff, payload: Buffer.alloc(id % 64, id & 0xff) }));
      expectReply(buildEcho({ src: CLIENT6, dst: VIP6, id, sequence: id, payload: Buffer.alloc(id % 64, 0xff) }));
    }
    // A minimal request padded to Ethernet's 60 bytes: the padding is not taken for ICMP data.
    const short = buildEcho({ src: CLIENT4, dst: VIP4, payload: Buffer.alloc(0) });
    expectReply(Buffer.concat([short, Buffer.alloc(60 - short.length, 0xee)]));
  });

  test('an echo request to an address where a VIP turns answers off is dropped; its VIPs still balance', (t) => {
    if (!requireKernel(t)) return;
    expectVerdict(buildEcho({ src: CLIENT4, dst: QUIET4 }), XdpAction.DROP, 'DROP_ICMP_ECHO_OFF');
    expectVerdict(buildEcho({ src: CLIENT6, dst: QUIET6 }), XdpAction.DROP, 'DROP_ICMP_ECHO_OFF');
    for (const port of [80, 443]) {
      const syn = buildPacket({ src: CLIENT4, dst: QUIET4, proto: 'tcp', sport: 40000, dport: port, syn: true });
      assert.deepEqual(h.runCounted(syn).changed, { TX_ENCAP: 1n }, `port ${port}`);
    }
  });

  test('turning echo answers off and on again takes effect on the next packet', (t) => {
    if (!requireKernel(t)) return;
    const request = buildEcho({ src: CLIENT4, dst: VIP4 });
    try {
      h.apply(VIPS.map((v) => (v.address === VIP4 && v.port === 53 ? { ...v, icmpEcho: false } : v)));
      expectVerdict(request, XdpAction.DROP, 'DROP_ICMP_ECHO_OFF');
    } finally {
      h.apply(VIPS);
    }
    expectReply(request);
  });

  test('TCP or UDP to a VIP address on a port no VIP has is dropped; to other addresses it passes', (t) => {
    if (!requireKernel(t)) return;
    const to = (dst: string, proto: 'tcp' | 'udp', dport: number, src = parseIp(dst).family === 4 ? CLIENT4 : CLIENT6) =>
      buildPacket({ src, dst, proto, sport: 40000, dport, syn: proto === 'tcp' });
    expectVerdict(to(VIP4, 'tcp', 81), XdpAction.DROP, 'DROP_VIP_NO_PORT');
    expectVerdict(to(VIP4, 'udp', 80), XdpAction.DROP, 'DROP_VIP_NO_PORT'); // 80 is a TCP VIP, not UDP
    expectVerdict(to(VIP4, 'tcp', 53), XdpAction.DROP, 'DROP_VIP_NO_PORT'); // 53 is a UDP VIP, not TCP
    expectVerdict(to(VIP6, 'tcp', 80), XdpAction.DROP, 'DROP_VIP_NO_PORT');
    expectVerdict(to('198.19.0.99', 'tcp', 80), XdpAction.PASS, 'PASS_NOT_VIP');
    expectVerdict(to('2001:db8:19::99', 'udp', 53), XdpAction.PASS, 'PASS_NOT_VIP');
    assert.deepEqual(h.runCounted(to(VIP4, 'udp', 53)).changed, { TX_ENCAP: 1n }, 'the VIP ports still balance');
  });

  test('other ICMP to a VIP address goes to the host as before; ICMP to other addresses too', (t) => {
    if (!requireKernel(t)) return;
    expectVerdict(buildEcho({ src: CLIENT4, dst: VIP4, type: ICMP_PROTO.ICMP_ECHO_REPLY }), XdpAction.PASS, 'PASS_VIP_NOT_TCP_UDP');
    expectVerdict(buildEcho({ src: CLIENT6, dst: VIP6, type: ICMP_PROTO.ICMPV6_ECHO_REPLY }), XdpAction.PASS, 'PASS_VIP_NOT_TCP_UDP');
    const unreachable = 3;
    expectVerdict(buildEcho({ src: CLIENT4, dst: VIP4, type: unreachable }), XdpAction.PASS, 'PASS_VIP_NOT_TCP_UDP');
    expectVerdict(buildEcho({ src: CLIENT4, dst: '198.19.0.99' }), XdpAction.PASS, 'PASS_NOT_VIP');
    expectVerdict(buildEcho({ src: CLIENT6, dst: '2001:db8:19::99' }), XdpAction.PASS, 'PASS_NOT_VIP');
    // An echo request cut short by its IP length (4 of its 8 header bytes) is not answered.
    expectVerdict(buildPacket({ src: CLIENT4, dst: VIP4, proto: PROTO_ICMP, payload: Buffer.from([ICMP_PROTO.ICMP_ECHO_REQUEST, 0, 0, 0]) }),
      XdpAction.PASS, 'PASS_VIP_NOT_TCP_UDP');
  });

  /** Sends a packet that must be encapsulated (as `reason`) unchanged to a real; returns the real. */
  function toReal(pkt: Buffer, reason: string): string {
    const r = h.runCounted(pkt);
    assert.equal(r.action, XdpAction.TX, counted(r));
    assert.deepEqual(r.changed, { [reason]: 1n });
    const e = parseEncapsulated(r.output);
    assert.ok(e.inner.equals(pkt.subarray(ETH_HLEN)), 'the inner packet is the one received, byte for byte');
    return e.outerDst;
  }

  const vipAnswer = (vip: string, client: string, vport: number, cport: number, proto: 'tcp' | 'udp' = 'tcp') =>
    buildPacket({ src: vip, dst: client, proto, sport: vport, dport: cport, ack: proto === 'tcp', df: parseIp(vip).family === 4 });
  const fragNeeded = (vip: string, quoted: Buffer) => parseIp(vip).family === 4 ?
    buildIcmpError({ src: ROUTER4, dst: vip, type: ICMP_PROTO.ICMP_DEST_UNREACH, code: 4, mtu: 1400, quoted }) :
    buildIcmpError({ src: ROUTER6, dst: vip, type: ICMP_PROTO.ICMPV6_PKT_TOOBIG, mtu: 1400, quoted });

  test('an ICMP error about a VIP\'s answer goes to the real of the client\'s flow, IPv4 and IPv6', (t) => {
    if (!requireKernel(t)) return;
    for (const [vip, client, port, reals] of [[SPREAD4, CLIENT4, 80, SPREAD_REALS4], [SPREAD6, CLIENT6, 443, SPREAD_REALS6]] as const) {
      const seen = new Set<string>();
      for (let cport = 41000; cport < 41040; cport++) {
        const syn = buildPacket({ src: client, dst: vip, proto: 'tcp', sport: cport, dport: port, syn: true });
        const real = toReal(syn, 'TX_ENCAP');
        const error = fragNeeded(vip, quoteOf(vipAnswer(vip, client, port, cport)));
        assert.equal(toReal(error, 'TX_ICMP_ERROR'), real, `${vip}: the error about ${client}:${cport} reaches the flow's real`);
        seen.add(real);
      }
      assert.ok(seen.size > 1, `40 flows of ${vip} used ${seen.size} of ${reals.length} reals: the test would not notice a wrong one`);
    }
    // Every error type that quotes a packet, IPv4 and IPv6; UDP flows too.
    const udpReal = toReal(buildPacket({ src: CLIENT4, dst: SPREAD4, proto: 'udp', sport: 42000, dport: 53 }), 'TX_ENCAP');
    for (const type of [ICMP_PROTO.ICMP_DEST_UNREACH, ICMP_PROTO.ICMP_TIME_EXCEEDED, ICMP_PROTO.ICMP_PARAMETERPROB]) {
      const quoted = quoteOf(vipAnswer(SPREAD4, CLIENT4, 53, 42000, 'udp'));
      assert.equal(toReal(buildIcmpError({ src: ROUTER4, dst: SPREAD4, type, quoted }), 'TX_ICMP_ERROR'), udpReal, `type ${type}`);
    }
    for (const type of [ICMP_PROTO.ICMPV6_DEST_UNREACH, ICMP_PROTO.ICMPV6_TIME_EXCEED, ICMP_PROTO.ICMPV6_PARAMPROB]) {
      toReal(buildIcmpError({ src: ROUTER6, dst: SPREAD6, type, quoted: quoteOf(vipAnswer(SPREAD6, CLIENT6, 443, 41000)) }), 'TX_ICMP_ERROR');
    }
  });

  test('an error about a flow this node never saw goes where the ring sends it, as on the node that saw it; the table is not changed', (t) => {
    if (!requireKernel(t)) return;
    const entries = () => h.lb.maps.connTable.keys().length;
    for (let cport = 43000; cport < 43020; cport++) {
      const before = entries();
      const viaError = toReal(fragNeeded(SPREAD4, quoteOf(vipAnswer(SPREAD4, CLIENT4, 80, cport))), 'TX_ICMP_ERROR');
      assert.equal(entries(), before, 'no entry made for the error');
      const ack = buildPacket({ src: CLIENT4, dst: SPREAD4, proto: 'tcp', sport: cport, dport: 80, ack: true });
      assert.equal(toReal(ack, 'TX_ENCAP'), viaError, `the flow's own packets take the same real (client port ${cport})`);
    }
  });

  test('an error the flow\'s real cannot be told from goes to the host: another sender, no VIP port, not TCP or UDP, cut short, a later fragment', (t) => {
    if (!requireKernel(t)) return;
    const answer = quoteOf(vipAnswer(SPREAD4, CLIENT4, 80, 41000));
    const otherSender = quoteOf(vipAnswer(VIP4, CLIENT4, 80, 41000)); // quotes a packet from another address than the error's
    expectVerdict(fragNeeded(SPREAD4, otherSender), XdpAction.PASS, 'PASS_VIP_NOT_TCP_UDP');
    expectVerdict(fragNeeded(SPREAD4, quoteOf(vipAnswer(SPREAD4, CLIENT4, 81, 41000))), XdpAction.PASS, 'PASS_VIP_NOT_TCP_UDP');
    const icmpQuoted = quoteOf(buildEcho({ src: SPREAD4, dst: CLIENT4, type: ICMP_PROTO.ICMP_ECHO_REPLY }));
    expectVerdict(fragNeeded(SPREAD4, icmpQuoted), XdpAction.PASS, 'PASS_VIP_NOT_TCP_UDP');
    expectVerdict(fragNeeded(SPREAD4, answer.subarray(0, 20 + 2)), XdpAction.PASS, 'PASS_VIP_NOT_TCP_UDP'); // ports cut off
    const laterFragment = buildPacket({ src: SPREAD4, dst: CLIENT4, proto: 'tcp', sport: 80, dport: 41000, fragment: { more: false, offset: 100 } });
    expectVerdict(fragNeeded(SPREAD4, quoteOf(laterFragment)), XdpAction.PASS, 'PASS_VIP_NOT_TCP_UDP'); // quotes data, not ports
    expectVerdict(fragNeeded('198.19.0.99', answer), XdpAction.PASS, 'PASS_NOT_VIP');
  });

  /** A TCP segment to a VIP whose IP packet is `l3` bytes long. */
  const sized = (src: string, dst: string, l3: number, df = true) => {
    const hlen = parseIp(dst).family === 4 ? IPV4_HLEN : IPV6_HLEN;
    return buildPacket({ src, dst, proto: 'tcp', sport: 40000, dport: parseIp(dst).family === 4 ? 80 : 443, ack: true, df, payload: Buffer.alloc(l3 - hlen - 20, 0xab) });
  };

  /** Sends a packet that must be answered as too big; checks the answer whole; returns it. */
  function expectTooBig(pkt: Buffer, mtu: number): Buffer {
    const { out, a, ip, req } = expectAnswer(pkt, 'TX_ICMP_TOO_BIG');
    if (a.family === 4) {
      const quote = ICMP_PROTO.ICMP_TOO_BIG_QUOTE_V4;
      assert.equal(out.length, ETH_HLEN + IPV4_HLEN + 8 + quote);
      assert.deepEqual([ip[8], ip[9], ip.readUInt16BE(2)], [ICMP_PROTO.ICMP_REPLY_TTL, ICMP_PROTO.IPPROTO_ICMP, IPV4_HLEN + 8 + quote]);
      assert.deepEqual([a.msg[0], a.msg[1], a.msg.readUInt16BE(6)], [ICMP_PROTO.ICMP_DEST_UNREACH, ICMP_PROTO.ICMP_FRAG_NEEDED, mtu], 'fragmentation needed, with the MTU that fits');
      assert.ok(a.msg.subarray(8).equals(req.subarray(0, quote)), 'quotes the head of the packet');
    } else {
      const quote = ICMP_PROTO.ICMP_TOO_BIG_QUOTE_V6;
      assert.equal(out.length, ETH_HLEN + IPV6_HLEN + 8 + quote);
      assert.deepEqual([ip[6], ip[7], ip.readUInt16BE(4)], [PROTO_ICMPV6, ICMP_PROTO.ICMP_REPLY_TTL, 8 + quote]);
      assert.deepEqual([a.msg[0], a.msg[1], a.msg.readUInt32BE(4)], [ICMP_PROTO.ICMPV6_PKT_TOOBIG, 0, mtu], 'packet too big, with the MTU that fits');
      assert.ok(a.msg.subarray(8).equals(req.subarray(0, quote)), 'quotes the head of the packet');
    }
    return out;
  }

  test('a packet too big to encapsulate is answered with "fragmentation needed" / "packet too big" and the MTU that fits', (t) => {
    if (!requireKernel(t)) return;
    const max = ENCAP.maxPktSize;
    // The largest packet that fits goes to its real; one byte more is answered.
    assert.deepEqual(h.runCounted(sized(CLIENT4, VIP4, max - IPV4_HLEN)).changed, { TX_ENCAP: 1n });
    expectTooBig(sized(CLIENT4, VIP4, max - IPV4_HLEN + 1), max - IPV4_HLEN);
    expectTooBig(sized(CLIENT4, V6_REALS_VIP4, max - IPV6_HLEN + 1), max - IPV6_HLEN); // an IPv6 real: the larger outer header
    assert.deepEqual(h.runCounted(sized(CLIENT6, VIP6, max - IPV6_HLEN)).changed, { TX_ENCAP: 1n });
    expectTooBig(sized(CLIENT6, VIP6, max - IPV6_HLEN + 1), max - IPV6_HLEN);
    // IPv4 without DF allows fragmentation, which the balancer does not do: nothing to answer.
    expectVerdict(sized(CLIENT4, VIP4, max, false), XdpAction.DROP, 'DROP_TOO_BIG');
    // An ICMP error too big to forward is not answered with another (RFC 1122).
    const big = Buffer.concat([quoteOf(vipAnswer(SPREAD4, CLIENT4, 80, 41000)), Buffer.alloc(max)]);
    expectVerdict(fragNeeded(SPREAD4, big), XdpAction.DROP, 'DROP_TOO_BIG');
  });

  test('too-big answers are limited per CPU: over the limit the packet is dropped unanswered', (t) => {
    if (!requireKernel(t)) return;
    const budget = h.lb.maps.icmpBudget;
    /** Every CPU's budget: spent in a window that started now, or a window long gone. */
    const setBudget = (spent: boolean) => {
      const all = Buffer.alloc(budget.lookupSize);
      const stride = Math.ceil(IcmpBudgetLayout.size / 8) * 8;
      for (let at = 0; at + IcmpBudgetLayout.size <= all.length; at += stride) {
        all.writeBigUInt64LE(spent ? process.hrtime.bigint() : 0n, at + IcmpBudgetLayout.offsets.window_start_ns);
        all.writeBigUInt64LE(spent ? BigInt(ICMP_PROTO.ICMP_TOO_BIG_PER_CPU_RATE) : 0n, at + IcmpBudgetLayout.offsets.sent);
      }
      budget.update(Buffer.alloc(4), all);
    };
    const pkt = sized(CLIENT4, VIP4, ENCAP.maxPktSize);
    // The window is a second of the kernel's monotonic clock, which process.hrtime reads too: a run more than a
    // second after the write (a stalled machine) finds a new window, so try a few times.
    let limited = false;
    for (let i = 0; i < 5 && !limited; i++) {
      setBudget(true);
      const r = h.runCounted(pkt);
      limited = r.changed.DROP_TOO_BIG_ICMP_LIMITED === 1n;
      if (limited) assert.equal(r.action, XdpAction.DROP);
    }
    assert.ok(limited, 'a spent budget drops the packet unanswered');
    setBudget(false);
    expectTooBig(pkt, ENCAP.maxPktSize - IPV4_HLEN);
    // A burst: each CPU answers at most its rate in a window.
    setBudget(false);
    let answered = 0;
    for (let i = 0; i < 3 * ICMP_PROTO.ICMP_TOO_BIG_PER_CPU_RATE; i++) if (h.run(pkt).action === XdpAction.TX) answered++;
    assert.ok(answered >= ICMP_PROTO.ICMP_TOO_BIG_PER_CPU_RATE, `${answered} answered`);
  });
});

