/**
 * A bad weight annotation is reported once per pod and value, not with every
 * later status change of its VIP. Pure bookkeeping: the Events themselves are
 * counted on a real API server in test/e2e/controller-edges.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BadWeightReports } from '../../src/controller/bad-weights.js';

test('each pod and value once; a fixed pod is forgotten; VIPs are apart', () => {
  const r = new BadWeightReports();
  const heavy = { pod: 'web-1', value: 'heavy' };
  assert.deepEqual(r.fresh('shop/web', [heavy]), [heavy]);
  assert.deepEqual(r.fresh('shop/web', [heavy]), [], 'the same annotation, a later reconcile: nothing new');
  assert.deepEqual(r.fresh('shop/other', [heavy]), [heavy], 'another VIP selecting the pod reports it on its own');
  const web2 = { pod: 'web-2', value: '-1' };
  assert.deepEqual(r.fresh('shop/web', [heavy, web2]), [web2]);
  const heavier = { pod: 'web-1', value: 'heavier' };
  assert.deepEqual(r.fresh('shop/web', [heavier, web2]), [heavier], 'a new value of the annotation is a new report');
  assert.deepEqual(r.fresh('shop/web', [web2]), [], 'web-1 fixed');
  assert.deepEqual(r.fresh('shop/web', [heavier, web2]), [heavier], 'broken again: reported again');
  r.forget('shop/web');
  assert.deepEqual(r.fresh('shop/web', [web2]), [web2]);
});
