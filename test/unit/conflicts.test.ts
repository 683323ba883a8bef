import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { canonicalIp } from '../../src/lib/ip.js';
import { ClaimIndex, type ConflictInfo, lossMessage, type SharesNodes } from '../../src/controller/conflicts.js';

const ref = (v: LoadBalancerVip) => `${v.metadata.namespace}/${v.metadata.name}`;

function vip(name: string, created: string, address: string, ports: number[], balancer?: string, namespace = 'shop'): LoadBalancerVip {
  return {
    metadata: { name, namespace, creationTimestamp: new Date(created) },
    spec: { address, balancer, ports: ports.map((port) => ({ port, protocol: 'TCP' })), backendSelector: { matchLabels: { app: 'web' } } },
  };
}

/**
 * The scan of every VIP, oldest first, that the index must agree with: a VIP
 * keeps a claim unless an older keeper of it is on a balancer that may share
 * a node with its own (its own balancer always does).
 */
function scan(vips: readonly LoadBalancerVip[], shares: SharesNodes = () => false): Map<string, ConflictInfo> {
  const time = (v: LoadBalancerVip) => new Date(v.metadata.creationTimestamp ?? 0).getTime();
  const sorted = [...vips].sort((a, b) => time(a) - time(b) || (ref(a) < ref(b) ? -1 : ref(a) > ref(b) ? 1 : 0));
  const balancer = (v: LoadBalancerVip) => v.spec.balancer ?? 'default';
  const keepers = new Map<string, LoadBalancerVip[]>();
  const out = new Map<string, ConflictInfo>();
  for (const v of sorted) {
    const address = canonicalIp(v.spec.address!);
    for (const p of v.spec.ports) {
      const claim = `${address}|${p.port}/${p.protocol}`;
      const kept = keepers.get(claim) ?? [];
      keepers.set(claim, kept);
      const held = kept.find((k) => balancer(k) === balancer(v) || shares(balancer(k), balancer(v)));
      if (!held) {
        kept.push(v);
        continue;
      }
      const info = out.get(ref(v)) ?? { lost: [] };
      info.lost.push({
        claim: `${address}:${p.port}/${p.protocol}`, heldBy: ref(held),
        ...(held.metadata.namespace !== v.metadata.namespace ? { otherNamespace: true as const } : {}),
        ...(balancer(held) !== balancer(v) ? { balancer: balancer(held) } : {}),
      });
      out.set(ref(v), info);
    }
  }
  return out;
}

/** edge may share nodes with default and with far; default and far share none (not transitive). */
const SHARES: SharesNodes = (a, b) => [a, b].includes('edge');

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
    // Same address on another balancer: a rival to look at, but by default balancers share no node.
    const edge = vip('edge', '2026-05-01T00:00:00Z', '198.19.0.10', [80], 'edge');
    assert.deepEqual([...idx.update(edge, false)].sort(), ['shop/late', 'shop/web']);
    assert.equal(idx.conflictOf('shop/edge'), undefined);
    // Another spelling of one IPv6 address.
    idx.update(vip('v6', '2026-01-01T00:00:00Z', '2001:db8:19::10', [80]), false);
    assert.deepEqual([...idx.update(vip('v6-long', '2026-01-01T00:00:00Z', '2001:0db8:0019:0000:0000:0000:0000:0010', [80]), false)], ['shop/v6']);
    assert.deepEqual(idx.conflictOf('shop/v6-long'), { lost: [{ claim: '2001:db8:19::10:80/TCP', heldBy: 'shop/v6' }] });
  });

  test('a holder edited in any way names its losers, who settle: port moved, address respelled then moved, balancer changed, deleted', () => {
    const idx = new ClaimIndex(SHARES);
    const holder = vip('holder', '2026-01-01T00:00:00Z', '2001:db8::1', [80]);
    const loser = vip('loser', '2026-02-01T00:00:00Z', '2001:DB8:0::1', [80]);
    idx.update(holder, false);
    assert.deepEqual([...idx.update(loser, false)], ['shop/holder']);
    assert.deepEqual(idx.conflictOf('shop/loser'), { lost: [{ claim: '2001:db8::1:80/TCP', heldBy: 'shop/holder' }] }, 'two spellings, one claim');
    const edits: [string, LoadBalancerVip, boolean][] = [
      ['port moved', vip('holder', '2026-01-01T00:00:00Z', '2001:db8::1', [8080]), false],
      ['port back, spelled another way', vip('holder', '2026-01-01T00:00:00Z', '2001:0db8:0000::0001', [80]), true],
      ['address moved', vip('holder', '2026-01-01T00:00:00Z', '2001:db8::2', [80]), false],
      ['back, on a balancer that shares nodes', vip('holder', '2026-01-01T00:00:00Z', '2001:db8::1', [80], 'edge'), true],
      ['on a balancer that shares none', vip('holder', '2026-01-01T00:00:00Z', '2001:db8::1', [80], 'far'), false],
    ];
    for (const [what, edited, conflicts] of edits) {
      assert.ok(idx.update(edited, false).has('shop/loser'), `${what}: the loser is named`);
      assert.equal(!!idx.conflictOf('shop/loser'), conflicts, `${what}: the loser's conflict`);
    }
    assert.ok(idx.update(vip('holder', '2026-01-01T00:00:00Z', '2001:db8::1', [80]), false).has('shop/loser'));
    assert.ok(idx.conflictOf('shop/loser'));
    assert.deepEqual([...idx.update(holder, true)], ['shop/loser'], 'deleted: the loser is named');
    assert.equal(idx.conflictOf('shop/loser'), undefined, 'and takes over');
  });

  test('balancers that may share nodes conflict; a loser does not block a younger VIP its balancer shares no node with', () => {
    const a = vip('a', '2026-01-01T00:00:00Z', '198.19.0.10', [80], 'default');
    const b = vip('b', '2026-01-02T00:00:00Z', '198.19.0.10', [80], 'edge');
    const c = vip('c', '2026-01-03T00:00:00Z', '198.19.0.10', [80], 'far');
    const idx = ClaimIndex.of([c, b, a], SHARES);
    assert.deepEqual(idx.conflicts(), new Map([['shop/b', { lost: [{ claim: '198.19.0.10:80/TCP', heldBy: 'shop/a', balancer: 'default' }] }]]));
    assert.deepEqual([...idx.rivalsOf('shop/a')].sort(), ['shop/b', 'shop/c'], 'every claimant, whatever its balancer');
    // a leaves: b keeps the claim, and now c on far, which shares b's nodes, loses it.
    assert.deepEqual([...idx.update(a, true)].sort(), ['shop/b', 'shop/c']);
    assert.equal(idx.conflictOf('shop/b'), undefined);
    assert.deepEqual(idx.conflictOf('shop/c'), { lost: [{ claim: '198.19.0.10:80/TCP', heldBy: 'shop/b', balancer: 'edge' }] });
    assert.equal(lossMessage(idx.conflictOf('shop/c')!.lost[0]!),
      '198.19.0.10:80/TCP is held by shop/b on XdpBalancer "edge", which may run on the same nodes (the nodeSelectors do not exclude each other)');
  });

  test("a holder in another namespace is flagged, and the loser's message does not name it", () => {
    const idx = new ClaimIndex();
    idx.update(vip('web', '2026-01-01T00:00:00Z', '198.19.0.10', [80], undefined, 'bank'), false);
    idx.update(vip('mine', '2026-02-01T00:00:00Z', '198.19.0.10', [80]), false);
    idx.update(vip('web', '2026-03-01T00:00:00Z', '198.19.0.10', [80]), false);
    const info = idx.conflictOf('shop/mine')!;
    assert.deepEqual(info, { lost: [{ claim: '198.19.0.10:80/TCP', heldBy: 'bank/web', otherNamespace: true }] }, 'the log may know who');
    assert.equal(lossMessage(info.lost[0]!), '198.19.0.10:80/TCP is in use by another namespace');
    assert.doesNotMatch(lossMessage(info.lost[0]!), /bank/);
    idx.update(vip('web', '2026-01-01T00:00:00Z', '198.19.0.10', [80], undefined, 'bank'), true);
    assert.equal(lossMessage(idx.conflictOf('shop/web')!.lost[0]!), '198.19.0.10:80/TCP is held by shop/mine', 'same namespace: named');
  });

  for (const [what, shares] of [['balancers share no node', undefined], ['some balancers share nodes', SHARES]] as const) {
    test(`through adds, moves, respellings and deletes (${what}), the index decides as the full scan did, and names every VIP whose decision changed`, () => {
      // A fixed pseudo-random walk over few addresses and ports, so claims collide often.
      let seed = 11;
      const rand = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      const addresses = ['198.19.0.10', '198.19.0.11', '2001:db8:19::10', '2001:DB8:19:0::10', '2001:0db8:0019::0010'];
      const balancers = [undefined, undefined, 'edge', 'far'];
      const idx = new ClaimIndex(shares);
      const live = new Map<string, LoadBalancerVip>();
      for (let step = 0; step < 400; step++) {
        const name = `v${rand(20)}`;
        const ns = rand(3) ? 'shop' : 'bank';
        const deleting = live.has(`${ns}/${name}`) && rand(4) === 0;
        const v = vip(name, `2026-01-0${1 + rand(3)}T00:00:00Z`, addresses[rand(addresses.length)]!, [...new Set([80 + rand(3), 80 + rand(3)])],
          balancers[rand(balancers.length)], ns);
        const before = scan([...live.values()], shares);
        if (deleting) live.delete(ref(v));
        else live.set(ref(v), v);
        const rivals = idx.update(v, deleting);
        const after = scan([...live.values()], shares);
        assert.deepEqual(idx.conflicts(), after, `step ${step}`);
        for (const key of live.keys()) {
          if (key === ref(v)) continue;
          const changed = JSON.stringify(before.get(key)) !== JSON.stringify(after.get(key));
          if (changed) assert.ok(rivals.has(key), `step ${step}: ${key} changed but was not named`);
        }
      }
      assert.deepEqual(ClaimIndex.of(live.values(), shares).conflicts(), idx.conflicts(), 'a rebuilt index decides the same');
    });
  }
});
