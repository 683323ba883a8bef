import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalIp, parseIp } from '../../src/lib/ip.js';

test('parses and canonicalises IPv4 and IPv6', () => {
  const v4 = parseIp('198.19.0.10');
  assert.equal(v4.family, 4);
  assert.deepEqual([...v4.bytes.subarray(0, 4)], [198, 19, 0, 10]);
  assert.ok(v4.bytes.subarray(4).every((b) => b === 0));
  assert.equal(canonicalIp('2001:0db8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  assert.equal(canonicalIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  assert.equal(canonicalIp('::ffff:198.18.0.1'), '::ffff:c612:1');
  assert.equal(canonicalIp('::'), '::');
  assert.equal(parseIp('2001:db8::1').bytes.toString('hex'), '20010db8000000000000000000000001');
  for (const bad of ['', '1.2.3', '256.1.1.1', '2001:db8:::1', 'vip', '198.19.0.10/32']) {
    assert.throws(() => parseIp(bad), /not an IPv4 or IPv6 address/, bad);
  }
});
