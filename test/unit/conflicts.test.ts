import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { canonicalIp } from '../../src/lib/ip.js';
import { ClaimIndex, type ConflictInfo } from '../../src/controller/conflicts.js';

const ref = (v: LoadBalancerVip) => `${v.metadata.namespace}/${v.metadata.name}`;

function vip(name: string, created: string, address: string, ports: number[], balancer?: string): LoadBalancerVip {
  return {
    metadata: { name, namespace: 'shop', creationTimestamp: new Date(created) },
    spec: { address, balancer, ports: ports.map((port) => ({ port, protocol: 'TCP' })), backendSelector: { matchLabels: { app: 'web' } } },
  };
}

/** The scan the controller ran on every reconcile before the index: the oracle the index must agree with. */
function scan(vips: readonly LoadBalancerVip[]): Map<string, ConflictInfo> {
  const time = (v: LoadBalancerVip) => new Date(v.metadata.creationTimestamp ?? 0).getTime();
  const sorted = [...vips].sort((a, b) => time(a) - time(b) || (ref(a) < ref(b) ? -1 : ref(a) > ref(b) ? 1 : 0));
  const holder = new Map<string, LoadBalancerVip>();
  const out = new Map<string, ConflictInfo>();
  for (const v of sorted) {
    const address = canonicalIp(v.spec.address);
    for (const p of v.spec.ports) {
      const claim = `${v.spec.balancer ?? 'default'}|${address}|${p.port}/${p.protocol}`;
      const held = holder.get(claim);
      if (!held) {
        holder.set(claim, v);
        continue;
      }
      const info = out.get(ref(v)) ?? { lost: [] };
      info.lost.push({ claim: `${address}:${p.port}/${p.protocol}`, heldBy: ref(held) });
      out.set(ref(v), info);
    }
  }
  return out;
}

describe('claim index', () => {
  test('the oldest claimant holds a claim; equal creation times go by name; a deleted holder frees it', () => {
    const idx = new ClaimIndex();
    const old = vip('old', '2026-01-01T00:00:00Z', '198.19.0.10', [80]);
    const b = vip('b', '2026-02-01T00:00:00Z', '198.19.0.10', [80, 443]);
    const a = vip('a', '2026-02-01T00:00:00Z', '198.19.0.10', [443]);
    assert.deepEqual([...idx.update(b, false)], []);
    assert.deepEqual([...idx.update(a, false)], ['shop/b'], 'a rival of b');
    assert.deepEqual([...idx.update(old, false)], ['shop/b']);
    assert.equal(idx.conflictOf('shop/old'), undefined);
    assert.equal(idx.conflictOf('shop/a'), undefined, 'a precedes b at the same time');
    assert.deepEqual(idx.conflictOf('shop/b'), { lost: [
      { claim: '198.19.0.10:80/TCP', heldBy: 'shop/old' },
      { claim: '198.19.0.10:443/TCP', heldBy: 'shop/a' },
    ] });
    assert.deepEqual([...idx.update(old, true)], ['shop/b'], 'the loser is told');
    assert.deepEqual(idx.conflictOf('shop/b'), { lost: [{ claim: '198.19.0.10:443/TCP', heldBy: 'shop/a' }] });
    idx.update(a, true);
    assert.equal(idx.conflictOf('shop/b'), undefined);
    assert.equal(idx.conflictOf('shop/a'), undefined, 'a deleted VIP has no conflict');
  });

  test('an update moving a VIP to another port moves its claim, and names the rivals of both', () => {
    const idx = new ClaimIndex();
    const holder80 = vip('web', '2026-01-01T00:00:00Z', '198.19.0.10', [80]);
    const holder8080 = vip('alt', '2026-01-02T00:00:00Z', '198.19.0.10', [8080]);
    const mover = vip('mover', '2026-03-01T00:00:00Z', '198.19.0.10', [80]);
    for (const v of [holder80, holder8080, mover]) idx.update(v, false);
    assert.deepEqual(idx.conflictOf('shop/mover'), { lost: [{ claim: '198.19.0.10:80/TCP', heldBy: 'shop/web' }] });
    const moved = vip('mover', '2026-03-01T00:00:00Z', '198.19.0.10', [8080]);
    assert.deepEqual([...idx.update(moved, false)].sort(), ['shop/alt', 'shop/web']);
    assert.deepEqual(idx.conflictOf('shop/mover'), { lost: [{ claim: '198.19.0.10:8080/TCP', heldBy: 'shop/alt' }] });
    // The old claim is free: a newer VIP on port 80 now conflicts with web alone.
    const late = vip('late', '2026-04-01T00:00:00Z', '198.19.0.10', [80]);
    assert.deepEqual([...idx.update(late, false)], ['shop/web']);
    // Same address on another balancer, or another spelling of one IPv6 address.
    const edge = vip('edge', '2026-05-01T00:00:00Z', '198.19.0.10', [80], 'edge');
    assert.deepEqual([...idx.update(edge, false)], []);
    idx.update(vip('v6', '2026-01-01T00:00:00Z', '2001:db8:19::10', [80]), false);
    assert.deepEqual([...idx.update(vip('v6-long', '2026-01-01T00:00:00Z', '2001:0db8:0019:0000:0000:0000:0000:0010', [80]), false)], ['shop/v6']);
    assert.deepEqual(idx.conflictOf('shop/v6-long'), { lost: [{ claim: '2001:db8:19::10:80/TCP', heldBy: 'shop/v6' }] });
  });

  test('through adds, moves and deletes, the index decides as the full scan did, and names every VIP whose decision changed', () => {
    // A fixed pseudo-random walk over few addresses and ports, so claims collide often.
    let seed = 11;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const addresses = ['198.19.0.10', '198.19.0.11', '2001:db8:19::10'];
    const idx = new ClaimIndex();
    const live = new Map<string, LoadBalancerVip>();
    for (let step = 0; step < 300; step++) {
      const name = `v${rand(20)}`;
      const deleting = live.has(`shop/${name}`) && rand(4) === 0;
      const v = vip(name, `2026-01-0${1 + rand(3)}T00:00:00Z`, addresses[rand(addresses.length)]!, [...new Set([80 + rand(3), 80 + rand(3)])], rand(5) ? undefined : 'edge');
      const before = scan([...live.values()]);
      if (deleting) live.delete(ref(v));
      else live.set(ref(v), v);
      const rivals = idx.update(deleting ? live.get(ref(v)) ?? v : v, deleting);
      const after = scan([...live.values()]);
      assert.deepEqual(idx.conflicts(), after, `step ${step}`);
      for (const key of live.keys()) {
        if (key === ref(v)) continue;
        const changed = JSON.stringify(before.get(key)) !== JSON.stringify(after.get(key));
        if (changed) assert.ok(rivals.has(key), `step ${step}: ${key} changed but was not named`);
      }
    }
  });
});
