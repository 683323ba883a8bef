/** decap restores exactly what the balancer encapsulated. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type LoadedDecap, loadDecap } from '../../src/bpf/programs.js';
import { testRun, XdpAction } from '../../src/libbpf/test-run.js';
import { readDecapReasons } from '../../src/agent/dataplane/counters.js';
import { setDecapAddrs } from '../../src/decap/decap-addrs.js';
import type { DecapReason } from '../../src/bpf/consts.js';
import { BalancerHarness } from '../support/balancer-harness.js';
import { requireKernel } from '../support/kernel.js';
import { buildPacket, ETH_HLEN, ETH_P_IP, ETH_P_IPV6, PROTO_IPIP } from '../support/packets.js';

describe('decap', () => {
  let h: BalancerHarness;
  let d: LoadedDecap;
  before(() => {
    if (process.getuid?.() !== 0) return;
    h = new BalancerHarness();
    h.apply([
      { address: '198.19.0.10', port: 80, protocol: 'TCP', reals: [{ address: '198.18.1.1', weight: 1 }] },
      { address: '198.19.0.12', port: 80, protocol: 'TCP', reals: [{ address: '2001:db8:1::4', weight: 1 }] },
      { address: '2001:db8:19::10', port: 443, protocol: 'TCP', reals: [{ address: '2001:db8:1::4', weight: 1 }] },
    ]);
    d = loadDecap();
    setDecapAddrs(d.maps, ['198.18.1.1', '2001:db8:1::4']);
  });
  after(() => {
    h?.close();
    d?.object.close();
  });

  function decap(frame: Buffer, reason: DecapReason) {
    const before = readDecapReasons(d.maps);
    const r = testRun(d.progFd, frame);
    const afterCounts = readDecapReasons(d.maps);
    for (const k of Object.keys(afterCounts) as DecapReason[]) {
      assert.equal(afterCounts[k] - before[k], k === reason ? 1n : 0n, `decap counter ${k}`);
    }
    return r;
  }

  const cases: [string, Buffer, DecapReason, number][] = [
    ['IPv4 in IPv4', buildPacket({ src: '198.18.100.1', dst: '198.19.0.10', proto: 'tcp', sport: 1000, dport: 80, syn: true, payload: Buffer.from('hello') }), 'DECAP_V4_IN_V4', ETH_P_IP],
    ['IPv4 in IPv6', buildPacket({ src: '198.18.100.1', dst: '198.19.0.12', proto: 'tcp', sport: 1000, dport: 80, ack: true }), 'DECAP_V4_IN_V6', ETH_P_IP],
    ['IPv6 in IPv6', buildPacket({ src: '2001:db8:100::1', dst: '2001:db8:19::10', proto: 'tcp', sport: 1000, dport: 443, syn: true }), 'DECAP_V6_IN_V6', ETH_P_IPV6],
  ];
  for (const [name, original, reason, ethertype] of cases) {
    test(`${name}: the original packet comes back byte for byte`, (t) => {
      if (!requireKernel(t)) return;
      const tx = h.run(original);
      assert.equal(tx.action, XdpAction.TX);
      const r = decap(tx.output, reason);
      assert.equal(r.action, XdpAction.PASS);
      assert.equal(r.output.length, original.length);
      assert.equal(r.output.readUInt16BE(12), ethertype);
      assert.ok(r.output.subarray(ETH_HLEN).equals(original.subarray(ETH_HLEN)), 'inner packet restored');
    });
  }

  test('packets not for a local tunnel address pass untouched', (t) => {
    if (!requireKernel(t)) return;
    const plain = buildPacket({ src: '198.18.100.1', dst: '198.18.1.1', proto: 'tcp', sport: 1, dport: 22, syn: true });
    assert.ok(decap(plain, 'DECAP_PASS_NOT_ENCAP').output.equals(plain));
    setDecapAddrs(d.maps, ['2001:db8:1::4']);
    try {
      const tx = h.run(cases[0]![1]);
      const r = decap(tx.output, 'DECAP_PASS_NOT_ENCAP');
      assert.equal(r.action, XdpAction.PASS);
      assert.ok(r.output.equals(tx.output));
    } finally {
      setDecapAddrs(d.maps, ['198.18.1.1', '2001:db8:1::4']);
    }
  });

  test('an IPIP packet whose inner header is not IPv4 is dropped', (t) => {
    if (!requireKernel(t)) return;
    const tx = Buffer.from(h.run(cases[0]![1]).output);
    tx[ETH_HLEN + 20] = 0x65; // inner version 6 under protocol IPIP
    assert.equal(tx[ETH_HLEN + 9], PROTO_IPIP);
    assert.equal(decap(tx, 'DECAP_DROP_MALFORMED').action, XdpAction.DROP);
    const cut = h.run(cases[0]![1]).output.subarray(0, ETH_HLEN + 20 + 10);
    assert.equal(decap(cut, 'DECAP_DROP_MALFORMED').action, XdpAction.DROP);
  });

  test('setDecapAddrs writes only the difference', (t) => {
    if (!requireKernel(t)) return;
    assert.deepEqual(setDecapAddrs(d.maps, ['198.18.1.1', '2001:db8:1::4']), { added: 0, removed: 0 });
    assert.deepEqual(setDecapAddrs(d.maps, ['198.18.1.1', '2001:db8:1::4', '198.18.1.2']), { added: 1, removed: 0 });
    assert.deepEqual(setDecapAddrs(d.maps, ['198.18.1.1', '2001:db8:1::4']), { added: 0, removed: 1 });
  });
});
