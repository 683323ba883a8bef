import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { AgentViews, READ_CONDITIONS, UNREAD_STATUS } from '../../src/agent/sources/agent-view.js';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

/** A VIP as the controller leaves it once resolved and confirmed on one of two nodes. */
function vip(): LoadBalancerVip {
  return {
    metadata: { name: 'web', namespace: 'shop', uid: 'u1', generation: 1, resourceVersion: '10', creationTimestamp: new Date('2026-12-01T00:00:00Z') },
    spec: { address: '198.19.0.10', ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }] },
    status: {
      observedGeneration: 1,
      address: '198.19.0.10',
      addressPool: 'public',
      ports: '80->8080/TCP',
      readyBackends: 2,
      programmedNodes: '1/2',
      conditions: [
        { type: 'AddressAllowed', status: 'True', reason: 'InPool', message: '', lastTransitionTime: new Date('2026-12-01T00:00:01Z') },
        { type: 'Programmed', status: 'False', reason: 'Pending', message: '1 of 2 nodes', lastTransitionTime: new Date('2026-12-01T00:00:01Z') },
        { type: 'Ready', status: 'False', reason: 'Pending', message: '', lastTransitionTime: new Date('2026-12-01T00:00:01Z') },
      ],
      backends: [{ ip: '198.18.1.1', pod: 'web-1', weight: 1 }, { ip: '198.18.1.2', pod: 'web-2', weight: 1 }],
      backendsRevision: 'r1',
    },
  } as LoadBalancerVip;
}

/** A copy of `v` changed by `edit`, with the next resourceVersion, as the watch delivers it. */
function updated(v: LoadBalancerVip, edit: (x: LoadBalancerVip) => void): LoadBalancerVip {
  const x = JSON.parse(JSON.stringify(v)) as LoadBalancerVip;
  x.metadata.resourceVersion = String(Number(x.metadata.resourceVersion) + 1);
  edit(x);
  return x;
}

describe('agent view: which VIP updates need an agent sync', () => {
  test('the controller confirming a change (programmedNodes, Programmed, Ready, a new resourceVersion) needs none', () => {
    const views = new AgentViews();
    const v = vip();
    assert.equal(views.changed(v, 'add'), true, 'a VIP first seen');
    const confirmed = updated(v, (x) => {
      x.status!.programmedNodes = '2/2';
      x.status!.observedGeneration = 1;
      x.status!.conditions = x.status!.conditions!.map((c) => (c.type === 'AddressAllowed' ? c
        : { ...c, status: 'True', reason: 'Programmed', message: '2 of 2 nodes', lastTransitionTime: new Date('2026-12-01T00:00:09Z') }));
    });
    assert.equal(views.changed(confirmed, 'update'), false);
    assert.equal(views.changed(updated(confirmed, (x) => { x.status!.readyBackends = 1; x.status!.healthCheck = { probed: true }; }), 'update'), false);
    // AddressAllowed's reason and time are for people; its status is what agents act on.
    assert.equal(views.changed(updated(confirmed, (x) => { x.status!.conditions![0]!.message = 'now in pool public-2'; }), 'update'), false);
  });

  const edits: [string, (x: LoadBalancerVip) => void][] = [
    ['a backend goes NotReady (backends and their revision)', (x) => { x.status!.backends![1]!.draining = true; x.status!.backendsRevision = 'r2'; }],
    ['a backend judged unhealthy', (x) => { x.status!.backends![0]!.healthy = false; }],
    ['the address is no longer allowed', (x) => { x.status!.conditions![0]!.status = 'False'; }],
    ['a conflict', (x) => { x.status!.conditions!.push({ type: 'Conflict', status: 'True', reason: 'AddressInUse', message: '', lastTransitionTime: new Date() }); }],
    ['a spec edit (new generation)', (x) => { x.spec.ports.push({ port: 443, protocol: 'TCP' }); x.metadata.generation = 2; }],
    ['the L2 node moves', (x) => { x.status!.l2 = { node: 'worker-2', since: '2026-12-01T00:00:05Z' }; }],
    ['another status address', (x) => { x.status!.address = '198.19.0.11'; }],
    ['the addressing of its balancer', (x) => { x.status!.addressing = 'Node'; }],
    ['being deleted', (x) => { x.metadata.deletionTimestamp = new Date(); }],
  ];
  for (const [what, edit] of edits) {
    test(`${what}: a sync`, () => {
      const views = new AgentViews();
      const v = vip();
      views.changed(v, 'add');
      assert.equal(views.changed(updated(v, edit), 'update'), true);
    });
  }

  test('deleted, then created again as it was: a sync each time; the deleted one is forgotten', () => {
    const views = new AgentViews();
    views.changed(vip(), 'add');
    assert.equal(views.changed(vip(), 'delete'), true);
    assert.equal(views.size, 0);
    assert.equal(views.changed(vip(), 'add'), true);
  });

  test('no agent code reads a status field the view leaves out (of the conditions, only AddressAllowed and Conflict)', () => {
    const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
    // The agent's code and the API helpers it shares with the controller, comments aside. loadbalancervip.ts
    // declares every field, so there only status.X counts.
    const lines = (f: string) => readFileSync(f, 'utf8').split('\n').filter((l) => !/^\s*(\*|\/\/|\/\*)/.test(l)).map((l) => ({ f, l: l.replace(/\/\/.*$/, '') }));
    const code = [...files(join(SRC, 'agent')), join(SRC, 'api/programmed-reals.ts')].filter((f) => !f.endsWith('agent-view.ts')).flatMap(lines);
    const shared = lines(join(SRC, 'api/loadbalancervip.ts'));
    const readers = (re: RegExp, where = code) => where.filter(({ l }) => re.test(l)).map(({ f, l }) => `${f}: ${l.trim()}`);
    for (const field of UNREAD_STATUS.filter((f) => f !== 'conditions')) {
      // Names no spec or other object uses are searched everywhere (destructuring, aliases); the others as status.X.
      const unique = !['ports', 'nodes', 'healthCheck'].includes(field);
      const asStatus = new RegExp(`status\\??\\.${field}\\b`);
      assert.deepEqual([...readers(unique ? new RegExp(`\\b${field}\\b`) : asStatus), ...readers(asStatus, shared)], [],
        `status.${field} is read by agent code: take it out of UNREAD_STATUS`);
    }
    const conditionTypes = new Set(code.flatMap(({ l }) => [...l.matchAll(/ConditionType\.(\w+)/g)].map((m) => m[1]!)));
    assert.ok(conditionTypes.size > 0, 'the agent reads conditions by ConditionType');
    assert.deepEqual([...conditionTypes].filter((c) => !READ_CONDITIONS.has(c)), [], 'a condition agents read: add it to READ_CONDITIONS');
    assert.deepEqual(readers(/'(Programmed|Ready|BackendsAvailable)'/), [], 'conditions named by string');
  });
});
