/**
 * The Dataplane on the kernel's maps: what packets see (emptied maps, draining),
 * adoption through the kernel-backed map API, capacities chosen at load time.
 * Diffing, write order and validation are unit tests (test/unit/dataplane*.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeAddr, u32Key } from '../../src/bpf/structs.js';
import { RING_SIZE } from '../../src/bpf/consts.js';
import { XdpAction } from '../../src/libbpf/test-run.js';
import { BalancerHarness } from '../support/balancer-harness.js';
import { reals, vip } from '../support/fixtures.js';
import { checkRestartAdopts } from '../support/adoption.js';
import { requireKernel } from '../support/kernel.js';
import { buildPacket, parseEncapsulated } from '../support/packets.js';

describe('dataplane', () => {
  let h: BalancerHarness;
  before(() => {
    if (process.getuid?.() !== 0) return;
    h = new BalancerHarness();
  });
  after(() => h?.close());

  test('removing every VIP leaves the maps empty', (t) => {
    if (!requireKernel(t)) return;
    h.apply([vip('198.19.1.5'), vip('2001:db8:19::5', reals(3, '2001:db8:5::'))]);
    const ids = h.dp.installedReals().map((r) => r.id);
    h.apply([]);
    assert.deepEqual(h.lb.maps.vips.keys(), []);
    assert.deepEqual(h.lb.maps.vipAddrs.keys(), []);
    for (const id of ids) assert.equal(decodeAddr(h.lb.maps.reals.lookup(u32Key(id))!).family, 0, `real ${id} cleared`);
    const pkt = buildPacket({ src: '198.18.100.1', dst: '198.19.1.5', proto: 'tcp', sport: 1, dport: 80, syn: true });
    assert.equal(h.run(pkt).action, XdpAction.PASS);
  });

  test('a draining real (weight 0) keeps its flows and gets no new ones', (t) => {
    if (!requireKernel(t)) return;
    const r = reals(3, '198.18.6.');
    h.apply([vip('198.19.1.15', r)]);
    const pkt = (sport: number, syn = false) => buildPacket({ src: '198.18.100.1', dst: '198.19.1.15', proto: 'tcp', sport, dport: 80, syn, ack: !syn });
    const to = (p: Buffer) => parseEncapsulated(h.run(p).output).outerDst;
    const flows = Array.from({ length: 100 }, (_, i) => 2000 + i);
    const before = new Map(flows.map((p) => [p, to(pkt(p))]));
    const draining = r[0]!.address;
    const onDraining = flows.filter((p) => before.get(p) === draining);
    assert.ok(onDraining.length > 10);
    h.apply([vip('198.19.1.15', [{ ...r[0]!, weight: 0 }, ...r.slice(1)])]);
    for (const p of onDraining) assert.equal(to(pkt(p)), draining, `established flow ${p} cut`);
    for (let i = 0; i < 200; i++) assert.notEqual(to(pkt(9000 + i, true)), draining, 'new flow sent to a draining real');
    // Removing it for good: its flows now re-hash to the remaining reals.
    h.apply([vip('198.19.1.15', r.slice(1))]);
    for (const p of onDraining) assert.notEqual(to(pkt(p)), draining);
  });

  test('a restarted agent adopts the maps: the same state writes nothing, a change writes only itself', (t) => {
    if (!requireKernel(t)) return;
    h.dp = checkRestartAdopts(h.lb.maps, h.dp); // the harness's Dataplane must describe the maps for later tests
  });

  test('capacities chosen at load time are what the dataplane enforces', (t) => {
    if (!requireKernel(t)) return;
    const small = new BalancerHarness({ vips: 4, reals: 6, connectionTable: 1024 });
    try {
      assert.deepEqual(small.dp.capacity, { vips: 4, reals: 5 });
      assert.equal(small.lb.maps.ring.maxEntries, 4 * RING_SIZE);
      const four = ['198.19.5.1', '198.19.5.2', '198.19.5.3', '198.19.5.4'].map((a) => vip(a, reals(5, '198.18.5.')));
      assert.equal(small.apply(four).vipsAdded, 4);
      assert.throws(() => small.apply([...four, vip('198.19.5.5', reals(1, '198.18.5.'))]), /5 VIPs exceed the capacity of 4/);
      assert.throws(() => small.apply([vip('198.19.5.1', reals(6, '198.18.5.'))]), /6 distinct reals exceed the capacity of 5/);
      const pkt = buildPacket({ src: '198.18.100.1', dst: '198.19.5.4', proto: 'tcp', sport: 1, dport: 80, syn: true });
      assert.equal(small.run(pkt).action, XdpAction.TX, 'the last VIP slot works');
    } finally {
      small.close();
    }
    assert.throws(() => new BalancerHarness({ vips: 70000 }), /VIP capacity 70000 is not an integer in 1\.\.65535/);
  });
});
