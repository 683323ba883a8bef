import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rendezvous } from '../../src/lib/rendezvous.js';
import { healthTargetKey } from '../../src/api/health-check.js';

/** 1000 VIPs x 10 backends: enough keys for shares within a few percent. */
const KEYS = Array.from({ length: 10_000 }, (_, i) => healthTargetKey(`ns/vip-${i % 1000}`, `198.18.${(i >> 8) & 255}.${i & 255}`));
const NODES = ['node-a', 'node-b', 'node-c', 'node-d', 'node-e'];

function shares(a: Rendezvous): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of KEYS) m.set(a.ownerOf(k)!, (m.get(a.ownerOf(k)!) ?? 0) + 1);
  return m;
}

test('every key has exactly one owner among the nodes, and each node gets about 1/N', () => {
  const s = shares(new Rendezvous(NODES));
  assert.deepEqual([...s.keys()].sort(), NODES);
  const fair = KEYS.length / NODES.length;
  for (const [node, n] of s) assert.ok(Math.abs(n - fair) / fair < 0.06, `${node}: ${n} keys, fair share ${fair}`);
});

test('the owner does not depend on the order or repetition of the node list', () => {
  const a = new Rendezvous(NODES);
  const b = new Rendezvous([...NODES].reverse().concat(NODES[0]!));
  for (const k of KEYS.slice(0, 500)) assert.equal(a.ownerOf(k), b.ownerOf(k));
  assert.equal(a.digest(), b.digest());
  assert.notEqual(a.digest(), new Rendezvous(NODES.slice(1)).digest());
});

test('a node that leaves moves only its own keys; one that joins takes about 1/(N+1) and only from others', () => {
  const all = new Rendezvous(NODES);
  const without = new Rendezvous(NODES.filter((n) => n !== 'node-c'));
  let moved = 0;
  for (const k of KEYS) {
    const before = all.ownerOf(k);
    const after = without.ownerOf(k);
    if (before !== after) {
      moved++;
      assert.equal(before, 'node-c', `${k} moved from ${before}, not the node that left`);
    }
  }
  assert.equal(moved, shares(all).get('node-c'));
  const joined = new Rendezvous([...NODES, 'node-f']);
  const gained = KEYS.filter((k) => joined.ownerOf(k) !== all.ownerOf(k));
  assert.ok(gained.every((k) => joined.ownerOf(k) === 'node-f'));
  const fair = KEYS.length / (NODES.length + 1);
  assert.ok(Math.abs(gained.length - fair) / fair < 0.08, `the new node took ${gained.length}, fair ${fair}`);
});

test('no nodes: no owner', () => {
  assert.equal(new Rendezvous([]).ownerOf('x'), undefined);
});
