/** A lost source address or next hop keeps its last good value, reported stale; what returns, changed or not, replaces it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withLastGood } from '../../src/agent/net/last-good.js';
import type { NextHop } from '../../src/agent/net/next-hop.js';

const programmed: NextHop = {
  nic: 'eth0',
  ifindex: 2,
  gateway: '198.18.21.1',
  nextHopMac: '02:00:00:00:00:01',
  srcMac: '02:00:00:00:00:02',
  srcV4: '198.18.21.2',
  srcV6: '2001:db8:21::2',
  maxPktSize: 3000,
};

test('nothing lost: the observation is programmed as it is', () => {
  const observed = { ...programmed, nextHopMac: '02:00:00:00:00:09' };
  assert.deepEqual(withLastGood(programmed, observed), { nextHop: observed, stale: [] });
});

test('a source address gone from the NIC: the last one is kept and reported, the rest follows the observation', () => {
  // With its IPv4 address, the NIC lost its IPv4 default route: discovery fell back to the IPv6 gateway.
  const observed = { ...programmed, srcV4: undefined, gateway: '2001:db8:21::1' };
  const kept = withLastGood(programmed, observed);
  assert.deepEqual(kept.stale, ['source_v4']);
  assert.equal(kept.nextHop.srcV4, '198.18.21.2');
  assert.equal(kept.nextHop.gateway, '2001:db8:21::1');
  assert.equal(withLastGood(programmed, { ...programmed, srcV4: undefined, srcV6: undefined }).stale.join(), 'source_v4,source_v6');
});

test('the address returns changed: the new one replaces the kept one, nothing stale', () => {
  const lost = withLastGood(programmed, { ...programmed, srcV4: undefined }).nextHop;
  const back = withLastGood(lost, { ...programmed, srcV4: '198.18.21.3' });
  assert.deepEqual(back, { nextHop: { ...programmed, srcV4: '198.18.21.3' }, stale: [] });
});

test('an address the node never had is not stale: there is nothing to keep', () => {
  const v4only = { ...programmed, srcV6: undefined };
  assert.deepEqual(withLastGood(v4only, v4only), { nextHop: v4only, stale: [] });
});

test('no next hop could be discovered: everything is kept, the next hop reported', () => {
  assert.deepEqual(withLastGood(programmed, null), { nextHop: programmed, stale: ['next_hop'] });
});
