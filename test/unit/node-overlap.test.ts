import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { BALANCER_LABEL } from '../../src/api/agent-pod.js';
import { AgentNodes, nodeOverlapCondition, nodeSelectorsDisjoint } from '../../src/controller/node-overlap.js';

const agent = (name: string, balancer: string, node?: string): V1Pod => ({
  metadata: { name, namespace: 'xdplb-system', labels: { [BALANCER_LABEL]: balancer } },
  spec: { containers: [], nodeName: node },
});

describe('balancers sharing nodes', () => {
  test('nodeSelectors exclude each other only when they require one key with different values', () => {
    assert.ok(nodeSelectorsDisjoint({ pool: 'a' }, { pool: 'b' }));
    assert.ok(nodeSelectorsDisjoint({ pool: 'a', zone: 'x' }, { zone: 'y' }));
    assert.ok(!nodeSelectorsDisjoint({ pool: 'a' }, { pool: 'a' }), 'the same selector');
    assert.ok(!nodeSelectorsDisjoint({ pool: 'a' }, { zone: 'x' }), 'a node may carry both');
    assert.ok(!nodeSelectorsDisjoint({ 'node-role.kubernetes.io/edge': '' }, undefined), 'no selector: every node');
    assert.ok(!nodeSelectorsDisjoint(undefined, undefined));
    assert.ok(nodeSelectorsDisjoint({ role: '' }, { role: 'lb' }), 'an empty value is a value');
  });

  test('agent pods say which balancers share a node; moves and deletes are followed; a rolling update keeps the node', () => {
    const idx = new AgentNodes();
    assert.deepEqual([...idx.update(agent('d-1', 'default', 'n1'), false)], ['default']);
    idx.update(agent('d-2', 'default', 'n2'), false);
    idx.update(agent('e-0', 'edge'), false); // not scheduled yet
    assert.deepEqual(idx.sharedWith('edge'), new Map());
    assert.deepEqual([...idx.update(agent('e-0', 'edge', 'n2'), false)].sort(), ['default', 'edge'], 'both are told');
    idx.update(agent('e-1', 'edge', 'n1'), false);
    assert.deepEqual(idx.sharedWith('edge'), new Map([['default', ['n1', 'n2']]]));
    assert.deepEqual(idx.sharedWith('default'), new Map([['edge', ['n1', 'n2']]]));
    // A rolling update: the new pod of default on n2 comes before the old one is gone.
    idx.update(agent('d-2b', 'default', 'n2'), false);
    idx.update(agent('d-2', 'default', 'n2'), true);
    assert.deepEqual(idx.sharedWith('edge').get('default'), ['n1', 'n2']);
    assert.deepEqual([...idx.update(agent('e-0', 'edge', 'n2'), true)].sort(), ['default', 'edge']);
    idx.update(agent('e-1', 'edge', 'n1'), true);
    assert.deepEqual(idx.sharedWith('default'), new Map());
    assert.deepEqual(idx.sharedWith('edge'), new Map());
  });

  test('the NodeOverlap condition names the other balancers and a few nodes', () => {
    assert.equal(nodeOverlapCondition(new Map(), 2).status, 'False');
    const c = nodeOverlapCondition(new Map([['edge', ['n1', 'n2', 'n3', 'n4', 'n5']], ['lab', ['n9']]]), 2);
    assert.equal(c.status, 'True');
    assert.equal(c.reason, 'SharedNodes');
    assert.equal(c.observedGeneration, 2);
    assert.match(c.message!, /XdpBalancer "edge" on n1, n2, n3 and 2 more; XdpBalancer "lab" on n9/);
    assert.match(c.message!, /make the nodeSelectors exclude each other/);
  });
});
