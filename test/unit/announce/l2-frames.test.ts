/** The takeover frames of L2 mode, byte for byte against frames built from the RFCs by the test support. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  gratuitousArp, icmpv6Checksum, ipv6MulticastMac, solicitedNode, takeoverFrames, unsolicitedNeighborAdvert,
} from '../../../src/agent/announce/l2-frames.js';
import { parseIp } from '../../../src/lib/ip.js';
import { ARP_REPLY, ARP_REQUEST, buildArp, buildNdp, ICMPV6_NA, icmpv6ChecksumOk, NA_OVERRIDE, ND_OPT_TLLA, solicitedNodeOf }
  from '../../support/l2-packets.js';

const MAC = '02:00:00:00:19:01';
const VIP4 = '198.19.0.10';
const VIP6 = '2001:db8:19::abcd:10';

test('a gratuitous ARP request: broadcast, our address as sender and target, zero target MAC (RFC 5227)', () => {
  const want = buildArp({ op: ARP_REQUEST, sha: MAC, spa: VIP4, tha: '00:00:00:00:00:00', tpa: VIP4, dstMac: 'ff:ff:ff:ff:ff:ff' });
  assert.equal(gratuitousArp(MAC, VIP4).toString('hex'), want.toString('hex'));
  assert.equal(gratuitousArp(MAC, parseIp(VIP4), 'request').toString('hex'), want.toString('hex'));
});

test('a gratuitous ARP reply repeats our MAC as the target MAC, which Linux requires of a gratuitous reply', () => {
  const want = buildArp({ op: ARP_REPLY, sha: MAC, spa: VIP4, tha: MAC, tpa: VIP4, dstMac: 'ff:ff:ff:ff:ff:ff' });
  assert.equal(gratuitousArp(MAC, VIP4, 'reply').toString('hex'), want.toString('hex'));
});

test('an unsolicited neighbor advertisement: to all nodes, Override only, our MAC in the target option, checksum right', () => {
  const frame = unsolicitedNeighborAdvert(MAC, VIP6);
  const want = buildNdp({
    type: ICMPV6_NA, src: VIP6, dst: 'ff02::1', target: VIP6, flags: NA_OVERRIDE, options: [[ND_OPT_TLLA, MAC]],
    dstMac: '33:33:00:00:00:01', srcMac: MAC,
  });
  assert.equal(frame.toString('hex'), want.toString('hex'));
  assert.ok(icmpv6ChecksumOk(frame));
});

test('the ICMPv6 checksum of an odd-length message pads it with a zero byte', () => {
  const src = parseIp('2001:db8::1');
  const dst = parseIp('2001:db8::2');
  const msg = Buffer.from([128, 0, 0, 0, 0, 1, 0, 1, 0x61]);
  msg.writeUInt16BE(icmpv6Checksum(src, dst, msg), 2);
  const frame = Buffer.concat([Buffer.alloc(14), Buffer.alloc(40), msg]);
  frame.writeUInt16BE(msg.length, 14 + 4);
  src.bytes.copy(frame, 14 + 8);
  dst.bytes.copy(frame, 14 + 24);
  assert.ok(icmpv6ChecksumOk(frame));
});

test('solicited-node group and multicast MACs', () => {
  assert.deepEqual(solicitedNode(VIP6), { group: solicitedNodeOf(VIP6).ip, mac: solicitedNodeOf(VIP6).mac });
  assert.deepEqual(solicitedNode('2001:db8::1:2345'), { group: 'ff02::1:ff01:2345', mac: '33:33:ff:01:23:45' });
  assert.equal(ipv6MulticastMac('ff02::1'), '33:33:00:00:00:01');
});

test('a takeover sends a gratuitous request and reply for IPv4, one advertisement for IPv6', () => {
  assert.deepEqual(takeoverFrames(MAC, VIP4), [gratuitousArp(MAC, VIP4, 'request'), gratuitousArp(MAC, VIP4, 'reply')]);
  assert.deepEqual(takeoverFrames(MAC, VIP6), [unsolicitedNeighborAdvert(MAC, VIP6)]);
});

test('the wrong family or a bad MAC is refused, saying what to send instead', () => {
  assert.throws(() => gratuitousArp(MAC, VIP6), /gratuitous ARP is for IPv4 addresses: 2001:db8:19::abcd:10 is IPv6 \(send an unsolicited neighbor advertisement\)/);
  assert.throws(() => unsolicitedNeighborAdvert(MAC, VIP4), /neighbor advertisements are for IPv6 addresses: 198.19.0.10 is IPv4 \(send a gratuitous ARP\)/);
  assert.throws(() => solicitedNode(VIP4), /is IPv4/);
  assert.throws(() => gratuitousArp('02:00:00:00:19', VIP4), /"02:00:00:00:19" is not a MAC address/);
});
