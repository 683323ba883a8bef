import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Node, V1Taint } from '@kubernetes/client-node';
import type { XdpBalancer } from '../../src/api/xdpbalancer.js';
import { excludedNodes, excludeNodesAffinity, mayRunOn, nodesExcludedCondition } from '../../src/controller/balancer-placement.js';

const node = (name: string, labels: Record<string, string> = {}, taints: V1Taint[] = []): V1Node => ({
  metadata: { name, labels: { 'kubernetes.io/os': 'linux', ...labels } }, spec: { taints },
});
const balancer = (name: string, minute: number, spec: Partial<XdpBalancer['spec']> = {}): XdpBalancer => ({
  metadata: { name, creationTimestamp: new Date(Date.UTC(2026, 10, 30, 12, minute)) }, spec: { image: 'xdplb:1', ...spec },
});
const EDGE_TAINT = { key: 'node-role.kubernetes.io/edge', effect: 'NoSchedule' };

test('may run on: the nodeSelector (and Linux), every NoSchedule/NoExecute taint tolerated; daemon tolerations and PreferNoSchedule count as tolerated', () => {
  const edge = balancer('edge', 1, { nodeSelector: { 'node-role.kubernetes.io/edge': '' }, tolerations: [{ key: 'node-role.kubernetes.io/edge', operator: 'Exists', effect: 'NoSchedule' }] });
  const dflt = balancer('default', 0);
  const edgeNode = node('e1', { 'node-role.kubernetes.io/edge': '' }, [EDGE_TAINT]);
  assert.equal(mayRunOn(edge, edgeNode), true);
  assert.equal(mayRunOn(dflt, edgeNode), false, 'default does not tolerate the edge taint');
  assert.equal(mayRunOn(edge, node('w1')), false, 'not selected');
  assert.equal(mayRunOn(dflt, node('w1', {}, [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }, { key: 'x', effect: 'PreferNoSchedule' }])), true);
  assert.equal(mayRunOn(dflt, { metadata: { name: 'win', labels: { 'kubernetes.io/os': 'windows' } } }), false);
  const byValue = balancer('v', 2, { tolerations: [{ key: 'team', operator: 'Equal', value: 'a' }] });
  assert.equal(mayRunOn(byValue, node('t', {}, [{ key: 'team', value: 'a', effect: 'NoExecute' }])), true);
  assert.equal(mayRunOn(byValue, node('t', {}, [{ key: 'team', value: 'b', effect: 'NoExecute' }])), false);
});

test('the older balancer keeps a node both select; the newer is kept off it, told by whom; the edge example shares nothing', () => {
  const nodes = [node('w1', { pool: 'main' }), node('w2', { pool: 'main' }), node('e1', { 'node-role.kubernetes.io/edge': '' }, [EDGE_TAINT])];
  const dflt = balancer('default', 0);
  const second = balancer('second', 5, { nodeSelector: { pool: 'main' } });
  const edge = balancer('edge', 3, { nodeSelector: { 'node-role.kubernetes.io/edge': '' }, tolerations: [{ key: 'node-role.kubernetes.io/edge', operator: 'Exists', effect: 'NoSchedule' }] });
  const out = excludedNodes([second, edge, dflt], nodes);
  assert.deepEqual([...out].map(([b, lost]) => [b, [...lost]]), [['second', [['w1', 'default'], ['w2', 'default']]]]);
  // Same creation second: by name.
  const twin = balancer('aaa', 0, { nodeSelector: { pool: 'main' } });
  assert.deepEqual([...excludedNodes([dflt, twin], nodes).keys()], ['default']);
});

test('the affinity keeps the agents off the excluded nodes by name; the condition names them and their holder', () => {
  assert.equal(excludeNodesAffinity([]), undefined);
  assert.deepEqual(excludeNodesAffinity(['w2', 'w1']), {
    nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [
      { key: 'metadata.name', operator: 'NotIn', values: ['w1'] }, { key: 'metadata.name', operator: 'NotIn', values: ['w2'] },
    ] }] } },
  });
  const c = nodesExcludedCondition(new Map([['w2', 'default'], ['w1', 'default'], ['w3', 'old'], ['w4', 'default'], ['w5', 'default']]), 4);
  assert.equal(c.status, 'True');
  assert.equal(c.reason, 'OlderBalancer');
  assert.match(c.message, /^5 node\(s\) it selects belong to an older balancer that selects them too \(w1, w2, w4 and 1 more to XdpBalancer "default"; w3 to XdpBalancer "old"\)/);
  assert.equal(nodesExcludedCondition(undefined, 4).status, 'False');
});
