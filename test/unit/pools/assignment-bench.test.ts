/** The pool assignment benchmark's own checks (bench/pool-assignment.ts): they must pass on right answers and throw on wrong ones. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assignAll, benchForbidden, checkAssigned, expectedAddresses } from '../../../bench/pool-assignment.js';
import { UsedAddresses } from '../../../src/controller/pools/assignment.js';
import { toNumeric } from '../../../src/controller/pools/cidr.js';
import { resolvePools } from '../../../src/controller/pools/pool-overlap.js';
import { poolResource, tenant } from './pool-fixtures.js';

describe('pool assignment bench checks', () => {
  const forbidden = benchForbidden();

  test('its expected addresses are allowed ones, and what assignment hands out', () => {
    const expected = expectedAddresses(10_000);
    checkAssigned('expected', expected, forbidden, expected);
    // The search jumps node addresses (every 100th from .0.50) and the pod CIDR 198.18.20.0/24.
    assert.deepEqual(expected.slice(48, 50), ['198.18.0.49', '198.18.0.51']);
    assert.ok(!expected.includes('198.18.20.7') && expected.includes('198.18.21.0'));
    const pools = resolvePools([poolResource('pool-19', ['198.18.0.0/16'], { namespaceSelector: tenant('shop') })]);
    const keys = Array.from({ length: 300 }, (_, i) => `shop/svc-${i}`);
    assert.deepEqual(assignAll(keys, pools, new UsedAddresses(), forbidden, 'pool-19'), expected.slice(0, 300));
  });

  test('wrong answers throw', () => {
    const expected = expectedAddresses(3);
    const wrong: [string[], RegExp][] = [
      [['198.18.0.1', '198.18.0.1', '198.18.0.3'], /twice/],
      [['198.18.0.0', '198.18.0.2', '198.18.0.3'], /network or broadcast/],
      [['198.18.255.255', '198.18.0.2', '198.18.0.3'], /network or broadcast/],
      [['198.19.0.1', '198.18.0.2', '198.18.0.3'], /outside 198\.18\.0\.0\/16/],
      [['198.18.0.50', '198.18.0.2', '198.18.0.3'], /is node worker-0's address/],
      [['198.18.20.9', '198.18.0.2', '198.18.0.3'], /pod CIDR 198\.18\.20\.0\/24/],
      [['198.18.0.2', '198.18.0.1', '198.18.0.3'], /address 0 is 198\.18\.0\.2, expected 198\.18\.0\.1/],
      [['198.18.0.1', '198.18.0.2'], /2 addresses, expected 3/],
    ];
    for (const [addresses, why] of wrong) assert.throws(() => checkAssigned('t', addresses, forbidden, expected), why, addresses.join(' '));
    assert.ok(forbidden.reasonFor(toNumeric('198.18.0.150')), 'node 1 too');
  });
});
