import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { PodIndex, VipIndex } from '../../src/controller/indexes.js';

const pod = (name: string, labels: Record<string, string>, ns = 'shop'): V1Pod => ({ metadata: { name, namespace: ns, labels } });
const vip = (name: string, selector: LoadBalancerVip['spec']['backendSelector'], backends: string[] = []): LoadBalancerVip => ({
  metadata: { name, namespace: 'shop' },
  spec: { address: '198.19.0.10', ports: [{ port: 80, protocol: 'TCP' }], backendSelector: selector },
  status: { backends: backends.map((p, i) => ({ ip: `198.18.40.${i + 1}`, weight: 1, pod: p })) },
});
const names = (pods: Iterable<V1Pod>) => [...pods].map((p) => p.metadata!.name).sort();

test('pod candidates: the rarest required label of the selector, in the namespace, following label changes', () => {
  const idx = new PodIndex();
  idx.update(pod('web-1', { app: 'web', tier: 'front' }), false);
  idx.update(pod('web-2', { app: 'web', tier: 'back' }), false);
  idx.update(pod('db-1', { app: 'db', tier: 'back' }), false);
  idx.update(pod('web-x', { app: 'web', tier: 'front' }, 'other'), false);
  assert.deepEqual(names(idx.candidates('shop', { matchLabels: { app: 'web', tier: 'front' } })), ['web-1']);
  assert.deepEqual(names(idx.candidates('shop', { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'db'] }] })), ['db-1', 'web-1', 'web-2']);
  // Nothing to narrow by: the whole namespace.
  assert.deepEqual(names(idx.candidates('shop', { matchExpressions: [{ key: 'app', operator: 'Exists' }] })), ['db-1', 'web-1', 'web-2']);
  idx.update(pod('web-1', { app: 'web', tier: 'back' }), false); // relabelled
  assert.deepEqual(names(idx.candidates('shop', { matchLabels: { tier: 'front' } })), []);
  idx.update(pod('web-2', {}), true);
  assert.deepEqual(names(idx.candidates('shop', { matchLabels: { app: 'web' } })), ['web-1']);
});

test('VIP candidates of a pod: those whose selector may match it, and those that list it', () => {
  const idx = new VipIndex();
  idx.update(vip('web', { matchLabels: { app: 'web' } }), false);
  idx.update(vip('db', { matchLabels: { app: 'db' } }, ['old-web']), false);
  idx.update(vip('wide', { matchExpressions: [{ key: 'canary', operator: 'DoesNotExist' }] }), false);
  idx.update(vip('either', { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] }), false);
  const keys = (p: V1Pod) => [...idx.candidates(p)].sort();
  assert.deepEqual(keys(pod('web-1', { app: 'web' })), ['shop/either', 'shop/web', 'shop/wide']);
  assert.deepEqual(keys(pod('old-web', { app: 'web' })), ['shop/db', 'shop/either', 'shop/web', 'shop/wide']);
  assert.deepEqual(keys(pod('web-1', { app: 'web' }, 'other')), []);
  idx.update(vip('web', { matchLabels: { app: 'web' } }), true);
  idx.update(vip('db', { matchLabels: { app: 'db' } }, []), false); // the backend left
  assert.deepEqual(keys(pod('old-web', { app: 'web' })), ['shop/either', 'shop/wide']);
});
