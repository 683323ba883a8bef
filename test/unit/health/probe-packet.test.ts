/**
 * The probe's frames against known-good encodings: each hex string below was
 * built once and read back with `tcpdump -vv -n -r` (tcpdump 4.99), which
 * printed the outer and inner headers as intended and "cksum ... (correct)"
 * for every TCP checksum (and no "bad cksum" for the IPv4 headers).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildProbeFrame, ETH_HLEN, internetChecksum, parseSegment, TCP_ACK, TCP_RST, TCP_SYN, tunnelOf } from '../../../src/agent/health/probe-packet.js';

const ENCAP = { srcMac: '02:00:00:00:80:01', nextHopMac: '02:00:00:00:80:02', srcV4: '198.18.80.1', srcV6: '2001:db8:80::1' };

const KNOWN = {
  ipip: '0200000080020200000080010800450000400000400040040d89c6125001c612510b4500002c0000400040060e9bc6125001c613500aee48005011223344000000006002faf03f090000020404b0',
  ip6ip6: '02000000800202000000800186dd600123450040294020010db800800000000000000000000120010db8008100000000000000000011600000000018064020010db800800000000000000000000120010db8008900000000000000000010ee49005055667788000000006002faf086250000020404b0',
  ip4ip6: '02000000800202000000800186dd600abcde002c044020010db800800000000000000000000120010db80081000000000000000000114500002c0000400040060e9bc6125001c613500aee4a005099aabbcc000000006002faf02df60000020404b0',
  rst: '02000000800202000000800108004500003c0000400040040d8dc6125001c612510b450000280000400040060e9fc6125001c613500aee48005011223345000000005004000050af0000',
};

describe('probe frames', () => {
  test('IPv4 in IPv4 SYN: byte for byte the known-good frame', () => {
    const f = buildProbeFrame({ src: '198.18.80.1', srcPort: 61000, vip: '198.19.80.10', vipPort: 80, real: '198.18.81.11', flags: TCP_SYN, seq: 0x11223344 }, ENCAP);
    assert.equal(f.toString('hex'), KNOWN.ipip);
  });

  test('IPv6 in IPv6 SYN, the flow label given', () => {
    const f = buildProbeFrame({ src: '2001:db8:80::1', srcPort: 61001, vip: '2001:db8:89::10', vipPort: 80, real: '2001:db8:81::11', flags: TCP_SYN, seq: 0x55667788 },
      ENCAP, 0x12345);
    assert.equal(f.toString('hex'), KNOWN.ip6ip6);
  });

  test('IPv4 in IPv6 SYN: outer next header IPIP, the inner IPv4 as in IPv4 in IPv4', () => {
    const f = buildProbeFrame({ src: '198.18.80.1', srcPort: 61002, vip: '198.19.80.10', vipPort: 80, real: '2001:db8:81::11', flags: TCP_SYN, seq: 0x99aabbcc },
      ENCAP, 0xabcde);
    assert.equal(f.toString('hex'), KNOWN.ip4ip6);
  });

  test('the RST that ends a probe: no options, window 0, sequence ISN + 1', () => {
    const f = buildProbeFrame({ src: '198.18.80.1', srcPort: 61000, vip: '198.19.80.10', vipPort: 80, real: '198.18.81.11', flags: TCP_RST, seq: 0x11223345 }, ENCAP);
    assert.equal(f.toString('hex'), KNOWN.rst);
  });

  test('checksums verify to zero over the headers and the pseudo-header', () => {
    const f = Buffer.from(KNOWN.ipip, 'hex');
    const outer = f.subarray(ETH_HLEN, ETH_HLEN + 20);
    const inner = f.subarray(ETH_HLEN + 20, ETH_HLEN + 40);
    const tcp = f.subarray(ETH_HLEN + 40);
    assert.equal(internetChecksum(outer), 0);
    assert.equal(internetChecksum(inner), 0);
    let pseudo = 6 + tcp.length;
    for (let i = 12; i < 20; i += 2) pseudo += inner.readUInt16BE(i);
    assert.equal(internetChecksum(tcp, pseudo), 0);
  });

  test('refuses what the dataplane would not send: IPv6 in IPv4, a source of another family, no outer source', () => {
    assert.equal(tunnelOf('2001:db8:89::10', '198.18.81.11'), null);
    assert.throws(() => buildProbeFrame({ src: '2001:db8:80::1', srcPort: 1, vip: '2001:db8:89::10', vipPort: 80, real: '198.18.81.11', flags: TCP_SYN, seq: 1 }, ENCAP),
      /IPv6 in IPv4/);
    assert.throws(() => buildProbeFrame({ src: '2001:db8:80::1', srcPort: 1, vip: '198.19.80.10', vipPort: 80, real: '198.18.81.11', flags: TCP_SYN, seq: 1 }, ENCAP),
      /family/);
    assert.throws(() => buildProbeFrame({ src: '198.18.80.1', srcPort: 1, vip: '198.19.80.10', vipPort: 80, real: '2001:db8:81::11', flags: TCP_SYN, seq: 1 },
      { ...ENCAP, srcV6: undefined }), /no encapsulation source/);
  });

  test('parseSegment reads the inner segment of a frame, and a SYN-ACK of either family', () => {
    const f = Buffer.from(KNOWN.ip4ip6, 'hex');
    const inner = f.subarray(ETH_HLEN + 40);
    assert.deepEqual(parseSegment(inner), { src: '198.18.80.1', dst: '198.19.80.10', srcPort: 61002, dstPort: 80, seq: 0x99aabbcc, ack: 0, flags: TCP_SYN });
    const v6 = Buffer.from(KNOWN.ip6ip6, 'hex').subarray(ETH_HLEN + 40);
    v6[40 + 13] = TCP_SYN | TCP_ACK;
    assert.equal(parseSegment(v6)?.flags, TCP_SYN | TCP_ACK);
    assert.equal(parseSegment(v6)?.src, '2001:db8:80::1');
    assert.equal(parseSegment(Buffer.from(KNOWN.ipip, 'hex').subarray(ETH_HLEN)), null, 'the outer header carries IPIP, not TCP');
    const fragment = Buffer.from(inner);
    fragment.writeUInt16BE(0x0001, 6);
    assert.equal(parseSegment(fragment), null, 'a later fragment has no ports');
    assert.equal(parseSegment(inner.subarray(0, 30)), null, 'a cut header');
  });
});
