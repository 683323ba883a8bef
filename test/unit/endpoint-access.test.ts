/**
 * The authorization decisions of the agent's endpoints, without an API
 * server (test/e2e/endpoint-auth.test.ts runs them against a real one):
 * which SubjectAccessReviews a trace filter needs, per-caller quotas, the
 * review cache's expiry and bound, and who the VIPs on a node belong to.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTraceFilter } from '../../src/api/trace-filter.js';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import type { InstalledVipRef } from '../../src/agent/dataplane/dataplane.js';
import { authorizeTrace, CallerQuotas, traceAccess, TraceQuotaError, VipOwners } from '../../src/agent/trace/trace-access.js';
import { selectedVips } from '../../src/agent/trace/trace-rules.js';
import { type Access, AccessDenied, type AccessReviewer, type Caller, describeAccess, ExpiringCache } from '../../src/lib/access-review.js';

const A: InstalledVipRef = { id: '198.19.0.10:80/TCP', num: 1, address: '198.19.0.10', port: 80, proto: 6 };
const A443: InstalledVipRef = { id: '198.19.0.10:443/TCP', num: 2, address: '198.19.0.10', port: 443, proto: 6 };
const B: InstalledVipRef = { id: '198.19.0.20:80/TCP', num: 3, address: '198.19.0.20', port: 80, proto: 6 };
const OWNERS: Record<string, { namespace: string; name: string }[]> = {
  [A.id]: [{ namespace: 'a', name: 'web' }],
  [A443.id]: [{ namespace: 'a', name: 'web' }],
  [B.id]: [{ namespace: 'b', name: 'web' }],
};
const alice: Caller = { username: 'alice', groups: ['system:authenticated'] };

/** Allows what `grants` lists (describeAccess of it); records every question. */
function reviewer(grants: string[]): AccessReviewer & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    authenticate: () => Promise.resolve(alice),
    allowed: (_c: Caller, a: Access) => {
      asked.push(describeAccess(a));
      return Promise.resolve(grants.includes(describeAccess(a)));
    },
  };
}

const decide = (grants: string[], vip: string[], extra: { client?: string } = {}) => {
  const r = reviewer(grants);
  const filter = parseTraceFilter({ vip, ...extra });
  return { r, result: authorizeTrace(r, alice, filter, (f) => selectedVips(f, [A, A443, B]), (id) => OWNERS[id] ?? []) };
};

const IN_A = describeAccess(traceAccess('a', 'web'));
const IN_B = describeAccess(traceAccess('b', 'web'));
const EVERYWHERE = describeAccess(traceAccess(''));

describe('trace authorization', () => {
  test('the permission a trace needs is create loadbalancervips/trace in the VIP\'s namespace, for that VIP', () => {
    assert.equal(IN_A, 'create loadbalancervips/trace.xdplb.dev "web" in namespace a');
    assert.equal(EVERYWHERE, 'create loadbalancervips/trace.xdplb.dev in all namespaces (cluster-wide)');
  });

  test("a VIP of a namespace the caller may trace in: granted for the VIPs it selects only", async () => {
    const { result } = decide([IN_A], ['198.19.0.10']);
    const grant = await result;
    assert.equal(grant.clusterWide, false);
    assert.deepEqual([...grant.vipIds].sort(), [A443.id, A.id].sort(), 'both ports of the address, each checked');
  });

  test("another namespace's VIP, or one of them among the caller's: refused, naming the namespace", async () => {
    await assert.rejects(decide([IN_A], ['198.19.0.20:80/TCP']).result,
      (e: AccessDenied) => e.status === 403 && /198\.19\.0\.20:80\/TCP of b\/web/.test(e.message));
    await assert.rejects(decide([IN_A], ['198.19.0.10:80', '198.19.0.20']).result, (e: AccessDenied) => e.status === 403 && /b\/web/.test(e.message));
  });

  test('no VIP (the whole node, host traffic included) or an address that is no installed VIP needs cluster-wide permission', async () => {
    for (const [vip, extra] of [[[], {}], [[], { client: '198.18.10.0/24' }], [['198.19.0.99'], {}]] as const) {
      await assert.rejects(decide([IN_A, IN_B], [...vip], extra).result, (e: AccessDenied) => e.status === 403 && e.message.includes(EVERYWHERE));
    }
  });

  test('cluster-wide permission grants any filter, and every record', async () => {
    for (const vip of [[], ['198.19.0.99'], ['198.19.0.20']]) {
      const grant = await decide([EVERYWHERE], vip).result;
      assert.equal(grant.clusterWide, true);
    }
  });

  test('a review that cannot be made is 503, not a denial that sticks', async () => {
    const r: AccessReviewer = { authenticate: () => Promise.resolve(alice), allowed: () => Promise.reject(new Error('connection refused')) };
    await assert.rejects(authorizeTrace(r, alice, parseTraceFilter({ vip: ['198.19.0.10'] }), (f) => selectedVips(f, [A]), () => []),
      (e: AccessDenied) => e.status === 503);
  });
});

describe('per-caller quotas', () => {
  test("one caller's sessions, rules and rate are counted apart from another's, and given back on close", () => {
    const q = new CallerQuotas({ sessions: 2, rules: 3, rate: 2000 });
    const a1 = q.take('alice', { rules: 2, rate: 1000 });
    assert.throws(() => q.take('alice', { rules: 2, rate: 500 }), (e: Error) => e instanceof TraceQuotaError && /3 trace rules/.test(e.message));
    assert.throws(() => q.take('alice', { rules: 1, rate: 1500 }), /2000 records\/s/);
    const a2 = q.take('alice', { rules: 1, rate: 1000 });
    assert.throws(() => q.take('alice', { rules: 0, rate: 0 }), /2 sessions/);
    const b = q.take('bob', { rules: 3, rate: 2000 });
    a1();
    a1(); // twice gives back once
    assert.deepEqual(q.of('alice'), { sessions: 1, rules: 1, rate: 1000 });
    a2();
    b();
    assert.deepEqual(q.of('alice'), { sessions: 0, rules: 0, rate: 0 });
  });

  test('the default leaves room for another caller: half the program\'s rules each', () => {
    const q = new CallerQuotas();
    assert.ok(q.limits.rules * 2 <= 8);
  });
});

describe('review cache', () => {
  test('entries expire after the TTL and the oldest go beyond the bound', () => {
    let now = 0;
    const c = new ExpiringCache<number>(1000, 2, () => now);
    c.set('x', 1);
    c.set('y', 2);
    c.set('z', 3);
    assert.equal(c.size, 2);
    assert.equal(c.get('x'), undefined, 'the oldest went');
    now = 999;
    assert.equal(c.get('z'), 3);
    now = 1000;
    assert.equal(c.get('z'), undefined, 'expired');
  });
});

describe('VIP owners', () => {
  test('each installed VIP id names the LoadBalancerVips behind it', () => {
    const vip = (namespace: string, name: string, address: string, ports: number[]): LoadBalancerVip => ({
      apiVersion: 'xdplb.dev/v1alpha1', kind: 'LoadBalancerVip', metadata: { namespace, name },
      spec: { ports: ports.map((port) => ({ port, protocol: 'TCP' })) },
      status: { address, conditions: [{ type: 'AddressAllowed', status: 'True' }], backends: [] },
    } as unknown as LoadBalancerVip);
    const owners = new VipOwners();
    owners.set([vip('a', 'web', '198.19.0.10', [80, 443]), vip('b', 'v6', '2001:db8::10', [80])]);
    assert.deepEqual(owners.of('198.19.0.10:443/TCP'), [{ namespace: 'a', name: 'web' }]);
    assert.deepEqual(owners.of('[2001:db8::10]:80/TCP'), [{ namespace: 'b', name: 'v6' }]);
    assert.deepEqual(owners.of('198.19.0.99:80/TCP'), []);
  });
});
