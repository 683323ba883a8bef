/**
 * The balancer program on real packets (BPF_PROG_TEST_RUN), programmed only
 * through the TypeScript dataplane.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { XdpAction } from '../../src/libbpf/test-run.js';
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { readRealStats, readVipStats } from '../../src/agent/dataplane/counters.js';
import { type BalancerHarness, ENCAP, useBalancerHarness } from '../support/balancer-harness.js';
import { requireKernel } from '../support/kernel.js';
import {
  buildPacket, ETH_HLEN, ETH_P_ARP, IPV4_HLEN, IPV6_HLEN, type PacketSpec, parseEncapsulated, PROTO_ICMP,
  PROTO_IPIP, PROTO_IPV6,
} from '../support/packets.js';

const V4_REALS = ['198.18.1.1', '198.18.1.2', '198.18.1.3'];
const V6_REALS = ['2001:db8:1::1', '2001:db8:1::2', '2001:db8:1::3'];
const real = (address: string, weight = 1) => ({ address, weight });

const VIPS: VipSpec[] = [
  { address: '198.19.0.10', port: 80, protocol: 'TCP', reals: V4_REALS.map((a) => real(a)) },
  { address: '198.19.0.10', port: 53, protocol: 'UDP', reals: V4_REALS.slice(0, 2).map((a) => real(a)) },
  { address: '198.19.0.11', port: 0, protocol: 'TCP', reals: [real('198.18.1.4')] },
  { address: '2001:db8:19::10', port: 443, protocol: 'TCP', reals: V6_REALS.map((a) => real(a)) },
  { address: '2001:db8:19::10', port: 53, protocol: 'UDP', reals: V6_REALS.map((a) => real(a)) },
  { address: '198.19.0.12', port: 80, protocol: 'TCP', reals: [real('2001:db8:1::4'), real('2001:db8:1::5')] },
  { address: '198.19.0.13', port: 80, protocol: 'TCP', hashNoSrcPort: true, reals: [...V4_REALS, '198.18.1.4'].map((a) => real(a)) },
  { address: '198.19.0.14', port: 80, protocol: 'TCP', reals: [] },
  { address: '198.19.0.15', port: 80, protocol: 'TCP', lruBypass: true, reals: V4_REALS.map((a) => real(a)) },
];

const CLIENT4 = '198.18.100.1';
const CLIENT6 = '2001:db8:100::1';
const tcp = (src: string, dst: string, sport: number, dport: number, extra: Partial<PacketSpec> = {}) =>
  buildPacket({ src, dst, proto: 'tcp', sport, dport, ack: !extra.syn, ...extra });

describe('balancer', () => {
  let h: BalancerHarness;
  useBalancerHarness(VIPS, (x) => (h = x));

  /** Sends a packet that must be encapsulated; checks the whole frame; returns the real. */
  function expectTx(pkt: Buffer, outer: 4 | 6, reals: string[]): string {
    const r = h.runCounted(pkt);
    assert.equal(r.action, XdpAction.TX, `expected XDP_TX, got ${r.action} (${JSON.stringify(r.changed, (_, v) => (typeof v === 'bigint' ? Number(v) : v))})`);
    assert.deepEqual(r.changed, { TX_ENCAP: 1n });
    const e = parseEncapsulated(r.output);
    const hdr = outer === 4 ? IPV4_HLEN : IPV6_HLEN;
    const inner = pkt.subarray(ETH_HLEN);
    const innerVersion = inner[0]! >> 4;
    assert.equal(e.dstMac, ENCAP.nextHopMac);
    assert.equal(e.srcMac, ENCAP.srcMac);
    assert.equal(e.outerFamily, outer);
    assert.equal(r.output.length, pkt.length + hdr);
    assert.ok(e.inner.equals(inner), 'inner packet must be byte for byte the original');
    const innerL3Len = innerVersion === 4 ? inner.readUInt16BE(2) : IPV6_HLEN + inner.readUInt16BE(4);
    assert.equal(e.outerLen, innerL3Len + hdr, 'outer length = inner IP length + outer header');
    assert.ok(reals.includes(e.outerDst), `outer destination ${e.outerDst} is not one of ${reals.join(', ')}`);
    if (outer === 4) {
      assert.ok(e.checksumOk, 'outer IPv4 checksum');
      assert.equal(e.outerSrc, ENCAP.srcV4);
      assert.equal(e.outerProto, PROTO_IPIP);
      assert.equal(e.ttl, inner[8]);
      assert.equal(e.tos, inner[1]);
      assert.equal(e.df, (inner.readUInt16BE(6) & 0x4000) !== 0);
    } else {
      assert.equal(e.outerSrc, ENCAP.srcV6);
      assert.equal(e.outerProto, innerVersion === 6 ? PROTO_IPV6 : PROTO_IPIP);
      if (innerVersion === 6) {
        assert.equal(e.ttl, inner[7]);
        assert.equal(e.tos, (inner.readUInt32BE(0) >>> 20) & 0xff);
      } else {
        assert.equal(e.ttl, inner[8]);
        assert.equal(e.tos, inner[1]);
      }
    }
    return e.outerDst;
  }

  function expectVerdict(pkt: Buffer, action: number, reason: string) {
    const r = h.runCounted(pkt);
    assert.equal(r.action, action, `action for ${reason}`);
    assert.deepEqual(Object.keys(r.changed), [reason]);
    assert.equal(r.changed[reason as keyof typeof r.changed], 1n);
    if (action === XdpAction.PASS) assert.ok(r.output.equals(pkt), 'a passed packet is untouched');
  }

  test('TCP SYN and non-SYN to an IPv4 VIP: IPv4-in-IPv4', (t) => {
    if (!requireKernel(t)) return;
    expectTx(tcp(CLIENT4, '198.19.0.10', 40000, 80, { syn: true, tos: 0x28, ttl: 61, df: true }), 4, V4_REALS);
    expectTx(tcp(CLIENT4, '198.19.0.10', 40001, 80, { payload: Buffer.from('GET / HTTP/1.1\r\n\r\n'), ttl: 5 }), 4, V4_REALS);
  });

  test('UDP to an IPv4 VIP', (t) => {
    if (!requireKernel(t)) return;
    const pkt = buildPacket({ src: CLIENT4, dst: '198.19.0.10', proto: 'udp', sport: 5353, dport: 53, payload: Buffer.alloc(30, 7) });
    expectTx(pkt, 4, V4_REALS.slice(0, 2));
  });

  test('TCP and UDP to an IPv6 VIP: IPv6-in-IPv6, traffic class and hop limit copied', (t) => {
    if (!requireKernel(t)) return;
    expectTx(tcp(CLIENT6, '2001:db8:19::10', 40000, 443, { syn: true, tos: 0xb8, ttl: 33 }), 6, V6_REALS);
    expectTx(tcp(CLIENT6, '2001:db8:19::10', 40002, 443), 6, V6_REALS);
    expectTx(buildPacket({ src: CLIENT6, dst: '2001:db8:19::10', proto: 'udp', sport: 999, dport: 53 }), 6, V6_REALS);
  });

  test('IPv6 with a hop-by-hop header is parsed past it', (t) => {
    if (!requireKernel(t)) return;
    expectTx(tcp(CLIENT6, '2001:db8:19::10', 40003, 443, { hopByHop: true }), 6, V6_REALS);
  });

  test('IPv4 VIP with IPv6 reals: IPv4-in-IPv6', (t) => {
    if (!requireKernel(t)) return;
    expectTx(tcp(CLIENT4, '198.19.0.12', 41000, 80, { syn: true, tos: 0x10, ttl: 20 }), 6, ['2001:db8:1::4', '2001:db8:1::5']);
  });

  test('all-ports VIP takes any port', (t) => {
    if (!requireKernel(t)) return;
    for (const port of [1, 22, 8080, 65535]) expectTx(tcp(CLIENT4, '198.19.0.11', 40000, port), 4, ['198.18.1.4']);
  });

  test('the same 5-tuple always reaches the same real, and flows spread over all reals', (t) => {
    if (!requireKernel(t)) return;
    const seen = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const sport = 10000 + i;
      const first = expectTx(tcp(CLIENT4, '198.19.0.10', sport, 80, { syn: true }), 4, V4_REALS);
      for (let k = 0; k < 3; k++) {
        assert.equal(expectTx(tcp(CLIENT4, '198.19.0.10', sport, 80, { syn: k === 1 }), 4, V4_REALS), first);
      }
      seen.set(first, (seen.get(first) ?? 0) + 1);
    }
    assert.equal(seen.size, 3, `flows reached ${[...seen.keys()].join(', ')}`);
    for (const [r, n] of seen) assert.ok(n > 300 / 3 / 2, `real ${r} got only ${n} of 300 flows`);
  });

  test('established flows stay on their real when the ring changes; SYNs re-hash', (t) => {
    if (!requireKernel(t)) return;
    const vip = '198.19.0.10';
    const flows = Array.from({ length: 200 }, (_, i) => 20000 + i);
    const before = new Map(flows.map((p) => [p, expectTx(tcp(CLIENT4, vip, p, 80), 4, V4_REALS)]));
    const grown = [...V4_REALS, '198.18.1.9'];
    h.apply(VIPS.map((v) => (v.address === vip && v.port === 80 ? { ...v, reals: grown.map((a) => real(a)) } : v)));
    try {
      for (const p of flows) assert.equal(expectTx(tcp(CLIENT4, vip, p, 80), 4, grown), before.get(p), `flow ${p} moved`);
      const moved = flows.filter((p) => expectTx(tcp(CLIENT4, vip, p, 80, { syn: true }), 4, grown) === '198.18.1.9');
      assert.ok(moved.length > 20, `only ${moved.length} of 200 SYNs went to the new real`);
      // A SYN re-hash replaces the table entry: the flow's next packets follow it.
      for (const p of moved) assert.equal(expectTx(tcp(CLIENT4, vip, p, 80), 4, grown), '198.18.1.9');
    } finally {
      h.apply(VIPS);
    }
  });

  test('LRU bypass: every packet follows the ring', (t) => {
    if (!requireKernel(t)) return;
    const vip = '198.19.0.15';
    const flows = Array.from({ length: 200 }, (_, i) => 30000 + i);
    const before = new Map(flows.map((p) => [p, expectTx(tcp(CLIENT4, vip, p, 80), 4, V4_REALS)]));
    h.apply(VIPS.map((v) => (v.address === vip ? { ...v, reals: V4_REALS.slice(1).map((a) => real(a)) } : v)));
    try {
      for (const p of flows) {
        const now = expectTx(tcp(CLIENT4, vip, p, 80), 4, V4_REALS.slice(1));
        if (before.get(p) !== V4_REALS[0]) assert.equal(now, before.get(p), 'Maglev keeps flows of remaining reals');
      }
    } finally {
      h.apply(VIPS);
    }
  });

  test('hash without source port: all ports of a client go to one real', (t) => {
    if (!requireKernel(t)) return;
    const reals = [...V4_REALS, '198.18.1.4'];
    const perClient = new Set<string>();
    for (let c = 1; c <= 40; c++) {
      const client = `198.18.101.${c}`;
      const chosen = new Set(Array.from({ length: 25 }, (_, i) => expectTx(tcp(client, '198.19.0.13', 1024 + i * 97, 80, { syn: i % 2 === 0 }), 4, reals)));
      assert.equal(chosen.size, 1, `client ${client} was spread over ${[...chosen].join(', ')}`);
      perClient.add([...chosen][0]!);
    }
    assert.ok(perClient.size >= 3, `40 clients used only ${perClient.size} reals`);
  });

  test('packets that are not for a VIP pass untouched, with their reason', (t) => {
    if (!requireKernel(t)) return;
    expectVerdict(tcp(CLIENT4, '198.19.0.99', 40000, 80), XdpAction.PASS, 'PASS_NOT_VIP');
    // A VIP address's other ports are dropped, not passed: test/bpf/icmp.test.ts.
    expectVerdict(buildPacket({ src: CLIENT4, dst: '198.19.0.99', proto: 'udp', sport: 1, dport: 80 }), XdpAction.PASS, 'PASS_NOT_VIP');
    expectVerdict(tcp(CLIENT6, '2001:db8:19::99', 40000, 443), XdpAction.PASS, 'PASS_NOT_VIP');
    const arp = Buffer.alloc(42);
    arp.writeUInt16BE(ETH_P_ARP, 12);
    expectVerdict(arp, XdpAction.PASS, 'PASS_NOT_IP');
    expectVerdict(buildPacket({ src: CLIENT4, dst: '198.19.0.10', proto: PROTO_ICMP, payload: Buffer.alloc(8) }), XdpAction.PASS, 'PASS_VIP_NOT_TCP_UDP');
    expectVerdict(buildPacket({ src: CLIENT4, dst: '198.19.0.99', proto: PROTO_ICMP, payload: Buffer.alloc(8) }), XdpAction.PASS, 'PASS_NOT_VIP');
    // fragments of host traffic are the kernel's
    expectVerdict(tcp(CLIENT4, '198.19.0.99', 1, 2, { fragment: { more: true, offset: 0 } }), XdpAction.PASS, 'PASS_NOT_VIP');
  });

  test('fragments to a VIP address are dropped', (t) => {
    if (!requireKernel(t)) return;
    expectVerdict(tcp(CLIENT4, '198.19.0.10', 40000, 80, { fragment: { more: true, offset: 0 } }), XdpAction.DROP, 'DROP_FRAGMENT');
    expectVerdict(tcp(CLIENT4, '198.19.0.10', 40000, 80, { fragment: { more: false, offset: 185 } }), XdpAction.DROP, 'DROP_FRAGMENT');
    expectVerdict(tcp(CLIENT6, '2001:db8:19::10', 40000, 443, { fragment: { more: true, offset: 0 } }), XdpAction.DROP, 'DROP_FRAGMENT');
  });

  test('truncated and malformed packets: dropped when for a VIP address, else passed', (t) => {
    if (!requireKernel(t)) return;
    const good = tcp(CLIENT4, '198.19.0.10', 40000, 80);
    expectVerdict(good.subarray(0, ETH_HLEN + IPV4_HLEN + 10), XdpAction.DROP, 'DROP_MALFORMED'); // cut TCP header
    expectVerdict(tcp(CLIENT4, '198.19.0.99', 4, 80).subarray(0, ETH_HLEN + IPV4_HLEN + 10), XdpAction.PASS, 'PASS_MALFORMED');
    // (Frames shorter than an Ethernet header cannot be fed to BPF_PROG_TEST_RUN: EINVAL.)
    expectVerdict(good.subarray(0, ETH_HLEN), XdpAction.PASS, 'PASS_MALFORMED'); // Ethernet header only
    expectVerdict(good.subarray(0, ETH_HLEN + 12), XdpAction.PASS, 'PASS_MALFORMED'); // IPv4 header cut
    const badIhl = Buffer.from(good);
    badIhl[ETH_HLEN] = 0x44;
    expectVerdict(badIhl, XdpAction.DROP, 'DROP_MALFORMED');
    const longer = Buffer.from(good);
    longer.writeUInt16BE(good.length, ETH_HLEN + 2); // claims more than the frame has
    expectVerdict(longer, XdpAction.DROP, 'DROP_MALFORMED');
    const badDoff = Buffer.from(good);
    badDoff[ETH_HLEN + IPV4_HLEN + 12] = 0x40;
    expectVerdict(badDoff, XdpAction.DROP, 'DROP_MALFORMED');
    const v6 = tcp(CLIENT6, '2001:db8:19::10', 40000, 443);
    expectVerdict(v6.subarray(0, ETH_HLEN + IPV6_HLEN + 4), XdpAction.DROP, 'DROP_MALFORMED');
    const v6wrongVersion = Buffer.from(v6);
    v6wrongVersion[ETH_HLEN] = 0x40;
    expectVerdict(v6wrongVersion, XdpAction.DROP, 'DROP_MALFORMED');
  });

  test('trailing Ethernet padding is carried but not parsed as payload', (t) => {
    if (!requireKernel(t)) return;
    const small = buildPacket({ src: CLIENT4, dst: '198.19.0.10', proto: 'udp', sport: 7, dport: 53 });
    const padded = Buffer.concat([small, Buffer.alloc(60 - small.length + 4, 0xee)]);
    expectTx(padded, 4, V4_REALS.slice(0, 2));
  });

  test('a VIP without reals drops with DROP_NO_REAL', (t) => {
    if (!requireKernel(t)) return;
    expectVerdict(tcp(CLIENT4, '198.19.0.14', 40000, 80, { syn: true }), XdpAction.DROP, 'DROP_NO_REAL');
    expectVerdict(tcp(CLIENT4, '198.19.0.14', 40000, 80), XdpAction.DROP, 'DROP_NO_REAL');
  });

  test('a packet too big to encapsulate, without DF, is dropped with DROP_TOO_BIG (with DF it is answered: icmp.test.ts)', (t) => {
    if (!requireKernel(t)) return;
    const fits = 1500 - IPV4_HLEN - IPV4_HLEN - 20;
    expectTx(tcp(CLIENT4, '198.19.0.10', 40000, 80, { payload: Buffer.alloc(fits) }), 4, V4_REALS);
    expectVerdict(tcp(CLIENT4, '198.19.0.10', 40000, 80, { payload: Buffer.alloc(fits + 1) }), XdpAction.DROP, 'DROP_TOO_BIG');
  });

  test('an unconfigured next hop drops with DROP_NOT_CONFIGURED', (t) => {
    if (!requireKernel(t)) return;
    h.apply(VIPS, { ...ENCAP, nextHopMac: '00:00:00:00:00:00' });
    try {
      expectVerdict(tcp(CLIENT4, '198.19.0.10', 40000, 80), XdpAction.DROP, 'DROP_NOT_CONFIGURED');
    } finally {
      h.apply(VIPS);
    }
  });

  test('per-VIP and per-real counters count exactly', (t) => {
    if (!requireKernel(t)) return;
    const m = h.lb.maps;
    const num = h.dp.vipNum('198.19.0.10:53/UDP')!;
    const ids = V4_REALS.slice(0, 2).map((a) => h.dp.realId(a)!);
    const vipBefore = readVipStats(m, num);
    const realsBefore = ids.map((id) => readRealStats(m, id));
    let bytes = 0n;
    const perReal = new Map<string, { packets: bigint; bytes: bigint }>();
    const flows = 50;
    for (let i = 0; i < flows; i++) {
      for (let k = 0; k < 3; k++) {
        const pkt = buildPacket({ src: CLIENT4, dst: '198.19.0.10', proto: 'udp', sport: 50000 + i, dport: 53, payload: Buffer.alloc(i + k) });
        const r = expectTx(pkt, 4, V4_REALS.slice(0, 2));
        bytes += BigInt(pkt.length);
        const s = perReal.get(r) ?? { packets: 0n, bytes: 0n };
        s.packets += 1n;
        s.bytes += BigInt(pkt.length);
        perReal.set(r, s);
      }
    }
    const vipAfter = readVipStats(m, num);
    assert.equal(vipAfter.packets - vipBefore.packets, BigInt(flows * 3));
    assert.equal(vipAfter.bytes - vipBefore.bytes, bytes);
    assert.equal(vipAfter.lruMisses - vipBefore.lruMisses, BigInt(flows), 'one LRU miss per new UDP flow');
    V4_REALS.slice(0, 2).forEach((addr, i) => {
      const after = readRealStats(m, ids[i]!);
      const want = perReal.get(addr) ?? { packets: 0n, bytes: 0n };
      assert.equal(after.packets - realsBefore[i]!.packets, want.packets, `packets of ${addr}`);
      assert.equal(after.bytes - realsBefore[i]!.bytes, want.bytes, `bytes of ${addr}`);
    });
  });
});
