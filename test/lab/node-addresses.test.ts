/** The agent reads its node's addresses (no VIP may be one) through `ip -j`, in its own network namespace. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { allAddresses } from '../../src/agent/net/iproute.js';
import { requireKernel } from '../support/kernel.js';
import { TestNetns } from '../support/netns.js';

const NETNS = `xdplb-addrs-${process.pid}`;
let netns: TestNetns | null = null;
after(() => netns?.remove());

test('every address of the namespace, on any link and of any family, and only those', async (t) => {
  if (!requireKernel(t)) return;
  netns = new TestNetns(NETNS);
  // Both ends stay down: nothing is sent anywhere.
  netns.ip('link', 'add', 'na0', 'type', 'veth', 'peer', 'name', 'na1');
  netns.ip('addr', 'add', '198.18.99.1/24', 'dev', 'na0');
  netns.ip('addr', 'add', '198.18.98.7/32', 'dev', 'na1');
  netns.ip('-6', 'addr', 'add', '2001:db8:99::1/64', 'dev', 'na0', 'nodad');
  netns.enter();
  const addrs = await allAddresses();
  // Link-local IPv6 addresses come and go with the links' state; the rest is exactly what the test configured.
  assert.deepEqual(addrs.filter((a) => !a.startsWith('fe80:')).sort(), ['198.18.98.7', '198.18.99.1', '2001:db8:99::1']);
});
