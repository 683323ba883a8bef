import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assignAddress, type AssignRequest, UsedAddresses } from '../../../src/controller/pools/assignment.js';
import { forbiddenAddresses, NOTHING_FORBIDDEN } from '../../../src/controller/pools/forbidden.js';
import { resolvePools } from '../../../src/controller/pools/pool-overlap.js';
import { node, ns, poolResource, tenant } from './pool-fixtures.js';

const shop = ns('shop', { 'xdplb.dev/tenant': 'shop' });
const req = (vipKey: string, more: Partial<AssignRequest> = {}): AssignRequest => ({ vipKey, namespace: shop, balancer: 'default', ...more });

/** Assigns and records, as the controller will: returns the addresses in order, or the first refusal. */
function assignMany(n: number, pools: ReturnType<typeof resolvePools>, used: UsedAddresses, forbidden = NOTHING_FORBIDDEN, more: Partial<AssignRequest> = {}) {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = assignAddress(req(`shop/v${i}`, more), pools, used, forbidden);
    if (!r.ok) return { out, refused: r.reason };
    used.add(r.address, `shop/v${i}`);
    out.push(r.address);
  }
  return { out, refused: undefined };
}

describe('address assignment', () => {
  test('lowest free address, skipping the network and broadcast of an IPv4 /24 and what VIPs have', () => {
    const pools = resolvePools([poolResource('shop', ['198.19.0.0/24'], { namespaceSelector: tenant('shop') })]);
    const used = new UsedAddresses();
    used.add('198.19.0.1', 'shop/manual'); // a VIP that named its address
    used.add('198.19.0.3', 'other/manual');
    const { out } = assignMany(3, pools, used);
    assert.deepEqual(out, ['198.19.0.2', '198.19.0.4', '198.19.0.5']);
  });

  test('exhaustion: every address given once, then a reason; a release makes the address free again', () => {
    const pools = resolvePools([poolResource('tiny', ['198.19.0.0/29'], { namespaceSelector: tenant('shop') })]);
    const used = new UsedAddresses();
    const { out, refused } = assignMany(10, pools, used);
    assert.deepEqual(out, ['198.19.0.1', '198.19.0.2', '198.19.0.3', '198.19.0.4', '198.19.0.5', '198.19.0.6']);
    assert.equal(refused, 'no free address for namespace shop on balancer default: every one of tiny (198.19.0.0/29) is in use or never allowed');
    used.remove('198.19.0.4', 'shop/v3');
    const again = assignAddress(req('shop/new'), pools, used, NOTHING_FORBIDDEN);
    assert.deepEqual(again, { ok: true, address: '198.19.0.4', pool: 'tiny' });
  });

  test('an address two VIPs share is released only when both are gone', () => {
    const pools = resolvePools([poolResource('one', ['198.19.0.7/32'], { namespaceSelector: {} })]);
    const used = new UsedAddresses();
    used.add('198.19.0.7', 'a/tcp');
    used.add('198.19.0.7', 'a/udp');
    used.remove('198.19.0.7', 'a/tcp');
    assert.ok(!assignAddress(req('shop/x'), pools, used, NOTHING_FORBIDDEN).ok);
    used.remove('198.19.0.7', 'a/udp');
    assert.deepEqual(assignAddress(req('shop/x'), pools, used, NOTHING_FORBIDDEN), { ok: true, address: '198.19.0.7', pool: 'one' });
  });

  test('/31, /32, /127 and /128 pools hand out every address; IPv6 skips only the all-zeros address', () => {
    const pools = resolvePools([
      poolResource('a', ['198.19.0.0/31', '198.19.0.9/32', '2001:db8:19::/127', '2001:db8:19::9/128', '2001:db8:20::/126'], { namespaceSelector: {} }),
    ]);
    const { out, refused } = assignMany(20, pools, new UsedAddresses());
    assert.deepEqual(out, ['198.19.0.0', '198.19.0.1', '198.19.0.9', '2001:db8:19::', '2001:db8:19::1', '2001:db8:19::9', '2001:db8:20::1', '2001:db8:20::2', '2001:db8:20::3']);
    assert.match(refused!, /no free address/);
  });

  test('forbidden addresses are jumped over, whole ranges at a time', () => {
    const pools = resolvePools([poolResource('shop', ['198.19.0.0/16'], { namespaceSelector: tenant('shop') })]);
    const forbidden = forbiddenAddresses({ nodes: [node('w1', [['InternalIP', '198.19.0.1']], ['198.19.0.0/24', '198.19.1.0/25']), node('w2', [['InternalIP', '198.19.1.130']])] });
    const { out } = assignMany(3, pools, new UsedAddresses(), forbidden);
    assert.deepEqual(out, ['198.19.1.128', '198.19.1.129', '198.19.1.131']);
  });

  test('family: only pools and CIDRs of that family; IPv6 used addresses in any spelling', () => {
    const pools = resolvePools([poolResource('shop', ['198.19.0.0/24', '2001:db8:19::/64'], { namespaceSelector: tenant('shop') })]);
    const used = new UsedAddresses();
    used.add('2001:DB8:19:0:0:0:0:1', 'shop/manual');
    assert.deepEqual(assignAddress(req('shop/v6', { family: 6 }), pools, used, NOTHING_FORBIDDEN), { ok: true, address: '2001:db8:19::2', pool: 'shop' });
    assert.deepEqual(assignAddress(req('shop/v4'), pools, used, NOTHING_FORBIDDEN), { ok: true, address: '198.19.0.1', pool: 'shop' });
    assert.equal(used.holdersOf('2001:db8:19::1').has('shop/manual'), true);
    const onlyV4 = resolvePools([poolResource('v4', ['198.19.0.0/24'], { namespaceSelector: {} })]);
    const r = assignAddress(req('shop/v6', { family: 6 }), onlyV4, used, NOTHING_FORBIDDEN);
    assert.ok(!r.ok && r.reason.startsWith('no free IPv6 address for namespace shop'));
  });

  test('pools by name; autoAssign false and refused pools are passed over, with a reason when nothing is left', () => {
    const pools = resolvePools([
      poolResource('b', ['198.19.1.0/24'], { age: 1, namespaceSelector: {} }),
      poolResource('a', ['198.19.2.0/24'], { age: 2, namespaceSelector: {}, autoAssign: false }),
      poolResource('0-refused', ['198.19.1.0/25'], { age: 3, namespaceSelector: {} }),
    ]);
    assert.deepEqual(assignAddress(req('shop/v'), pools, new UsedAddresses(), NOTHING_FORBIDDEN), { ok: true, address: '198.19.1.1', pool: 'b' });
    const manualOnly = resolvePools([poolResource('a', ['198.19.2.0/24'], { namespaceSelector: {}, autoAssign: false })]);
    assert.deepEqual(assignAddress(req('shop/v'), manualOnly, new UsedAddresses(), NOTHING_FORBIDDEN), {
      ok: false,
      code: 'NoPool',
      reason: 'no pool assigns addresses to namespace shop for balancer default; pools a allow it but do not assign automatically (autoAssign: false): set spec.address',
    });
    const r = assignAddress(req('shop/v', { balancer: 'edge', namespace: ns('blog') }), resolvePools([poolResource('s', ['198.19.0.0/24'], { namespaceSelector: tenant('shop') })]), new UsedAddresses(), NOTHING_FORBIDDEN);
    assert.deepEqual(r, { ok: false, code: 'NoPool', reason: 'no pool assigns addresses to namespace blog for balancer edge' });
  });

  test('the previous address is kept while allowed (restarts, leader changes); when a pool change takes it away, reported, not replaced', () => {
    const pools = resolvePools([poolResource('shop', ['198.19.0.0/24'], { namespaceSelector: tenant('shop') })]);
    const used = new UsedAddresses();
    used.add('198.19.0.1', 'shop/a');
    used.add('198.19.0.9', 'shop/b');
    // A new controller rebuilds `used` from every VIP's status and finds each VIP its own address again.
    assert.deepEqual(assignAddress(req('shop/b', { previous: '198.19.0.9' }), pools, used, NOTHING_FORBIDDEN), { ok: true, address: '198.19.0.9', pool: 'shop' });
    const shrunk = resolvePools([poolResource('shop', ['198.19.1.0/24'], { namespaceSelector: tenant('shop') })]);
    const r = assignAddress(req('shop/b', { previous: '198.19.0.9' }), shrunk, used, NOTHING_FORBIDDEN);
    assert.ok(!r.ok && r.previousLost);
    assert.match(r.reason, /^the address it was given, 198\.19\.0\.9, is no longer allowed: 198\.19\.0\.9 is in no pool; pools namespace shop may use for balancer default: shop \(198\.19\.1\.0\/24\)/);
    const relabelled = assignAddress(req('shop/b', { previous: '198.19.0.9', namespace: ns('shop') }), pools, used, NOTHING_FORBIDDEN);
    assert.ok(!relabelled.ok && relabelled.previousLost && relabelled.reason.includes('does not select namespace shop'));
  });

  test('10,000 VIPs from a /16: all distinct, in order, each in the pool', () => {
    const pools = resolvePools([poolResource('big', ['198.18.0.0/16'], { namespaceSelector: {} })]);
    const used = new UsedAddresses();
    const { out, refused } = assignMany(10_000, pools, used);
    assert.equal(refused, undefined);
    assert.equal(new Set(out).size, 10_000);
    assert.equal(used.size, 10_000);
    assert.equal(out[0], '198.18.0.1');
    assert.equal(out[9_999], '198.18.39.16'); // 10,000th address after .0.0
    // Release every other one: the next assignments fill the lowest holes first.
    for (let i = 0; i < 10_000; i += 2) used.remove(out[i]!, `shop/v${i}`);
    assert.deepEqual(assignMany(2, pools, used).out, ['198.18.0.1', '198.18.0.3']);
  });

  test('a /64 (IPv6): the same bisection; a forbidden half is jumped in one step', () => {
    const pools = resolvePools([poolResource('v6', ['2001:db8:19::/64'], { namespaceSelector: {} })]);
    const used = new UsedAddresses();
    const { out } = assignMany(3, pools, used);
    assert.deepEqual(out, ['2001:db8:19::1', '2001:db8:19::2', '2001:db8:19::3']);
    used.add('2001:db8:19::ffff:ffff:ffff:fffe', 'x/y');
    const forbidden = forbiddenAddresses({ nodes: [node('n', [], ['2001:db8:19::/65'])] });
    assert.deepEqual(assignAddress(req('shop/z'), pools, used, forbidden), { ok: true, address: '2001:db8:19:0:8000::', pool: 'v6' });
  });
});
