/** The Dataplane's diffing, write order, capacity checks and draining, on the real maps. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeAddr, decodeVipMeta, encodeVipKey, u32Key } from '../../src/bpf/structs.js';
import { MAX_VIPS, RING_SIZE } from '../../src/bpf/consts.js';
import type { BpfMap } from '../../src/libbpf/bpf-map.js';
import { XdpAction } from '../../src/libbpf/test-run.js';
import { Dataplane } from '../../src/agent/dataplane/dataplane.js';
import { InvalidStateError, type VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { parseIp } from '../../src/lib/ip.js';
import { BalancerHarness, ENCAP } from '../support/balancer-harness.js';
import { requireKernel } from '../support/kernel.js';
import { buildPacket, parseEncapsulated } from '../support/packets.js';

const reals = (n: number, base = '198.18.2.') => Array.from({ length: n }, (_, i) => ({ address: `${base}${i + 1}`, weight: 1 }));
const vip = (address: string, r = reals(3), port = 80): VipSpec => ({ address, port, protocol: 'TCP', reals: r });

/** Records the order of writes on every map of the harness. */
function recordWrites(h: BalancerHarness): { log: string[]; restore: () => void } {
  const log: string[] = [];
  const originals: [BpfMap, BpfMap['update'], BpfMap['delete'], BpfMap['writeU32Slots']][] = [];
  for (const m of Object.values(h.lb.maps)) {
    const { update, delete: del, writeU32Slots } = m;
    originals.push([m, update, del, writeU32Slots]);
    m.update = (k, v, f) => {
      log.push(`update ${m.name}`);
      update.call(m, k, v, f);
    };
    m.delete = (k) => {
      log.push(`delete ${m.name}`);
      return del.call(m, k);
    };
    m.writeU32Slots = (start, next) => {
      log.push(`slots ${m.name}`);
      return writeU32Slots.call(m, start, next);
    };
  }
  return {
    log,
    restore: () => {
      for (const [m, u, d, w] of originals) Object.assign(m, { update: u, delete: d, writeU32Slots: w });
    },
  };
}

describe('dataplane', () => {
  let h: BalancerHarness;
  before(() => {
    if (process.getuid?.() !== 0) return;
    h = new BalancerHarness();
  });
  after(() => h?.close());

  test('applying the same state twice writes nothing the second time', (t) => {
    if (!requireKernel(t)) return;
    const state = [vip('198.19.1.1'), vip('198.19.1.2', reals(5)), vip('2001:db8:19::1', reals(2, '2001:db8:2::'))];
    const first = h.apply(state);
    assert.equal(first.vipsAdded, 3);
    assert.ok(first.writes > 3 * RING_SIZE);
    const again = h.apply([...state].reverse());
    assert.equal(again.writes, 0);
    assert.deepEqual({ ...again, writes: 0 }, { vipsAdded: 0, vipsRemoved: 0, vipsChanged: 0, realsAdded: 0, realsRemoved: 0, ringSlotsWritten: 0, writes: 0 });
  });

  test('a one-real change writes only the ring slots that move', (t) => {
    if (!requireKernel(t)) return;
    const r10 = reals(10, '198.18.3.');
    h.apply([vip('198.19.1.3', r10)]);
    const res = h.apply([vip('198.19.1.3', r10.slice(1))]);
    assert.equal(res.realsRemoved, 1);
    assert.equal(res.vipsChanged, 1);
    // Maglev: only the removed real's slots (about 1/10) move.
    assert.ok(res.ringSlotsWritten <= RING_SIZE * (1 / 10 + 0.01), `${res.ringSlotsWritten} slots written`);
    assert.ok(res.ringSlotsWritten >= RING_SIZE / 10 - 2);
  });

  test('write order: reals, ring, then VIP; removal in reverse', (t) => {
    if (!requireKernel(t)) return;
    h.apply([]);
    const rec = recordWrites(h);
    try {
      h.apply([vip('198.19.1.4', reals(2, '198.18.4.'))]);
      const firstRing = rec.log.indexOf('slots ring');
      const lastReal = rec.log.lastIndexOf('update reals');
      const vipWrite = rec.log.indexOf('update vip_map');
      assert.ok(lastReal >= 0 && lastReal < firstRing && firstRing < vipWrite, rec.log.join(', '));
      rec.log.length = 0;
      h.apply([]);
      const vipDelete = rec.log.indexOf('delete vip_map');
      const realClear = rec.log.indexOf('update reals');
      assert.ok(vipDelete >= 0 && vipDelete < realClear, rec.log.join(', '));
    } finally {
      rec.restore();
    }
  });

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

  test('over capacity: a clear error and the maps as they were', (t) => {
    if (!requireKernel(t)) return;
    const state = [vip('198.19.1.6')];
    h.apply(state);
    const writes = h.dp.totalWrites();
    const tooMany = Array.from({ length: MAX_VIPS + 1 }, (_, i) => vip(`198.19.${10 + (i >> 8)}.${i & 255}`, reals(1)));
    assert.throws(() => h.apply(tooMany), (err: unknown) => err instanceof InvalidStateError && /513 VIPs exceed the capacity of 512/.test(err.message));
    const manyReals = Array.from({ length: 4096 }, (_, i) => ({ address: `198.18.${64 + (i >> 8)}.${i & 255}`, weight: 1 }));
    assert.throws(() => h.apply([vip('198.19.1.7', manyReals)]), /4096 distinct reals exceed the capacity of 4095/);
    assert.equal(h.dp.totalWrites(), writes, 'nothing written');
    assert.equal(h.lb.maps.vips.keys().length, 1);
    assert.equal(h.apply(state).writes, 0, 'the old state is still fully in place');
  });

  test('invalid states are rejected with every problem named, nothing written', (t) => {
    if (!requireKernel(t)) return;
    const writes = h.dp.totalWrites();
    const bad: VipSpec[] = [
      { address: '2001:db8:19::9', port: 80, protocol: 'TCP', reals: [{ address: '198.18.9.1', weight: 1 }] },
      { address: '198.19.1.9', port: 70000, protocol: 'TCP', reals: [] },
      { address: '198.19.1.9', port: 80, protocol: 'SCTP' as 'TCP', reals: [] },
      { address: 'not-an-ip', port: 80, protocol: 'TCP', reals: [] },
      { address: '198.19.1.10', port: 80, protocol: 'TCP', reals: [{ address: '198.18.9.1', weight: 1 }, { address: '198.18.9.1', weight: 2 }] },
      { address: '198.19.1.11', port: 80, protocol: 'TCP', reals: [{ address: '198.18.9.2', weight: -1 }] },
      vip('198.19.1.12'),
      vip('198.19.1.12'),
    ];
    let message = '';
    assert.throws(() => h.apply(bad), (err: unknown) => {
      message = (err as Error).message;
      return err instanceof InvalidStateError && err.problems.length === 7;
    });
    for (const needle of ['IPv6 VIP [2001:db8:19::9]:80/TCP cannot use IPv4 real 198.18.9.1', 'vips[1].port: 70000', 'vips[2].protocol: "SCTP"',
      'vips[3].address: "not-an-ip"', 'real 198.18.9.1 is listed twice', 'vips[5].reals[0].weight: -1', 'VIP 198.19.1.12:80/TCP is listed twice']) {
      assert.ok(message.includes(needle), `message lacks "${needle}": ${message}`);
    }
    assert.throws(() => h.apply([vip('198.19.1.13')], { ...ENCAP, srcV4: undefined }), /IPv4 real 198.18.2.1 needs encap.srcV4/);
    assert.throws(() => h.apply([], { ...ENCAP, nextHopMac: 'zz' }), /encap.nextHopMac: "zz" is not a MAC address/);
    assert.equal(h.dp.totalWrites(), writes);
  });

  test('flags change in place: same VIP number, new flags', (t) => {
    if (!requireKernel(t)) return;
    h.apply([vip('198.19.1.14')]);
    const num = h.dp.vipNum('198.19.1.14:80/TCP');
    const res = h.apply([{ ...vip('198.19.1.14'), hashNoSrcPort: true, lruBypass: true }]);
    assert.equal(res.vipsChanged, 1);
    assert.equal(res.ringSlotsWritten, 0);
    const key = encodeVipKey({ address: parseIp('198.19.1.14'), port: 80, proto: 6 });
    assert.deepEqual(decodeVipMeta(h.lb.maps.vips.lookup(key)!), { flags: 3, vipNum: num });
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

  test('a removed real id is not reused at once', (t) => {
    if (!requireKernel(t)) return;
    h.apply([vip('198.19.1.16', reals(1, '198.18.7.'))]);
    const old = h.dp.realId('198.18.7.1')!;
    h.apply([vip('198.19.1.16', [{ address: '198.18.7.2', weight: 1 }])]);
    assert.notEqual(h.dp.realId('198.18.7.2'), old);
  });

  test('a restarted agent adopts the maps: the same state writes nothing, a change writes only itself', (t) => {
    if (!requireKernel(t)) return;
    const state: VipSpec[] = [
      vip('198.19.1.20', [{ address: '198.18.9.1', weight: 0 }, ...reals(3, '198.18.9.1')]),
      { ...vip('2001:db8:19::20', reals(2, '2001:db8:9::')), hashNoSrcPort: true },
      vip('198.19.1.21', reals(4, '198.18.9.1')),
    ];
    state[0]!.reals = [{ address: '198.18.9.100', weight: 0 }, ...reals(3, '198.18.9.1')];
    h.apply(state);
    const restarted = new Dataplane(h.lb.maps);
    const adopted = restarted.adopt();
    assert.deepEqual(adopted, { vips: 3, reals: 7, dirtyRings: 0 });
    const writes = restarted.totalWrites();
    assert.equal(restarted.apply({ encap: ENCAP, vips: state }).writes, 0, 'nothing changed, nothing written');
    assert.equal(restarted.totalWrites(), writes);
    assert.deepEqual(restarted.installedVips().sort(), h.dp.installedVips().sort());
    const changed = restarted.apply({ encap: ENCAP, vips: state.slice(1) });
    assert.equal(changed.vipsRemoved, 1);
    assert.equal(changed.realsRemoved, 1, 'only the draining real of the removed VIP goes; its other reals are shared');
    assert.equal(h.lb.maps.vips.keys().length, 2);
    h.dp = restarted; // the harness's Dataplane must describe the maps for later tests
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

  test('an unchanged VIP costs nothing; a changed one is diffed against the ring map', (t) => {
    if (!requireKernel(t)) return;
    const state = Array.from({ length: 20 }, (_, i) => vip(`198.19.6.${i + 1}`, reals(10, '198.18.6.')));
    h.apply(state);
    const changed = state.map((v, i) => (i === 7 ? { ...v, reals: v.reals.slice(1) } : v));
    const res = h.apply(changed);
    assert.equal(res.vipsChanged, 1);
    assert.ok(res.ringSlotsWritten < RING_SIZE / 10 + RING_SIZE / 100, `${res.ringSlotsWritten} slots`);
    h.apply([]);
  });
});
