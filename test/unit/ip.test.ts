import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalIp, PARSED_MAX, parseCacheStats, parseIp } from '../../src/lib/ip.js';

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

test('the parse cache keeps addresses in use while more distinct ones than it holds pass through', () => {
  const v4 = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const HOT = 1000;
  const hot = Array.from({ length: HOT }, (_, i) => `198.51.${i >> 8}.${i & 255}`);
  const start = parseCacheStats();
  for (const h of hot) parseIp(h);
  // Churn: 1.5x the cache's bound of addresses seen once, the hot ones used between every slice.
  const ONCE = PARSED_MAX + PARSED_MAX / 2;
  const SLICE = PARSED_MAX / 4;
  for (let i = 0; i < ONCE; i++) {
    parseIp(v4(i));
    if (i % SLICE === SLICE - 1) {
      const before = parseCacheStats().misses;
      for (const h of hot) parseIp(h);
      assert.equal(parseCacheStats().misses, before, `hot addresses re-parsed after ${i + 1} others`);
    }
    if (i % SLICE === 0) assert.ok(parseCacheStats().entries <= PARSED_MAX);
  }
  const end = parseCacheStats();
  assert.equal(end.entries, PARSED_MAX);
  assert.equal(end.misses - start.misses, HOT + ONCE, 'each address parsed once: the hot ones never again');
  // The first of the churned ones were evicted, and parse the same again.
  assert.equal(parseIp(v4(0)).text, '10.0.0.0');
  assert.equal(parseCacheStats().misses, end.misses + 1);
});
