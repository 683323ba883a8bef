/**
 * status.backends never grows past its limit: what it had stays listed (flows
 * run to those backends), new backends fill what room is left, the rest are
 * counted. The API's refusal of a longer list is what the limit avoids: the
 * CRD's maxItems is checked against the constant in test/unit/crds.test.ts,
 * and a controller with a small limit writes through the real API in
 * test/e2e/controller-edges.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BackendStatus, LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { limitBackends } from '../../src/controller/backend-limit.js';
import type { BalancerView } from '../../src/controller/balancer-controller.js';
import { vipStatus } from '../../src/controller/vip-status.js';

const b = (n: number, draining = false): BackendStatus =>
  ({ ip: `198.18.40.${n}`, weight: draining ? 0 : 1, pod: `web-${n}`, ...(draining ? { draining, drainingSince: '2026-11-24T12:00:00.000Z' } : {}) });

test('under the limit: everything, unchanged', () => {
  const all = [b(1), b(2)];
  assert.deepEqual(limitBackends(all, [], 2), { listed: all, unlisted: [] });
});

test('over the limit: the listed ones stay, draining included; new ones fill the room by address', () => {
  const previous = [b(5), b(7, true)];
  const all = [b(1), b(2), b(3), b(5), b(7, true)];
  const { listed, unlisted } = limitBackends(all, previous, 3);
  assert.deepEqual(listed, [b(1), b(5), b(7, true)], 'sorted by address, as resolution sorts');
  assert.deepEqual(unlisted, [b(2), b(3)]);
  // The next reconcile keeps the same three: no churn among flows already placed.
  assert.deepEqual(limitBackends(all, listed, 3).listed, listed);
});

test('the status counts every ready backend, lists the limit, and says so in BackendsAvailable', () => {
  const NOW = new Date('2026-11-24T12:00:00Z');
  const view: BalancerView = { exists: () => true, desiredAgents: () => 1, drainSeconds: () => 60, mayShareNodes: () => false };
  const pod = (n: number) => ({
    metadata: { name: `web-${n}`, namespace: 'shop', labels: { app: 'web' } },
    spec: { containers: [], nodeName: 'node-a' },
    status: { phase: 'Running', podIP: `198.18.40.${n}`, conditions: [{ type: 'Ready', status: 'True' }] },
  });
  const vip: LoadBalancerVip = {
    metadata: { name: 'web', namespace: 'shop', generation: 1 },
    spec: { address: '198.19.0.10', ports: [{ port: 80, protocol: 'TCP' }], backendSelector: { matchLabels: { app: 'web' } } },
  };
  const ALLOWED = { allowed: true, address: '198.19.0.10', pool: 'shop', code: 'InPool', message: 'in pool shop' } as const;
  const full = vipStatus({ address: ALLOWED, vip, pods: [1, 2, 3, 4].map(pod), balancers: view, now: NOW, maxBackends: 3 });
  assert.equal(full.status.readyBackends, 4);
  assert.equal(full.status.unlistedBackends, 1);
  assert.deepEqual(full.status.backends!.map((x) => x.pod), ['web-1', 'web-2', 'web-3']);
  const available = full.status.conditions!.find((c) => c.type === 'BackendsAvailable')!;
  assert.equal(available.status, 'True');
  assert.equal(available.reason, 'ListFull');
  assert.equal(available.message, '4 ready backend(s), 0 draining; 1 not in status.backends, which is full: they get no traffic until there is room');
  const roomy = vipStatus({ address: ALLOWED, vip, pods: [1, 2].map(pod), balancers: view, now: NOW, maxBackends: 3 });
  assert.equal(roomy.status.unlistedBackends, 0);
  assert.equal(roomy.status.conditions!.find((c) => c.type === 'BackendsAvailable')!.reason, 'ReadyPods');
});
