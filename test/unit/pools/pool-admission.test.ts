import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { toNumeric } from '../../../src/controller/pools/cidr.js';
import { forbiddenAddresses, NOTHING_FORBIDDEN } from '../../../src/controller/pools/forbidden.js';
import { acceptedPoolOf, allowedPools, checkAddress } from '../../../src/controller/pools/pool-admission.js';
import { resolvePools } from '../../../src/controller/pools/pool-overlap.js';
import { node, ns, poolResource, tenant } from './pool-fixtures.js';

describe('pool admission', () => {
  const pools = resolvePools([
    poolResource('shop', ['198.19.0.0/24', '2001:db8:19::/64'], { age: 1, namespaceSelector: tenant('shop') }),
    poolResource('edge', ['198.19.1.0/24'], { age: 2, namespaceSelector: {}, balancers: ['edge'] }),
    poolResource('shared', ['198.19.2.0/24'], { age: 3, namespaceSelector: { matchExpressions: [{ key: 'xdplb.dev/tenant', operator: 'Exists' }] }, autoAssign: false }),
    poolResource('late', ['198.19.0.128/25', '198.19.3.0/24'], { age: 4, namespaceSelector: {} }),
  ]);
  const shop = ns('shop', { 'xdplb.dev/tenant': 'shop' });
  const blog = ns('blog');

  test('allowed pools: accepted, selecting the namespace, serving the balancer, by name', () => {
    assert.deepEqual(allowedPools(shop, 'default', pools).map((p) => p.name), ['shared', 'shop']);
    assert.deepEqual(allowedPools(shop, 'edge', pools).map((p) => p.name), ['edge', 'shared', 'shop']);
    assert.deepEqual(allowedPools(blog, 'default', pools).map((p) => p.name), []);
    assert.deepEqual(allowedPools(blog, 'edge', pools).map((p) => p.name), ['edge']);
  });

  test('an address in an allowed pool is accepted, in any spelling', () => {
    for (const a of ['198.19.0.7', '2001:db8:19::7', '2001:DB8:19:0:0:0:0:7', '2001:0db8:0019::0007', '198.19.2.9']) {
      const r = checkAddress(a, shop, 'default', pools, NOTHING_FORBIDDEN);
      assert.ok(r.ok, `${a}: ${r.ok ? '' : r.reason}`);
    }
    const r = checkAddress('2001:db8:19::ffff:ffff:ffff:ffff', shop, 'default', pools, NOTHING_FORBIDDEN);
    assert.ok(r.ok && r.pool.name === 'shop');
    assert.equal(acceptedPoolOf(toNumeric('198.19.1.255'), pools)?.name, 'edge');
    assert.equal(acceptedPoolOf(toNumeric('198.19.4.0'), pools), undefined);
    assert.equal(acceptedPoolOf(toNumeric('::ffff:198.19.0.7'), pools), undefined, 'an IPv4-mapped IPv6 address is not the IPv4 address');
  });

  test('in no pool: says so, and lists the pools the namespace may use', () => {
    const r = checkAddress('198.51.100.7', shop, 'default', pools, NOTHING_FORBIDDEN);
    assert.deepEqual(r, {
      ok: false,
      code: 'NotInPool',
      reason: '198.51.100.7 is in no pool; pools namespace shop may use for balancer default: shared (198.19.2.0/24), shop (198.19.0.0/24, 2001:db8:19::/64)',
    });
    const none = checkAddress('198.51.100.7', blog, 'default', pools, NOTHING_FORBIDDEN);
    assert.ok(!none.ok && none.reason === '198.51.100.7 is in no pool; no pool allows namespace blog for balancer default');
  });

  test("a pool that does not select the namespace, or does not serve the balancer: named, with why", () => {
    const r = checkAddress('198.19.0.7', blog, 'default', pools, NOTHING_FORBIDDEN);
    assert.ok(!r.ok);
    assert.match(r.reason, /^198\.19\.0\.7 is in pool shop, whose namespaceSelector does not select namespace blog; no pool allows namespace blog/);
    const e = checkAddress('198.19.1.7', shop, 'default', pools, NOTHING_FORBIDDEN);
    assert.ok(!e.ok);
    assert.match(e.reason, /^198\.19\.1\.7 is in pool edge, which serves balancers edge, not default; pools namespace shop may use/);
  });

  test('an address only in a refused pool: the pool and why it is refused', () => {
    const r = checkAddress('198.19.3.1', shop, 'default', pools, NOTHING_FORBIDDEN);
    assert.ok(!r.ok);
    assert.match(r.reason, /^198\.19\.3\.1 is only in pool late, which is refused \(overlaps: 198\.19\.0\.128\/25 overlaps 198\.19\.0\.0\/24 of the older pool shop\)/);
    // Where the refused pool overlaps an accepted one, the accepted one decides.
    assert.ok(checkAddress('198.19.0.200', shop, 'default', pools, NOTHING_FORBIDDEN).ok);
  });

  test('forbidden addresses are refused whatever the pools say', () => {
    const forbidden = forbiddenAddresses({ nodes: [node('worker-1', [['InternalIP', '198.19.0.11']], ['2001:db8:19::/112'])] });
    const r = checkAddress('198.19.0.11', shop, 'default', pools, forbidden);
    assert.deepEqual(r, { ok: false, code: 'Forbidden', reason: "198.19.0.11 is node worker-1's address (InternalIP): never allowed as a VIP, whatever the pools say" });
    const p = checkAddress('2001:db8:19:0::ff', shop, 'default', pools, forbidden);
    assert.ok(!p.ok && p.reason.includes("is in node worker-1's pod CIDR 2001:db8:19::/112"));
  });

  test('not an address', () => {
    assert.deepEqual(checkAddress('shop', shop, 'default', pools, NOTHING_FORBIDDEN), { ok: false, code: 'NotAnAddress', reason: '"shop" is not an IPv4 or IPv6 address' });
  });
});
