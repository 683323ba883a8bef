/** The Dataplane's diffing, write order, validation, capacity checks and adoption, on in-memory maps. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_VIPS, RING_SIZE, VIP_ADDR_F_ICMP_ECHO, VIP_F_NO_ICMP_ECHO } from '../../src/bpf/consts.js';
import { Dataplane } from '../../src/agent/dataplane/dataplane.js';
import { InvalidStateError, type VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { parseIp } from '../../src/lib/ip.js';
import { ENCAP, reals, vip } from '../support/fixtures.js';
import { MemoryDataplane } from '../support/memory-dataplane.js';
import { checkRestartAdopts } from '../support/adoption.js';

const key = (address: string, port = 80) => ({ address: parseIp(address), port, proto: 6 });

describe('dataplane diffing', () => {
  test('applying the same state twice writes nothing the second time', () => {
    const h = new MemoryDataplane();
    const state = [vip('198.19.1.1'), vip('198.19.1.2', reals(5)), vip('2001:db8:19::1', reals(2, '2001:db8:2::'))];
    const first = h.apply(state);
    assert.equal(first.vipsAdded, 3);
    assert.ok(first.writes > 3 * RING_SIZE);
    const again = h.apply([...state].reverse());
    assert.equal(again.writes, 0);
    assert.deepEqual({ ...again, writes: 0 }, { vipsAdded: 0, vipsRemoved: 0, vipsChanged: 0, realsAdded: 0, realsRemoved: 0, ringSlotsWritten: 0, writes: 0 });
  });

  test('a one-real change writes only the ring slots that move', () => {
    const h = new MemoryDataplane();
    const r10 = reals(10, '198.18.3.');
    h.apply([vip('198.19.1.3', r10)]);
    const res = h.apply([vip('198.19.1.3', r10.slice(1))]);
    assert.equal(res.realsRemoved, 1);
    assert.equal(res.vipsChanged, 1);
    // Maglev: only the removed real's slots (about 1/10) move.
    assert.ok(res.ringSlotsWritten <= RING_SIZE * (1 / 10 + 0.01), `${res.ringSlotsWritten} slots written`);
    assert.ok(res.ringSlotsWritten >= RING_SIZE / 10 - 2);
  });

  test('an unchanged VIP costs nothing; a changed one is diffed against the ring map', () => {
    const h = new MemoryDataplane();
    const state = Array.from({ length: 20 }, (_, i) => vip(`198.19.6.${i + 1}`, reals(10, '198.18.6.')));
    h.apply(state);
    const changed = state.map((v, i) => (i === 7 ? { ...v, reals: v.reals.slice(1) } : v));
    const res = h.apply(changed);
    assert.equal(res.vipsChanged, 1);
    assert.ok(res.ringSlotsWritten < RING_SIZE / 10 + RING_SIZE / 100, `${res.ringSlotsWritten} slots`);
  });

  test('flags change in place: same VIP number, new flags, no ring write', () => {
    const h = new MemoryDataplane();
    h.apply([vip('198.19.1.14')]);
    const num = h.dp.vipNum('198.19.1.14:80/TCP');
    const res = h.apply([{ ...vip('198.19.1.14'), hashNoSrcPort: true, lruBypass: true }]);
    assert.equal(res.vipsChanged, 1);
    assert.equal(res.ringSlotsWritten, 0);
    assert.deepEqual(h.maps.vips.get(key('198.19.1.14')), { flags: 3, vipNum: num });
  });

  test('a removed real id is not reused at once', () => {
    const h = new MemoryDataplane();
    h.apply([vip('198.19.1.16', reals(1, '198.18.7.'))]);
    const old = h.dp.realId('198.18.7.1')!;
    h.apply([vip('198.19.1.16', [{ address: '198.18.7.2', weight: 1 }])]);
    assert.notEqual(h.dp.realId('198.18.7.2'), old);
  });

  test('removing every VIP leaves the maps empty', () => {
    const h = new MemoryDataplane();
    h.apply([vip('198.19.1.5'), vip('2001:db8:19::5', reals(3, '2001:db8:5::'))]);
    const ids = h.dp.installedReals().map((r) => r.id);
    h.apply([]);
    assert.deepEqual(h.maps.vips.keys(), []);
    assert.deepEqual(h.maps.vipAddrs.keys(), []);
    for (const id of ids) assert.equal(h.maps.reals.get(id), null, `real ${id} cleared`);
  });

  test('two VIPs on one address share its vip_addrs entry, kept until the last goes', () => {
    const h = new MemoryDataplane();
    const a = parseIp('198.19.1.30');
    h.apply([vip('198.19.1.30', reals(1), 80), vip('198.19.1.30', reals(1), 443)]);
    assert.equal(h.maps.vipAddrs.get(a), VIP_ADDR_F_ICMP_ECHO);
    const writes = h.writesOf(() => h.apply([vip('198.19.1.30', reals(1), 443)]));
    assert.equal(h.maps.vipAddrs.get(a), VIP_ADDR_F_ICMP_ECHO);
    assert.ok(!writes.some((w) => w.endsWith('vip_addrs')), `the address entry is not rewritten: ${writes.join(', ')}`);
    h.apply([]);
    assert.equal(h.maps.vipAddrs.get(a), null);
  });

  test('echo answers: on by default; off for the address while any of its VIPs turns them off', () => {
    const h = new MemoryDataplane();
    const a = parseIp('198.19.1.31');
    const web = vip('198.19.1.31', reals(1), 80);
    const quiet = { ...vip('198.19.1.31', reals(1), 443), icmpEcho: false };
    h.apply([web]);
    assert.equal(h.maps.vipAddrs.get(a), VIP_ADDR_F_ICMP_ECHO);
    h.apply([web, quiet]);
    assert.equal(h.maps.vipAddrs.get(a), 0, 'one VIP says no: no answers');
    assert.equal(h.maps.vips.get({ address: a, port: 443, proto: 6 })?.flags, VIP_F_NO_ICMP_ECHO);
    h.apply([web, { ...quiet, icmpEcho: true }]);
    assert.equal(h.maps.vipAddrs.get(a), VIP_ADDR_F_ICMP_ECHO, 'a flag changed in place counts the VIP again');
    h.apply([{ ...web, icmpEcho: false }]);
    assert.equal(h.maps.vipAddrs.get(a), 0, 'the last VIP of the address changed in place: the entry stays, updated');
    h.apply([web]);
    assert.equal(h.maps.vipAddrs.get(a), VIP_ADDR_F_ICMP_ECHO);
  });
});

describe('dataplane write order', () => {
  test('a new VIP: its reals, then its ring, then the VIP entry', () => {
    const h = new MemoryDataplane();
    const writes = h.writesOf(() => h.apply([vip('198.19.1.4', reals(2, '198.18.4.'))]));
    assert.deepEqual(writes, [
      'update ctl',
      'update real_stats', 'update reals',
      'update real_stats', 'update reals',
      'update vip_stats', 'slots ring',
      'update vip_addrs', 'update vip_map',
    ]);
  });

  test('a removed VIP: the VIP entry first, then its reals', () => {
    const h = new MemoryDataplane();
    h.apply([vip('198.19.1.4', reals(2, '198.18.4.'))]);
    const writes = h.writesOf(() => h.apply([]));
    assert.deepEqual(writes, ['delete vip_map', 'delete vip_addrs', 'update reals', 'update reals']);
  });

  test('a changed VIP: new reals before the ring names them, old ones released after', () => {
    const h = new MemoryDataplane();
    const r = reals(3, '198.18.4.');
    h.apply([vip('198.19.1.4', r)]);
    const writes = h.writesOf(() => h.apply([vip('198.19.1.4', [...r.slice(1), { address: '198.18.4.9', weight: 1 }])]));
    assert.deepEqual(writes, ['update real_stats', 'update reals', 'slots ring', 'update reals']);
  });

  test('a write that fails half way gives back what the VIP took', () => {
    const h = new MemoryDataplane();
    const { update } = h.raw.vips;
    h.raw.vips.update = () => {
      throw new Error('vip_map refused the write');
    };
    assert.throws(() => h.apply([vip('198.19.1.40', reals(2, '198.18.40.'))]), /vip_map refused the write/);
    assert.deepEqual(h.dp.installedVips(), []);
    assert.deepEqual(h.dp.installedReals(), []);
    h.raw.vips.update = update;
    assert.equal(h.apply([vip('198.19.1.40', reals(2, '198.18.40.'))]).vipsAdded, 1);
  });

  /** Makes the next write of an empty reals slot (a release) fail once. */
  function failNextRelease(h: MemoryDataplane): void {
    const { update } = h.raw.reals;
    h.raw.reals.update = function (key, value, flags) {
      if (value.every((b) => b === 0)) {
        h.raw.reals.update = update;
        throw new Error('reals refused the write');
      }
      update.call(this, key, value, flags);
    };
  }

  test('a release whose write fails is retried by the next apply: no real slot is lost', () => {
    const h = new MemoryDataplane({ reals: 6 }); // 5 usable
    h.apply([vip('198.19.1.50', reals(3, '198.18.50.'))]);
    failNextRelease(h);
    const changed = [vip('198.19.1.50', reals(2, '198.18.50.'))];
    assert.throws(() => h.apply(changed), /reals refused the write/);
    h.apply(changed);
    assert.deepEqual(h.dp.installedReals().map((r) => r.address).sort(), ['198.18.50.1', '198.18.50.2']);
    // All 3 free slots usable again.
    assert.equal(h.apply([vip('198.19.1.50', [...reals(2, '198.18.50.'), ...reals(3, '198.18.51.')])]).realsAdded, 3);
  });

  test('a removed VIP whose first release fails still drops every real it held', () => {
    const h = new MemoryDataplane({ reals: 6 });
    h.apply([vip('198.19.1.51', reals(4, '198.18.52.'))]);
    failNextRelease(h);
    assert.throws(() => h.apply([]), /reals refused the write/);
    h.apply([]);
    assert.deepEqual(h.dp.installedReals(), []);
    assert.equal(h.apply([vip('198.19.1.52', reals(5, '198.18.53.'))]).realsAdded, 5);
  });
});

describe('dataplane validation and capacity', () => {
  test('over capacity: a clear error and the maps as they were', () => {
    const h = new MemoryDataplane();
    const state = [vip('198.19.1.6')];
    h.apply(state);
    const writes = h.dp.totalWrites();
    const tooMany = Array.from({ length: MAX_VIPS + 1 }, (_, i) => vip(`198.19.${10 + (i >> 8)}.${i & 255}`, reals(1)));
    assert.throws(() => h.apply(tooMany), (err: unknown) => err instanceof InvalidStateError && /513 VIPs exceed the capacity of 512/.test(err.message));
    const manyReals = Array.from({ length: 4096 }, (_, i) => ({ address: `198.18.${64 + (i >> 8)}.${i & 255}`, weight: 1 }));
    assert.throws(() => h.apply([vip('198.19.1.7', manyReals)]), /4096 distinct reals exceed the capacity of 4095/);
    assert.equal(h.dp.totalWrites(), writes, 'nothing written');
    assert.equal(h.maps.vips.keys().length, 1);
    assert.equal(h.apply(state).writes, 0, 'the old state is still fully in place');
  });

  test('invalid states are rejected with every problem named, nothing written', () => {
    const h = new MemoryDataplane();
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

  test('the capacities of the maps are what the dataplane enforces', () => {
    const h = new MemoryDataplane({ vips: 4, reals: 6 });
    assert.deepEqual(h.dp.capacity, { vips: 4, reals: 5 });
    assert.equal(h.raw.ring.maxEntries, 4 * RING_SIZE);
    const four = ['198.19.5.1', '198.19.5.2', '198.19.5.3', '198.19.5.4'].map((a) => vip(a, reals(5, '198.18.5.')));
    assert.equal(h.apply(four).vipsAdded, 4);
    assert.throws(() => h.apply([...four, vip('198.19.5.5', reals(1, '198.18.5.'))]), /5 VIPs exceed the capacity of 4/);
    assert.throws(() => h.apply([vip('198.19.5.1', reals(6, '198.18.5.'))]), /6 distinct reals exceed the capacity of 5/);
    assert.equal(h.dp.vipNum('198.19.5.4:80/TCP'), 3, 'the last VIP slot is used');
  });

  test('a change that needs old and new reals installed at once over capacity is refused whole', () => {
    const h = new MemoryDataplane({ reals: 6 });
    h.apply([vip('198.19.5.1', reals(5, '198.18.5.'))]);
    const writes = h.dp.totalWrites();
    assert.throws(() => h.apply([vip('198.19.5.1', reals(5, '198.18.6.'))]),
      /the change needs 10 reals installed at once .* over the capacity of 5: apply it in two steps/);
    assert.equal(h.dp.totalWrites(), writes);
    // In two steps it fits: remove the VIP, then add it with its new reals.
    h.apply([]);
    assert.equal(h.apply([vip('198.19.5.1', reals(5, '198.18.6.'))]).realsAdded, 5);
  });

  test('capacities out of range are refused when the maps are made', () => {
    assert.throws(() => new MemoryDataplane({ vips: 70000 }), /VIP capacity 70000 is not an integer in 1\.\.65535/);
    assert.throws(() => new MemoryDataplane({ reals: 1 }), /real capacity 1 is not an integer >= 2/);
    assert.throws(() => new MemoryDataplane({ connectionTable: 0 }), /connection table size 0 is not a positive integer/);
  });
});

describe('dataplane adoption', () => {
  test('a restarted agent adopts the maps: the same state writes nothing, a change writes only itself', () => {
    const h = new MemoryDataplane();
    checkRestartAdopts(h.raw, h.dp);
  });

  test('a ring naming a real that is gone is dirty: the next apply makes it name installed reals only', () => {
    const h = new MemoryDataplane();
    const state = [vip('198.19.1.22', reals(2, '198.18.22.'))];
    h.apply(state);
    const lost = h.dp.realId('198.18.22.1')!;
    h.maps.reals.set(lost, null);
    const restarted = new Dataplane(h.raw);
    assert.deepEqual(restarted.adopt(), { vips: 1, reals: 1, dirtyRings: 1 });
    assert.equal(restarted.apply({ encap: ENCAP, vips: state }).realsAdded, 1);
    const named = [...new Set(h.maps.ring.read(restarted.vipNum('198.19.1.22:80/TCP')!))];
    assert.deepEqual(named.map((id) => h.maps.reals.get(id)?.text).sort(), ['198.18.22.1', '198.18.22.2']);
  });

  test('vip_addrs is repaired to agree with the VIPs', () => {
    const h = new MemoryDataplane();
    h.apply([vip('198.19.1.23', reals(1), 80), { ...vip('198.19.1.23', reals(1), 443), icmpEcho: false }, vip('198.19.1.24', reals(1))]);
    h.maps.vipAddrs.set(parseIp('198.19.1.23'), VIP_ADDR_F_ICMP_ECHO);
    h.maps.vipAddrs.delete(parseIp('198.19.1.24'));
    h.maps.vipAddrs.set(parseIp('198.19.1.99'), 1);
    new Dataplane(h.raw).adopt();
    assert.deepEqual(h.maps.vipAddrs.keys().map((a) => [a.text, h.maps.vipAddrs.get(a)]).sort(),
      [['198.19.1.23', 0], ['198.19.1.24', VIP_ADDR_F_ICMP_ECHO]], 'flags from the adopted VIPs\' flags; a missing entry written; a stray one gone');
  });

  test('adopt() runs only on a fresh Dataplane', () => {
    const h = new MemoryDataplane();
    h.apply([vip('198.19.1.24')]);
    assert.throws(() => h.dp.adopt(), /adopt\(\) must run before anything is applied/);
  });
});
