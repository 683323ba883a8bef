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
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { parseIp } from '../../src/lib/ip.js';
import { type BalancerHarness, useBalancerHarness } from '../support/balancer-harness.js';
import { requireKernel } from '../support/kernel.js';
import { buildEcho, parseIcmp } from '../support/icmp-packets.js';
import { buildPacket, ETH_HLEN, PROTO_ICMP } from '../support/packets.js';

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

const VIPS: VipSpec[] = [
  { address: VIP4, port: 80, protocol: 'TCP', reals: reals4 },
  { address: VIP4, port: 53, protocol: 'UDP', reals: reals4 },
  { address: QUIET4, port: 80, protocol: 'TCP', reals: reals4 },
  { address: QUIET4, port: 443, protocol: 'TCP', icmpEcho: false, reals: reals4 },
  { address: VIP6, port: 443, protocol: 'TCP', reals: reals6 },
  { address: QUIET6, port: 443, protocol: 'TCP', icmpEcho: false, reals: reals6 },
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

  /** Sends an echo request that must be answered; checks every byte of the answer against the request. */
  function expectReply(request: Buffer): Buffer {
    const r = h.runCounted(request);
    assert.equal(r.action, XdpAction.TX, counted(r));
    assert.deepEqual(r.changed, { TX_ICMP_ECHO_REPLY: 1n });
    const reply = r.output;
    assert.equal(reply.length, request.length, 'the answer is the request, rewritten in place');
    assert.deepEqual([reply.subarray(0, 6), reply.subarray(6, 12)], [request.subarray(6, 12), request.subarray(0, 6)], 'MACs swapped');
    const q = parseIcmp(request);
    const a = parseIcmp(reply);
    assert.ok(a.ipChecksumOk, 'IPv4 header checksum');
    assert.ok(a.checksumOk, 'ICMP checksum');
    const ip = reply.subarray(ETH_HLEN);
    const req = request.subarray(ETH_HLEN);
    if (a.family === 4) {
      assert.deepEqual([ip.subarray(12, 16), ip.subarray(16, 20)], [req.subarray(16, 20), req.subarray(12, 16)], 'addresses swapped');
      assert.equal(ip[8], ICMP_PROTO.ICMP_REPLY_TTL);
      assert.ok(ip.subarray(0, 8).equals(req.subarray(0, 8)), 'version, TOS, length, id, DF unchanged');
      assert.equal(a.msg[0], ICMP_PROTO.ICMP_ECHO_REPLY);
    } else {
      assert.deepEqual([ip.subarray(8, 24), ip.subarray(24, 40)], [req.subarray(24, 40), req.subarray(8, 24)], 'addresses swapped');
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
});
