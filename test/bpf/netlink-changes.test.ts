/**
 * The rtnetlink change signal the backend agent follows pods with, on a real
 * namespace: quiet when nothing changes; a veth, an address and a host route
 * each signal; messages that overflow the socket still read as a change.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { NetlinkChanges, RtnlGroup } from '../../src/agent/net/netlink-changes.js';
import { requireKernel } from '../support/kernel.js';
import { TestNetns } from '../support/netns.js';

const NS = `xdplb-nl-${process.pid}`;
const ALL = RtnlGroup.LINK | RtnlGroup.IPV4_IFADDR | RtnlGroup.IPV6_IFADDR | RtnlGroup.IPV4_ROUTE | RtnlGroup.IPV6_ROUTE;
/** The kernel queues a message within microseconds; generous for a loaded machine. */
const SIGNAL_WAIT_MS = 10_000;
const POLL_MS = 20;
/** veth pairs made to overflow the socket's receive buffer (each brings several messages; this kernel has no dummy links). */
const MANY_PAIRS = 300;

describe('rtnetlink changes', () => {
  let ns: TestNetns | undefined;
  let changes: NetlinkChanges | undefined;

  before(() => {
    if (process.getuid?.() !== 0) return;
    ns = new TestNetns(NS);
    ns.ip('link', 'set', 'lo', 'up');
    ns.enter();
    try {
      changes = NetlinkChanges.open(ALL);
    } finally {
      ns.leave();
    }
  });
  after(() => {
    changes?.close();
    ns?.remove();
  });

  const signalled = async (): Promise<boolean> => {
    const deadline = Date.now() + SIGNAL_WAIT_MS;
    while (Date.now() < deadline) {
      if (changes!.changed()) return true;
      await sleep(POLL_MS);
    }
    return false;
  };

  test('quiet when nothing changes; a veth, an address and a host route each signal once drained', async (t) => {
    if (!requireKernel(t)) return;
    changes!.changed(); // what lo's start said
    assert.equal(changes!.changed(), false, 'nothing new');
    ns!.ip('link', 'add', 'pod0h', 'type', 'veth', 'peer', 'name', 'pod0c');
    assert.ok(await signalled(), 'a new veth');
    assert.equal(changes!.changed(), false, 'drained: nothing new until the next change');
    ns!.ip('link', 'set', 'pod0h', 'up');
    ns!.ip('addr', 'add', '198.18.150.1/32', 'dev', 'pod0h');
    assert.ok(await signalled(), 'a link up and an address');
    ns!.ip('route', 'add', '198.18.150.2/32', 'dev', 'pod0h');
    assert.ok(await signalled(), 'an IPv4 host route');
    ns!.ip('-6', 'route', 'add', '2001:db8:150::2/128', 'dev', 'pod0h');
    assert.ok(await signalled(), 'an IPv6 host route');
    ns!.ip('link', 'del', 'pod0h');
    assert.ok(await signalled(), 'the veth gone');
  });

  test('more messages than the socket holds still read as a change, and the socket keeps working', async (t) => {
    if (!requireKernel(t)) return;
    changes!.changed();
    const batch = Array.from({ length: MANY_PAIRS }, (_, i) => `link add v${i}a type veth peer name v${i}b`).join('\n');
    const { execFileSync } = await import('node:child_process');
    execFileSync('ip', ['-n', NS, '-batch', '-'], { input: batch, stdio: ['pipe', 'pipe', 'pipe'] });
    assert.ok(await signalled(), 'the burst');
    // Whatever the burst left queued is drained first; a new change must come through after it.
    while (changes!.changed()) { /* drain */ }
    ns!.ip('link', 'set', 'v0a', 'up');
    assert.ok(await signalled(), 'a change after the burst');
  });
});
