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
      assert.equal(h!.lb.maps.quicServers.lookup(Buffer.from(Uint32Array.of(SERVER_IDS[0]!).buffer))!.readUInt32LE(0), 0, 'its entry is cleared');
    } finally {
      h!.apply([quicVip(), plainVip]);
    }
  });

  test('server ids are checked: in range, one per real, one real per id, on TCP never', (t) => {
    if (!requireKernel(t)) return;
    const refused = (vips: VipSpec[], pattern: RegExp) =>
      assert.throws(() => h!.apply(vips), (err: Error) => err instanceof InvalidStateError && pattern.test(err.message), String(pattern));
    refused([quicVip(withIds([1, 1, 2]))], /server id 1 is also real 198\.18\.1\.1's/);
    refused([quicVip(withIds([0, 2, 3]))], /quicServerId: 0 is not an integer in 1\.\.16383/);
    refused([quicVip(), { ...plainVip, quicConnectionIdRouting: true, reals: withIds([2, 1, 3]) }], /real 198\.18\.1\.1 has QUIC server id 2 here and 1 in VIP/);
    refused([quicVip(), { address: VIP, port: 443, protocol: 'TCP', quicConnectionIdRouting: true, reals: [] }], /QUIC runs over UDP/);
    // The maps are as they were: routing by id still works.
    assert.equal(realOf(udp(quicShortHeader(connectionId(SERVER_IDS[2]!)), 7000)), REALS[2]);
  });
});
