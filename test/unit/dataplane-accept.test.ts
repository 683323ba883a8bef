/** Dataplane.accept: which VIPs of a desired state would be programmed together, and why not the others. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { acceptVips, type Installed, REFUSED_WITH_GROUP } from '../../src/agent/dataplane/acceptance.js';
import { isValid, type NormalizedVip, type Problem, validate, type VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { ENCAP, reals, vip } from '../support/fixtures.js';
import { MemoryDataplane } from '../support/memory-dataplane.js';

const refusedAs = (refused: Map<number, Problem[]>) => [...refused].map(([i, ps]) => [i, ps.map((p) => `${p.path}: ${p.reason}`)]);

describe('accepting a desired state', () => {
  test('everything that fits is accepted, and nothing is written', () => {
    const h = new MemoryDataplane();
    const state = [vip('198.19.2.1'), vip('198.19.2.2'), vip('2001:db8:19::2', reals(2, '2001:db8:2::'))];
    assert.deepEqual(h.accept(state), { accepted: [0, 1, 2], refused: new Map(), general: [] });
    assert.equal(h.dp.totalWrites(), 0);
  });

  test('a VIP with problems is refused with them (paths relative to the VIP); the others are accepted', () => {
    const h = new MemoryDataplane();
    const state: VipSpec[] = [
      vip('198.19.2.1'),
      { address: '198.19.2.2', port: 70000, protocol: 'TCP', reals: [{ address: '198.18.2.1', weight: -1 }] },
      vip('198.19.2.3'),
      vip('198.19.2.1'),
    ];
    const acc = h.accept(state);
    assert.deepEqual(acc.accepted, [0, 2]);
    assert.deepEqual(refusedAs(acc.refused), [
      [1, ['.port: 70000 is not an integer in 0..65535 (0 = all ports)', '.reals[0].weight: -1 is not a number >= 0']],
      [3, [': VIP 198.19.2.1:80/TCP is listed twice']],
    ]);
  });

  test('a VIP that is one of the node\'s own addresses is refused, whatever its spelling; the others are accepted', () => {
    const h = new MemoryDataplane();
    const state = [vip('198.19.2.1'), vip('2001:db8:19::2', reals(1, '2001:db8:2::')), vip('198.19.2.3')];
    const nodeAddresses = ['198.19.2.1', '2001:DB8:19:0::2', '127.0.0.1', 'fe80::1'];
    const acc = h.dp.accept({ encap: ENCAP, vips: state, nodeAddresses });
    assert.deepEqual(acc.accepted, [2]);
    const why = (a: string) => `.address: ${a} is an address of this node: XDP sees packets before the host, so the VIP would capture the node's own traffic; use an address no node has`;
    assert.deepEqual(refusedAs(acc.refused), [[0, [why('198.19.2.1')]], [1, [why('2001:db8:19::2')]]]);
    // A whole state (standalone mode) with such a VIP is refused, and nothing is written.
    assert.throws(() => h.dp.apply({ encap: ENCAP, vips: state, nodeAddresses }), /vips\[0\]\.address: 198\.19\.2\.1 is an address of this node/);
    assert.equal(h.dp.totalWrites(), 0);
  });

  test('a group is refused whole: the others of a refused VIP\'s group carry REFUSED_WITH_GROUP', () => {
    const h = new MemoryDataplane();
    const v6 = vip('2001:db8:19::3', reals(1, '2001:db8:3::'));
    const state = [vip('198.19.2.1', reals(1), 80), vip('198.19.2.1', reals(1), 53), { ...v6, port: 80 }, { ...v6, port: 53 }];
    const acc = h.accept(state, [0, 0, 1, 1], { ...ENCAP, srcV6: undefined });
    assert.deepEqual(acc.accepted, [0, 1]);
    assert.equal(acc.refused.get(2)![0]!.reason, 'IPv6 real 2001:db8:3::1 needs encap.srcV6');
    assert.equal(acc.refused.get(3)![0]!.path, '.reals[0]');

    const mixed = [vip('198.19.2.4', reals(1), 80), { ...vip('198.19.2.4', reals(1), 53), reals: [{ address: 'nope', weight: 1 }] }];
    const refused = h.accept(mixed, [7, 7]).refused;
    assert.deepEqual(refused.get(0), [REFUSED_WITH_GROUP]);
    assert.equal(refused.get(1)![0]!.path, '.reals[0].address');
  });

  test('capacity is filled group by group in input order; a smaller later group may still fit', () => {
    const h = new MemoryDataplane({ vips: 4 });
    const state = ['198.19.3.1', '198.19.3.1', '198.19.3.2', '198.19.3.2', '198.19.3.2', '198.19.3.3', '198.19.3.3']
      .map((a, i) => vip(a, reals(1), 1000 + i));
    const acc = h.accept(state, [0, 0, 1, 1, 1, 2, 2]);
    assert.deepEqual(acc.accepted, [0, 1, 5, 6]);
    assert.deepEqual(refusedAs(acc.refused), [2, 3, 4].map((i) => [i, [': 5 VIPs exceed the capacity of 4']]));
    assert.deepEqual(acc.general, []);
  });

  test('reals count once however many VIPs list them; the first VIP over the real capacity is refused', () => {
    const h = new MemoryDataplane({ reals: 6 });
    const shared = reals(4, '198.18.3.');
    const state = [vip('198.19.3.1', shared), vip('198.19.3.2', shared), vip('198.19.3.3', reals(2, '198.18.4.')), vip('198.19.3.4', reals(1, '198.18.3.'))];
    const acc = h.accept(state);
    assert.deepEqual(acc.accepted, [0, 1, 3]);
    assert.deepEqual(refusedAs(acc.refused), [[2, [': 6 distinct reals exceed the capacity of 5']]]);
  });

  test('a changed VIP counts its old and new reals, as apply() does', () => {
    const h = new MemoryDataplane({ reals: 6 });
    h.apply([vip('198.19.5.1', reals(5, '198.18.5.'))]);
    const acc = h.accept([vip('198.19.5.1', reals(5, '198.18.6.'))]);
    assert.deepEqual(acc.accepted, []);
    assert.match(acc.refused.get(0)![0]!.reason, /the change needs 10 reals installed at once/);
    // A VIP that is removed frees its reals for the others.
    assert.deepEqual(h.accept([vip('198.19.5.2', reals(5, '198.18.6.'))]).accepted, [0]);
  });

  test('at full real capacity: the programmed state is accepted again, and a change that fits only by sharing reals too', () => {
    const h = new MemoryDataplane({ reals: 6 }); // 5 usable
    const state = [vip('198.19.7.1', reals(3, '198.18.7.')), vip('198.19.7.2', reals(2, '198.18.8.'))];
    h.apply(state);
    assert.deepEqual(h.accept(state).accepted, [0, 1], 'unchanged VIPs hold no old reals besides their own');
    // Summed per VIP (4 + 2 + 3) this is over 5; the distinct reals of the peak are the 5 installed.
    const sharing = [vip('198.19.7.1', [...reals(3, '198.18.7.'), ...reals(1, '198.18.8.')]), ...state.slice(1)];
    assert.deepEqual(h.accept(sharing).accepted, [0, 1]);
    h.apply(sharing);
  });

  test('where the cheap bound fits, the answer is the exact one: 300 random states against the exact sets', () => {
    let seed = 7;
    // An LCG's low bits cycle: take the high ones.
    const random = (n: number) => Math.floor(((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * n);
    /** Up to 6 distinct VIPs of up to 4 reals (a real listed twice in one VIP is refused) from a pool of 10. */
    const state = (): VipSpec[] => {
      const base = random(8);
      return Array.from({ length: 1 + random(6) }, (_, v) => vip(`198.19.9.${1 + base + v}`,
        [...new Set(Array.from({ length: 1 + random(4) }, () => 1 + random(10)))].map((r) => ({ address: `198.18.9.${r}`, weight: 1 }))));
    };
    let fast = 0;
    let compared = 0;
    for (let round = 0; round < 300; round++) {
      const h = new MemoryDataplane({ reals: 4 + random(10), vips: 2 + random(6) });
      const programmed = state();
      try {
        h.apply(programmed);
      } catch {
        continue; // over capacity
      }
      const installedSpecs = new Map(validate({ encap: ENCAP, vips: programmed }).vips.filter(isValid).map((v): [string, NormalizedVip] => [v.id, v]));
      const realsNow = new Set(h.dp.installedReals().map((r) => r.address));
      const view: Installed = { vip: (id) => installedSpecs.get(id), realCount: realsNow.size, hasReal: (a) => realsNow.has(a) };
      const desired = random(2) ? programmed : [...programmed.slice(random(programmed.length)), ...state()];
      const groups = desired.map((_, i) => Math.floor(i / (1 + random(2))));
      const validated = validate({ encap: ENCAP, vips: desired });
      const exact = acceptVips(validated, h.dp.capacity, { ...view, realCount: Number.MAX_SAFE_INTEGER }, groups);
      const got = acceptVips(validated, h.dp.capacity, view, groups);
      assert.deepEqual(refusedAs(got.refused), refusedAs(exact.refused), `round ${round}`);
      assert.deepEqual(got.accepted, exact.accepted, `round ${round}`);
      assert.deepEqual(h.accept(desired, groups).accepted, exact.accepted, `round ${round}: Dataplane.accept`);
      compared++;
      if (desired === programmed) fast++; // its bound is the reals installed: the cheap path
    }
    assert.ok(compared > 150 && fast > 50, `${compared} rounds compared, ${fast} of them on the cheap path`);
  });

  test('problems of the encapsulation are general: nothing is accepted, VIPs are refused only for their own problems', () => {
    const h = new MemoryDataplane();
    const acc = h.accept([vip('198.19.2.1'), vip('bad')], undefined, { ...ENCAP, srcMac: 'zz' });
    assert.deepEqual(acc.accepted, []);
    assert.deepEqual(acc.general.map((p) => p.path), ['encap.srcMac']);
    assert.deepEqual([...acc.refused.keys()], [1]);
  });

  test('what accept() takes, apply() programs', () => {
    const h = new MemoryDataplane({ vips: 8, reals: 10 });
    const state = Array.from({ length: 12 }, (_, i) => vip(`198.19.7.${i + 1}`, reals(1 + (i % 4), `198.18.${7 + (i % 3)}.`)));
    state[3] = { ...state[3]!, port: -1 };
    const acc = h.accept(state);
    assert.ok(acc.accepted.length > 0 && acc.refused.size > 0);
    assert.equal(h.apply(acc.accepted.map((i) => state[i]!)).vipsAdded, acc.accepted.length);
  });

  test('1200 VIPs against a capacity of 512: the first 512 are accepted', () => {
    const h = new MemoryDataplane();
    const state = Array.from({ length: 1200 }, (_, i) => vip(`198.19.${100 + (i >> 8)}.${i & 255}`, reals(2, `198.18.${i & 63}.`)));
    const acc = h.accept(state);
    assert.deepEqual(acc.accepted, Array.from({ length: 512 }, (_, i) => i));
    assert.equal(acc.refused.size, 1200 - 512);
    assert.equal(acc.refused.get(1199)![0]!.reason, '513 VIPs exceed the capacity of 512');
  });
});
