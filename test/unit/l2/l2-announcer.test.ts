import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type IpAddress, parseIp } from '../../../src/lib/ip.js';
import { L2_ANSWER, L2Announcer, type L2AddressMap } from '../../../src/agent/announce/l2-announcer.js';

/** The map as the kernel's would behave: keyed by address. */
class AddressMap implements L2AddressMap {
  readonly m = new Map<string, [IpAddress, number]>();
  keys() {
    return [...this.m.values()].map(([a]) => a);
  }
  set(k: IpAddress, v: number) {
    this.m.set(k.text, [k, v]);
  }
  delete(k: IpAddress) {
    return this.m.delete(k.text);
  }
  texts() {
    return [...this.m.keys()].sort();
  }
}

test('answers exactly the addresses given; announces only the new ones, repeated; withdrawAll empties the map and stops everything', async () => {
  const map = new AddressMap();
  const sent: string[] = [];
  const l2 = new L2Announcer(map, (a) => sent.push(a.text), { repeats: 2, intervalMs: 30 });
  l2.set(['198.19.0.10', '2001:db8:19:0::10']);
  assert.deepEqual(map.texts(), ['198.19.0.10', '2001:db8:19::10']);
  assert.equal([...map.m.values()][0]![1], L2_ANSWER);
  assert.deepEqual(sent.sort(), ['198.19.0.10', '2001:db8:19::10']);
  l2.set(['198.19.0.10', '198.19.0.11']);
  assert.deepEqual(map.texts(), ['198.19.0.10', '198.19.0.11']);
  await sleep(200);
  // The repeats: 198.19.0.10 twice, .11 twice, the IPv6 one only once (given away before its repeat).
  assert.deepEqual(sent.filter((s) => s === '198.19.0.11').length, 2);
  assert.deepEqual(sent.filter((s) => s === '2001:db8:19::10').length, 1);
  assert.equal(l2.state().announcementsSent, sent.length);
  l2.withdrawAll();
  assert.deepEqual(map.texts(), []);
  l2.set(['198.19.0.12']);
  assert.deepEqual(map.texts(), [], 'a stopping node takes nothing new');
});

test('a restarted agent adopts what the map holds and announces nothing for it; a send that fails is counted, not thrown', () => {
  const map = new AddressMap();
  map.set(parseIp('198.19.0.10'), L2_ANSWER);
  const sent: string[] = [];
  const l2 = new L2Announcer(map, (a) => {
    if (a.text === '198.19.0.11') throw new Error('no CAP_NET_RAW');
    sent.push(a.text);
  }, { repeats: 1 });
  assert.deepEqual(l2.state().answering, ['198.19.0.10']);
  l2.set(['198.19.0.10', '198.19.0.11']);
  assert.deepEqual(sent, []);
  assert.equal(l2.state().announceErrors, 1);
  assert.deepEqual(map.texts(), ['198.19.0.10', '198.19.0.11'], 'it still answers ARP for it');
});
