import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { acceptedCondition, resolvePools } from '../../../src/controller/pools/pool-overlap.js';
import { poolResource } from './pool-fixtures.js';

const refusals = (pools: ReturnType<typeof resolvePools>) => Object.fromEntries(pools.map((p) => [p.name, p.refused ?? null]));

describe('pool overlap', () => {
  test('disjoint pools of both families are all accepted, oldest first', () => {
    const pools = resolvePools([
      poolResource('c', ['2001:db8:19::/64'], { age: 3 }),
      poolResource('a', ['198.19.0.0/25', '2001:db8:18::/48'], { age: 1 }),
      poolResource('b', ['198.19.0.128/25', '198.18.0.7/32'], { age: 2 }),
    ]);
    assert.deepEqual(pools.map((p) => p.name), ['a', 'b', 'c']);
    assert.deepEqual(refusals(pools), { a: null, b: null, c: null });
    assert.equal(acceptedCondition(pools[0]!).status, 'True');
  });

  test('the older pool keeps working; the newer is refused naming the older and both CIDRs', () => {
    const pools = resolvePools([
      poolResource('new', ['198.19.0.128/25'], { age: 5 }),
      poolResource('old', ['198.19.0.0/24'], { age: 1 }),
    ]);
    assert.deepEqual(refusals(pools), { old: null, new: 'overlaps: 198.19.0.128/25 overlaps 198.19.0.0/24 of the older pool old' });
    const c = acceptedCondition(pools.find((p) => p.name === 'new')!);
    assert.deepEqual([c.status, c.reason], ['False', 'Overlaps']);
    assert.match(c.message, /older pool old/);
  });

  test('a wider newer pool is refused too; IPv6, whatever the spelling of the older one', () => {
    const pools = resolvePools([
      poolResource('old', ['2001:DB8:19:0:0:0:0:0/64'], { age: 1 }),
      poolResource('wide', ['2001:db8::/32'], { age: 2 }),
    ]);
    assert.deepEqual(refusals(pools), { old: null, wide: 'overlaps: 2001:db8::/32 overlaps 2001:db8:19::/64 of the older pool old' });
  });

  test('IPv4 and IPv6 never overlap each other (::ffff:0:0/96 is its own range)', () => {
    const pools = resolvePools([poolResource('v4', ['198.19.0.0/24'], { age: 1 }), poolResource('v6', ['::ffff:198.19.0.0/120'], { age: 2 })]);
    assert.deepEqual(refusals(pools), { v4: null, v6: null });
  });

  test('same creation second: the name decides; a refused pool still holds back newer ones', () => {
    const pools = resolvePools([
      poolResource('b', ['198.19.0.0/24'], { age: 1 }),
      poolResource('a', ['198.19.0.0/16'], { age: 1 }),
      poolResource('c', ['198.19.1.0/24'], { age: 2 }),
    ]);
    // a is older than b by name; c overlaps a, which is accepted.
    assert.equal(refusals(pools).a, null);
    assert.match(refusals(pools).b!, /older pool a/);
    assert.match(refusals(pools).c!, /older pool a/);
    // Without a: b is accepted, c (which overlaps only a) too.
    assert.deepEqual(refusals(resolvePools([poolResource('b', ['198.19.0.0/24'], { age: 1 }), poolResource('c', ['198.19.1.0/24'], { age: 2 })])), { b: null, c: null });
    // A refused pool holds back newer overlapping ones, so deleting the oldest never refuses an accepted pool.
    const chain = resolvePools([
      poolResource('x', ['198.19.0.0/24'], { age: 1 }),
      poolResource('y', ['198.19.0.0/23'], { age: 2 }),
      poolResource('z', ['198.19.1.0/24'], { age: 3 }),
    ]);
    assert.match(refusals(chain).y!, /older pool x/);
    assert.match(refusals(chain).z!, /older pool y/);
  });

  test('one pool against many: every overlapping older pool is named', () => {
    const pools = resolvePools([
      poolResource('p1', ['198.19.0.0/26'], { age: 1 }),
      poolResource('p2', ['198.19.0.64/26'], { age: 2 }),
      poolResource('p3', ['198.19.1.0/24'], { age: 3 }),
      poolResource('all', ['198.19.0.0/24'], { age: 4 }),
    ]);
    assert.equal(refusals(pools).all, 'overlaps: 198.19.0.0/24 overlaps 198.19.0.0/26 of the older pool p1; 198.19.0.0/24 overlaps 198.19.0.64/26 of the older pool p2');
    assert.equal(refusals(pools).p3, null);
  });

  test("a pool whose own CIDRs overlap, or with a bad CIDR, is refused (the schema refuses both; the controller does not rely on it)", () => {
    const pools = resolvePools([poolResource('self', ['198.19.0.0/24', '198.19.0.0/25']), poolResource('bad', ['198.19.9.1/24'], { age: 1 })]);
    assert.match(refusals(pools).self!, /its own 198\.19\.0\.0\/25 and 198\.19\.0\.0\/24 overlap/);
    assert.match(refusals(pools).bad!, /host bits set/);
    assert.equal(acceptedCondition(pools.find((p) => p.name === 'bad')!).reason, 'InvalidCidr');
  });

  test('a thousand disjoint pools and one overlapping: found by the sweep', () => {
    const many = Array.from({ length: 1000 }, (_, i) => poolResource(`p${i}`, [`198.18.${i >> 2}.${(i & 3) * 64}/26`], { age: i }));
    const pools = resolvePools([...many, poolResource('late', ['198.18.100.0/22'], { age: 5000 })]);
    assert.equal(pools.filter((p) => p.refused).map((p) => p.name).join(), 'late');
    assert.equal(pools.at(-1)!.refused!.split(';').length, 16);
  });
});
