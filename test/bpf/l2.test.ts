/**
 * L2 mode in the balancer program (BPF_PROG_TEST_RUN): ARP requests and
 * neighbor solicitations for addresses in l2_addrs are answered in place,
 * byte for byte as the RFCs lay the answers out; everything else goes on as
 * if L2 mode did not exist. Frames are built and checked by
 * test/support/l2-packets.ts, not by the code under test.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BALANCER_MAPS, typedMap } from '../../src/bpf/maps.js';
import { L2_F_ANSWER, type Reason } from '../../src/bpf/consts.js';
import { parseIp } from '../../src/lib/ip.js';
import { XdpAction } from '../../src/libbpf/test-run.js';
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import type { TraceEvent } from '../../src/api/trace.js';
import { parseTraceFilter } from '../../src/api/trace-filter.js';
import { Tracer } from '../../src/agent/trace/tracer.js';
import { formatTraceEvent } from '../../src/cli/trace-format.js';
import { BalancerHarness, ENCAP } from '../support/balancer-harness.js';
import { requireKernel } from '../support/kernel.js';
import { buildPacket, ETH_HLEN, IPV6_HLEN, PROTO_ICMP } from '../support/packets.js';
import {
  ARP_REPLY, ARP_REQUEST, buildArp, buildNdp, ICMPV6_NA, ICMPV6_NS, icmpv6ChecksumOk, NA_OVERRIDE, NA_SOLICITED, ND_OPT_SLLA,
  ND_OPT_TLLA, solicitedNodeOf,
} from '../support/l2-packets.js';

const VIP4 = '198.19.0.10';
const VIP6 = '2001:db8:19::10';
const L2_ONLY = '198.19.0.20';
const NOT_ANSWERED = '198.19.0.30';
const UNKNOWN = '198.19.0.99';
const CLIENT4 = '198.18.100.1';
const CLIENT6 = '2001:db8:100::1';
const CLIENT_MAC = '02:00:00:00:00:aa';
const OTHER_HOST_MAC = '02:00:00:00:00:bb';
const OUR_MAC = ENCAP.srcMac;
const NA_FRAME_LEN = ETH_HLEN + IPV6_HLEN + 32;
const NONCE_OPT = 14; // RFC 3971 5.3.2: any option the program must skip

const VIPS: VipSpec[] = [
  { address: VIP4, port: 80, protocol: 'TCP', reals: [{ address: '198.18.1.1', weight: 1 }] },
  { address: VIP6, port: 443, protocol: 'TCP', reals: [{ address: '2001:db8:1::1', weight: 1 }] },
];

const arpRequest = (tpa: string, extra: Partial<Parameters<typeof buildArp>[0]> = {}) =>
  buildArp({ op: ARP_REQUEST, sha: CLIENT_MAC, spa: CLIENT4, tpa, ...extra });
const arpReply = (spa: string, tpa = CLIENT4) =>
  buildArp({ op: ARP_REPLY, sha: OUR_MAC, spa, tha: CLIENT_MAC, tpa, dstMac: CLIENT_MAC, srcMac: OUR_MAC });

type NdpExtra = Partial<Parameters<typeof buildNdp>[0]>;
const solicit = (target: string, extra: NdpExtra = {}) =>
  buildNdp({
    type: ICMPV6_NS, src: CLIENT6, dst: solicitedNodeOf(target).ip, target, options: [[ND_OPT_SLLA, CLIENT_MAC]],
    dstMac: solicitedNodeOf(target).mac, srcMac: CLIENT_MAC, ...extra,
  });
const advert = (target: string) =>
  buildNdp({
    type: ICMPV6_NA, src: target, dst: CLIENT6, target, flags: NA_SOLICITED | NA_OVERRIDE, options: [[ND_OPT_TLLA, OUR_MAC]],
    dstMac: CLIENT_MAC, srcMac: OUR_MAC,
  });

describe('L2 mode: ARP and NDP answers', () => {
  let h: BalancerHarness;
  before(() => {
    if (process.getuid?.() !== 0) return;
    h = new BalancerHarness();
    h.apply(VIPS);
    const l2 = typedMap(BALANCER_MAPS.l2Addrs, h.lb.maps.l2Addrs);
    for (const a of [VIP4, VIP6, L2_ONLY]) l2.set(parseIp(a), L2_F_ANSWER);
    l2.set(parseIp(NOT_ANSWERED), 0);
  });
  after(() => h?.close());

  /** Runs a frame that must be answered; returns the answer. */
  function expectAnswer(frame: Buffer, reason: Reason, want: Buffer): Buffer {
    const r = h.runCounted(frame);
    assert.equal(r.action, XdpAction.TX, `expected XDP_TX, got ${r.action} (${Object.keys(r.changed).join(', ')})`);
    assert.deepEqual(r.changed, { [reason]: 1n });
    assert.equal(r.output.toString('hex'), want.toString('hex'));
    return r.output;
  }

  /** Runs a frame that must not be answered: it goes on as without L2 mode, untouched when passed. */
  function expectNoAnswer(frame: Buffer, reason: Reason = 'PASS_NOT_IP') {
    const r = h.runCounted(frame);
    assert.deepEqual(r.changed, { [reason]: 1n });
    assert.notEqual(r.action, XdpAction.TX);
    if (r.action === XdpAction.PASS) assert.ok(r.output.equals(frame), 'a passed frame is untouched');
  }

  test('an ARP request for an L2 address gets the reply from our MAC, in place', (t) => {
    if (!requireKernel(t)) return;
    expectAnswer(arpRequest(VIP4), 'TX_ARP_REPLY', arpReply(VIP4));
    expectAnswer(arpRequest(L2_ONLY), 'TX_ARP_REPLY', arpReply(L2_ONLY));
    // unicast to our MAC (a host refreshing its entry)
    expectAnswer(arpRequest(VIP4, { dstMac: OUR_MAC }), 'TX_ARP_REPLY', arpReply(VIP4));
    // Ethernet padding to 60 bytes is carried
    const padding = Buffer.alloc(18, 0);
    expectAnswer(Buffer.concat([arpRequest(VIP4), padding]), 'TX_ARP_REPLY', Buffer.concat([arpReply(VIP4), padding]));
    // a probe (RFC 5227, sender 0.0.0.0) is answered as the kernel answers it: the address is taken
    expectAnswer(arpRequest(VIP4, { spa: '0.0.0.0' }), 'TX_ARP_REPLY', arpReply(VIP4, '0.0.0.0'));
  });

  test('ARP that is not a question for us is passed untouched', (t) => {
    if (!requireKernel(t)) return;
    expectNoAnswer(arpRequest(UNKNOWN));
    expectNoAnswer(arpRequest(NOT_ANSWERED), 'PASS_NOT_IP');
    expectNoAnswer(arpRequest(VIP4, { dstMac: OTHER_HOST_MAC }), 'PASS_NOT_IP'); // another host's, seen promiscuously
    expectNoAnswer(buildArp({ op: ARP_REQUEST, sha: OTHER_HOST_MAC, spa: VIP4, tpa: VIP4 })); // gratuitous: an announcement
    expectNoAnswer(buildArp({ op: ARP_REPLY, sha: OTHER_HOST_MAC, spa: VIP4, tha: OTHER_HOST_MAC, tpa: VIP4 }));
    expectNoAnswer(buildArp({ op: ARP_REPLY, sha: CLIENT_MAC, spa: CLIENT4, tha: OUR_MAC, tpa: VIP4, dstMac: OUR_MAC }));
  });

  test('malformed and short ARP is passed, not answered', (t) => {
    if (!requireKernel(t)) return;
    const good = arpRequest(VIP4);
    for (const cut of [ETH_HLEN, ETH_HLEN + 8, ETH_HLEN + 27]) expectNoAnswer(good.subarray(0, cut));
    const bad = (offset: number, value: number, size: 1 | 2) => {
      const b = Buffer.from(good);
      if (size === 1) b.writeUInt8(value, ETH_HLEN + offset);
      else b.writeUInt16BE(value, ETH_HLEN + offset);
      return b;
    };
    expectNoAnswer(bad(0, 6, 2)); // hardware type IEEE 802
    expectNoAnswer(bad(2, 0x86dd, 2)); // protocol IPv6
    expectNoAnswer(bad(4, 8, 1)); // 8-byte hardware addresses
    expectNoAnswer(bad(5, 16, 1)); // 16-byte protocol addresses
    expectNoAnswer(bad(6, 3, 2)); // RARP request
    const zeros = Buffer.alloc(good.length);
    good.copy(zeros, 12, 12, ETH_HLEN);
    expectNoAnswer(zeros); // ethertype ARP, all else zero
  });

  test('a neighbor solicitation for an L2 address gets a solicited, overriding advertisement with our MAC', (t) => {
    if (!requireKernel(t)) return;
    const want = advert(VIP6);
    const out = expectAnswer(solicit(VIP6), 'TX_NDP_ADVERT', want);
    assert.equal(out.length, NA_FRAME_LEN);
    assert.ok(icmpv6ChecksumOk(out), 'ICMPv6 checksum of the advertisement');
    // unicast to the address itself (neighbor unreachability detection)
    expectAnswer(solicit(VIP6, { dst: VIP6, dstMac: OUR_MAC }), 'TX_NDP_ADVERT', want);
    // from a link-local source
    expectAnswer(solicit(VIP6, { src: 'fe80::aa' }), 'TX_NDP_ADVERT',
      buildNdp({ type: ICMPV6_NA, src: VIP6, dst: 'fe80::aa', target: VIP6, flags: NA_SOLICITED | NA_OVERRIDE,
        options: [[ND_OPT_TLLA, OUR_MAC]], dstMac: CLIENT_MAC, srcMac: OUR_MAC }));
  });

  test('a solicitation without options grows by the address option; one with more shrinks to it', (t) => {
    if (!requireKernel(t)) return;
    const none = solicit(VIP6, { options: [] });
    assert.equal(none.length, NA_FRAME_LEN - 8);
    assert.ok(icmpv6ChecksumOk(expectAnswer(none, 'TX_NDP_ADVERT', advert(VIP6))));
    const more = solicit(VIP6, { options: [[ND_OPT_SLLA, CLIENT_MAC], [NONCE_OPT, '01:02:03:04:05:06']] });
    assert.ok(icmpv6ChecksumOk(expectAnswer(more, 'TX_NDP_ADVERT', advert(VIP6))));
  });

  test('duplicate address detection and solicitations that are not for us or not valid are not answered', (t) => {
    if (!requireKernel(t)) return;
    // DAD: from the unspecified address, no source option
    expectNoAnswer(solicit(VIP6, { src: '::', options: [] }), 'PASS_NOT_VIP');
    expectNoAnswer(solicit('2001:db8:19::99'), 'PASS_NOT_VIP');
    expectNoAnswer(solicit(VIP6, { hopLimit: 64 }), 'PASS_NOT_VIP'); // routed from elsewhere: RFC 4861 7.1.1
    expectNoAnswer(solicit(VIP6, { code: 1 }), 'PASS_NOT_VIP');
    expectNoAnswer(solicit(VIP6, { options: [Buffer.from([ND_OPT_SLLA, 0, 0, 0, 0, 0, 0, 0])] }), 'PASS_NOT_VIP'); // zero-length option
    expectNoAnswer(solicit(VIP6, { options: [Buffer.from([ND_OPT_SLLA, 1, 0, 0])] }), 'PASS_NOT_VIP'); // option past the end
    expectNoAnswer(solicit(VIP6, { options: Array.from({ length: 5 }, () => [ND_OPT_SLLA, CLIENT_MAC] as [number, string]) }),
      'PASS_NOT_VIP'); // more options than the program walks
    expectNoAnswer(solicit(VIP6, { target: 'ff02::1', dst: solicitedNodeOf(VIP6).ip }), 'PASS_NOT_VIP'); // multicast target
    expectNoAnswer(solicit(VIP6, { dstMac: OTHER_HOST_MAC, dst: VIP6 }), 'PASS_VIP_NOT_TCP_UDP'); // another host's
    expectNoAnswer(buildNdp({ type: ICMPV6_NA, src: CLIENT6, dst: VIP6, target: CLIENT6, options: [[ND_OPT_TLLA, CLIENT_MAC]],
      dstMac: OUR_MAC, srcMac: CLIENT_MAC }), 'PASS_VIP_NOT_TCP_UDP');
    const cut = solicit(VIP6);
    expectNoAnswer(cut.subarray(0, cut.length - 4), 'PASS_MALFORMED'); // shorter than its IPv6 payload length
    expectNoAnswer(cut.subarray(0, ETH_HLEN + IPV6_HLEN + 4), 'PASS_MALFORMED');
  });

  test('VIP traffic to an L2 address is balanced as before', (t) => {
    if (!requireKernel(t)) return;
    const syn = buildPacket({ src: CLIENT4, dst: VIP4, proto: 'tcp', sport: 40000, dport: 80, syn: true });
    assert.deepEqual(h.runCounted(syn).changed, { TX_ENCAP: 1n });
    const ping = buildPacket({ src: CLIENT4, dst: VIP4, proto: PROTO_ICMP, payload: Buffer.alloc(8) });
    assert.deepEqual(h.runCounted(ping).changed, { PASS_VIP_NOT_TCP_UDP: 1n });
  });

  test('without our MAC in ctl nothing is answered', (t) => {
    if (!requireKernel(t)) return;
    const ctl = typedMap(BALANCER_MAPS.ctl, h.lb.maps.ctl);
    const configured = ctl.get(0)!;
    ctl.set(0, { ...configured, srcMac: '00:00:00:00:00:00' });
    try {
      expectNoAnswer(arpRequest(VIP4));
      expectNoAnswer(solicit(VIP6), 'PASS_NOT_VIP');
    } finally {
      ctl.set(0, configured);
    }
  });

  test('xdplb trace shows the answers: ARP by its addresses, NDP as ICMPv6, each with the frame sent', (t) => {
    if (!requireKernel(t)) return;
    const tracer = new Tracer(h.lb.maps, () => h.dp.installedVipNums(), 1);
    const events: TraceEvent[] = [];
    try {
      for (const client of [CLIENT4, CLIENT6]) {
        const close = tracer.open({ filter: parseTraceFilter({ client }), onEvent: (e) => events.push(e) });
        try {
          h.run(client === CLIENT4 ? arpRequest(VIP4) : solicit(VIP6));
          tracer.poll();
        } finally {
          close();
        }
      }
    } finally {
      tracer.shutdown();
    }
    assert.deepEqual(events.map((e) => [e.proto, e.src, e.dst, e.verdict, e.reason, Buffer.from(e.frameOut, 'base64').toString('hex')]), [
      ['ARP', CLIENT4, VIP4, 'tx', 'tx_arp_reply', arpReply(VIP4).toString('hex')],
      ['ICMPv6', CLIENT6, solicitedNodeOf(VIP6).ip, 'tx', 'tx_ndp_advert', advert(VIP6).toString('hex')],
    ]);
    assert.match(formatTraceEvent(events[0]!), new RegExp(` ARP ${CLIENT4} > ${VIP4}  no vip  TX tx_arp_reply  42 -> 42 bytes$`));
  });
});
