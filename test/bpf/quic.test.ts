/**
 * QUIC connection-ID routing (BPF_PROG_TEST_RUN), programmed through the
 * Dataplane: a short-header packet whose connection ID carries a real's
 * server id goes to that real from any client address and port; everything
 * else is balanced as UDP always was.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { InvalidStateError } from '../../src/agent/dataplane/desired-state.js';
import { XdpAction } from '../../src/libbpf/test-run.js';
import { BalancerHarness } from '../support/balancer-harness.js';
import { requireKernel } from '../support/kernel.js';
import { buildPacket, parseEncapsulated } from '../support/packets.js';
import { connectionId, quicInitial, quicShortHeader } from '../support/quic-packets.js';

const VIP = '198.19.0.30';
const PORT = 443;
const REALS = ['198.18.1.1', '198.18.1.2', '198.18.1.3'];
const SERVER_IDS = [1, 300, 16383]; // low, two-byte, the largest
const withIds = (ids = SERVER_IDS, weights = [1, 1, 1]) => REALS.map((address, i) => ({ address, weight: weights[i]!, quicServerId: ids[i]! }));
const quicVip = (reals = withIds()): VipSpec => ({ address: VIP, port: PORT, protocol: 'UDP', quicConnectionIdRouting: true, reals });
/** The same reals and ids on a VIP that does not route by them. */
const plainVip: VipSpec = { address: VIP, port: 8443, protocol: 'UDP', reals: withIds() };
const CLIENT = '198.18.100.1';

describe('QUIC connection-ID routing', () => {
  let h: BalancerHarness | undefined;
  before(() => {
    if (process.getuid?.() !== 0) return;
    h = new BalancerHarness({ connectionTable: 65536 });
    h.apply([quicVip(), plainVip]);
  });
  after(() => h?.close());

  const udp = (payload: Buffer, sport: number, src = CLIENT, dport = PORT) => buildPacket({ src, dst: VIP, proto: 'udp', sport, dport, payload });
  function realOf(pkt: Buffer): string {
    const r = h!.run(pkt);
    assert.equal(r.action, XdpAction.TX);
    return parseEncapsulated(r.output).outerDst;
  }
  const clients = (n: number) => Array.from({ length: n }, (_, i) => ({ src: `198.18.${101 + (i % 50)}.${1 + (i % 200)}`, sport: 20000 + i }));

  test('a short header naming a server id reaches that real from any address and port, without the connection table', (t) => {
    if (!requireKernel(t)) return;
    const tableBefore = h!.lb.maps.connTable.keys().length;
    REALS.forEach((real, i) => {
      for (const c of clients(100)) assert.equal(realOf(udp(quicShortHeader(connectionId(SERVER_IDS[i]!)), c.sport, c.src)), real, `server id ${SERVER_IDS[i]}`);
    });
    assert.equal(h!.lb.maps.connTable.keys().length, tableBefore, 'routed by server id: nothing entered the connection table');
  });

  test('a connection migrates: Initial by the ring from one port, then short headers from others stay on its real', (t) => {
    if (!requireKernel(t)) return;
    const first = realOf(udp(quicInitial(), 5000));
    const sid = SERVER_IDS[REALS.indexOf(first)]!;
    for (const c of clients(200)) assert.equal(realOf(udp(quicShortHeader(connectionId(sid)), c.sport, c.src)), first);
    // Without the flag the same packets follow the ring: most would leave the connection's real.
    const spread = clients(200).filter((c) => realOf(udp(quicShortHeader(connectionId(sid)), c.sport, c.src, 8443)) !== first).length;
    assert.ok(spread > 100, `only ${spread} of 200 migrated packets left the real without connection-ID routing`);
  });

  test('long headers, unknown ids, other layouts and too-short packets are balanced as UDP always was', (t) => {
    if (!requireKernel(t)) return;
    const byRing = (payload: Buffer) => clients(150).map((c) => realOf(udp(payload, c.sport + 1000, c.src)));
    for (const payload of [quicInitial(), quicShortHeader(connectionId(999)), quicShortHeader(connectionId(SERVER_IDS[0]!, 2)), Buffer.from([0x41, 0x40])]) {
      const reached = new Set(byRing(payload));
      assert.equal(reached.size, REALS.length, `payload ${payload.subarray(0, 3).toString('hex')}: spread over every real by the ring`);
    }
  });

  test('a draining real keeps its server id; a removed real\'s id is forgotten', (t) => {
    if (!requireKernel(t)) return;
    try {
      h!.apply([quicVip(withIds(SERVER_IDS, [0, 1, 1])), plainVip]);
      assert.equal(realOf(udp(quicShortHeader(connectionId(SERVER_IDS[0]!)), 6000)), REALS[0], 'draining: its connections still find it');
      h!.apply([quicVip(withIds().slice(1)), { ...plainVip, reals: withIds().slice(1) }]);
      const reached = new Set(clients(100).map((c) => realOf(udp(quicShortHeader(connectionId(SERVER_IDS[0]!)), c.sport, c.src))));
      assert.ok(!reached.has(REALS[0]!), 'nothing goes to the removed real');
      assert.equal(reached.size, 2, 'its id now follows the ring');
      assert.equal(h!.lb.maps.quicServers.keys().length, REALS.length - 1, 'its entry is gone: the two remaining reals\' are left');
    } finally {
      h!.apply([quicVip(), plainVip]);
    }
  });

  test('a repeated or out-of-range id is left out and the VIP stays; ids are per VIP; TCP cannot route by them', (t) => {
    if (!requireKernel(t)) return;
    const OTHER_VIP = '198.19.0.31';
    const other: VipSpec = { address: OTHER_VIP, port: PORT, protocol: 'UDP', quicConnectionIdRouting: true, reals: [{ address: '198.18.1.9', weight: 1, quicServerId: 42 }] };
    try {
      // Reals .1 and .2 both claim 1: neither gets it; .3 keeps 16383. The other VIP's real has 42, and so may .1 here.
      h!.apply([quicVip(withIds([1, 1, 16383])), other]);
      // Ports no earlier test used: their flows are in no connection table entry.
      const reached = new Set(clients(100).map((c) => realOf(udp(quicShortHeader(connectionId(1)), c.sport + 3000, c.src))));
      assert.equal(reached.size, REALS.length, 'id 1, claimed twice, names nobody: the ring');
      assert.equal(realOf(udp(quicShortHeader(connectionId(16383)), 7000)), REALS[2]);
      // 42 is the other VIP's: a packet to this VIP naming it stays among this VIP's reals.
      const to42 = new Set(clients(100).map((c) => realOf(udp(quicShortHeader(connectionId(42)), c.sport + 4000, c.src))));
      assert.ok(!to42.has('198.18.1.9'), 'a connection ID cannot steer to another VIP\'s real');
      assert.equal(realOf(buildPacket({ src: CLIENT, dst: OTHER_VIP, proto: 'udp', sport: 7001, dport: PORT, payload: quicShortHeader(connectionId(42)) })), '198.18.1.9');
      h!.apply([quicVip(withIds([0, 20000, 3]))]);
      assert.equal(realOf(udp(quicShortHeader(connectionId(3)), 7002)), REALS[2], 'the usable id is kept');
      assert.throws(() => h!.apply([{ address: VIP, port: 443, protocol: 'TCP', quicConnectionIdRouting: true, reals: [] }]),
        (err: Error) => err instanceof InvalidStateError && /QUIC runs over UDP/.test(err.message));
    } finally {
      h!.apply([quicVip(), plainVip]);
    }
  });

  test('a VIP replaced by another with the same real in one apply: the new VIP\'s entry names the real', (t) => {
    if (!requireKernel(t)) return;
    const moved: VipSpec = { ...quicVip(), port: 4433 };
    try {
      h!.apply([moved]); // the old VIP and its entries go; its reals are released and taken again
      assert.equal(realOf(udp(quicShortHeader(connectionId(SERVER_IDS[1]!)), 7100, CLIENT, 4433)), REALS[1]);
      assert.equal(h!.lb.maps.quicServers.keys().length, REALS.length, 'only the new VIP\'s entries');
    } finally {
      h!.apply([quicVip(), plainVip]);
    }
  });
});
