/**
 * How a stopping agent tells an uninstall from a restart, against a real
 * kube-apiserver, as the agent's service account with deploy/'s RBAC: the
 * GET of its XdpBalancer says present (stay), being deleted, deleted or its
 * CRD gone (detach); with the balancer present, its DaemonSet and this node
 * say whether an agent will run here again (stay) or not (detach); an API
 * that cannot answer says nothing (stay, and warn with the cleanup command).
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { backendRemoval, type ExitDecision, exitDecision } from '../../src/agent/sources/uninstall.js';
import { RemovalWatch } from '../../src/agent/sources/removal-watch.js';
import { freePort, type TestServiceAccount } from './control-plane/control-plane.js';
import { controlPlaneFixture } from './control-plane/fixture.js';
import { waitUntil } from './control-plane/objects.js';

const AT = { nic: 'eth0', pinDir: '/sys/fs/bpf/xdplb/edge' };
const CLEANUP = 'xdplb-agent cleanup --nic eth0 --pin-dir /sys/fs/bpf/xdplb/edge';
const FINALIZER = 'test.xdplb.dev/hold';
/** The agent's 3 s is plenty for one GET, but a loaded test machine should not fail on it; the timeout has its own test. */
const GET_TIMEOUT_MS = 20_000;
/** The CRD's handler may serve for a moment after the object is gone. */
const CRD_GONE_WAIT_MS = 30_000;
const AGENT_RBAC = fileURLToPath(new URL('../../../deploy/rbac-agent.yaml', import.meta.url));

describe('the agent on SIGTERM: uninstall or restart, by its XdpBalancer', () => {
  const f = controlPlaneFixture((cp) => {
    cp.kubectl(['create', 'namespace', 'xdplb-system']);
    cp.kubectl(['apply', '-f', AGENT_RBAC]);
  });
  const kubectl = (args: string[], input?: string) => f.cp.kubectl(args, input);
  const kubeAs = (who: TestServiceAccount) => {
    const kc = new KubeConfig();
    kc.loadFromFile(f.cp.kubeconfigAs(who));
    return kc;
  };
  const agent = () => kubeAs('xdplb-system/xdplb-agent');
  const balancer = (name: string, finalizers: string[] = []) => kubectl(['apply', '-f', '-'],
    `apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: ${name}, finalizers: ${JSON.stringify(finalizers)}}\nspec: {image: registry.example/xdplb:1}\n`);
  /** A kubeconfig for an API server at 127.0.0.1:port. */
  const kubeAt = (port: number) => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 'none' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return kc;
  };
  const assertStays = (d: ExitDecision, named: string) => {
    assert.equal(d.detach, false, d.message);
    assert.equal(d.level, 'warn', d.message);
    assert.ok(d.message.includes(named), `${named}: ${d.message}`);
    assert.ok(d.message.includes(CLEANUP), d.message);
  };

  test('present: stay attached (the agent may read its balancer)', async (t) => {
    if (!f.need(t)) return;
    balancer('edge');
    const d = await exitDecision(agent(), 'edge', AT, undefined, GET_TIMEOUT_MS);
    assert.deepEqual([d.detach, d.level], [false, 'info'], d.message);
  });

  test('being deleted (held by a finalizer), then deleted: detach', async (t) => {
    if (!f.need(t)) return;
    balancer('held', [FINALIZER]);
    kubectl(['delete', 'xdpbalancer', 'held', '--wait=false']);
    assert.ok(JSON.parse(kubectl(['get', 'xdpbalancer', 'held', '-o', 'json'])).metadata.deletionTimestamp);
    let d = await exitDecision(agent(), 'held', AT, undefined, GET_TIMEOUT_MS);
    assert.equal(d.detach, true, d.message);
    assert.match(d.message, /XdpBalancer held is being deleted/);

    kubectl(['patch', 'xdpbalancer', 'held', '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    kubectl(['wait', '--for=delete', 'xdpbalancer/held', '--timeout=30s']);
    d = await exitDecision(agent(), 'held', AT, undefined, GET_TIMEOUT_MS);
    assert.equal(d.detach, true, d.message);
    assert.match(d.message, /XdpBalancer held is gone/);
  });

  test('forbidden (403): stay attached, warn with the cleanup command', async (t) => {
    if (!f.need(t)) return;
    assertStays(await exitDecision(kubeAs('bob'), 'edge', AT, undefined, GET_TIMEOUT_MS), 'HTTP 403');
  });

  test('connection refused: stay attached, warn', async (t) => {
    if (!f.need(t)) return;
    assertStays(await exitDecision(kubeAt(await freePort()), 'edge', AT, undefined, GET_TIMEOUT_MS), 'ECONNREFUSED');
  });

  test('an API server that never answers: the GET gives up, stay attached, warn', async (t) => {
    if (!f.need(t)) return;
    const held = new Set<Socket>();
    const silent: Server = createServer((s) => held.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as { port: number }).port;
      assertStays(await exitDecision(kubeAt(port), 'edge', AT, undefined, 500), 'no answer within 500 ms');
    } finally {
      for (const s of held) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  test('the balancer exists: stay while its DaemonSet still wants this node; detach when the node no longer fits it or the DaemonSet goes', async (t) => {
    if (!f.need(t)) return;
    balancer('placed');
    const WHERE = { node: 'node-p', namespace: 'xdplb-system' };
    kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-p', labels: { 'kubernetes.io/os': 'linux', pool: 'main' } } }));
    const daemonSet = (podSpec: Record<string, unknown>) => kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'xdplb-agent-placed', namespace: 'xdplb-system' },
      spec: {
        selector: { matchLabels: { app: 'agent' } },
        template: { metadata: { labels: { app: 'agent' } }, spec: { containers: [{ name: 'agent', image: 'none' }], ...podSpec } },
      },
    }));
    const decide = () => exitDecision(agent(), 'placed', AT, WHERE, GET_TIMEOUT_MS);
    daemonSet({ nodeSelector: { 'kubernetes.io/os': 'linux', pool: 'main' } });
    let d = await decide();
    assert.equal(d.detach, false, d.message);
    assert.match(d.message, /XdpBalancer placed exists: staying attached for the next agent/);
    // The balancer's nodeSelector moves elsewhere.
    daemonSet({ nodeSelector: { pool: 'edge' } });
    d = await decide();
    assert.equal(d.detach, true, d.message);
    assert.match(d.message, /^node node-p no longer fits DaemonSet xdplb-agent-placed \(nodeSelector, node affinity or taints\)/);
    // The controller keeps it off this node for an older balancer.
    daemonSet({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['node-p'] }] }] } } } });
    assert.equal((await decide()).detach, true);
    // A taint it does not tolerate; the DaemonSet controller's own tolerations do not count against it.
    daemonSet({});
    kubectl(['taint', 'node', 'node-p', 'node.kubernetes.io/unschedulable=:NoSchedule']);
    assert.equal((await decide()).detach, false, 'daemon pods tolerate unschedulable (a cordon)');
    kubectl(['taint', 'node', 'node-p', 'dedicated=db:NoExecute']);
    assert.equal((await decide()).detach, true);
    // The DaemonSet gone.
    kubectl(['delete', 'ds', 'xdplb-agent-placed', '-n', 'xdplb-system']);
    d = await decide();
    assert.equal(d.detach, true, d.message);
    assert.match(d.message, /^DaemonSet xdplb-agent-placed is gone/);
    kubectl(['delete', 'node', 'node-p']);
    kubectl(['delete', 'xdpbalancer', 'placed']);
  });

  test('everything deleted at once: the DaemonSet goes, then the agent\'s RBAC before it asks; what its watch saw decides: detach', async (t) => {
    if (!f.need(t)) return;
    balancer('racing');
    kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'xdplb-agent-racing', namespace: 'xdplb-system' },
      spec: { selector: { matchLabels: { app: 'racing' } }, template: { metadata: { labels: { app: 'racing' } }, spec: { containers: [{ name: 'agent', image: 'none' }] } } },
    }));
    const WHERE = { node: 'node-r', namespace: 'xdplb-system' };
    const watch = new RemovalWatch(agent(), 'racing', WHERE.namespace);
    try {
      await watch.start();
      assert.equal(watch.seen(), null, 'nothing going yet');
      kubectl(['delete', 'ds', 'xdplb-agent-racing', '-n', 'xdplb-system']);
      await waitUntil('the watch saw the DaemonSet deleted', () => watch.seen(), (x) => x !== null);
      kubectl(['delete', '-f', AGENT_RBAC]);
      const d = await waitUntil('the agent\'s GETs refused', () => exitDecision(agent(), 'racing', AT, WHERE, GET_TIMEOUT_MS, () => watch.seen()),
        (x) => x.detach || x.level === 'warn', CRD_GONE_WAIT_MS);
      assert.equal(d.detach, true, d.message);
      assert.match(d.message, /^could not read .*\(HTTP (401|403)\), but DaemonSet xdplb-agent-racing was deleted while this agent ran: detaching and unpinning$/);
      // Without what the watch saw, the same refusal leaves it attached, as before.
      assert.equal((await exitDecision(agent(), 'racing', AT, WHERE, GET_TIMEOUT_MS)).detach, false);
    } finally {
      await watch.stop();
      kubectl(['apply', '-f', AGENT_RBAC]);
      kubectl(['delete', 'xdpbalancer', 'racing', '--ignore-not-found']);
    }
  });

  test('the backend agent on stop: its DaemonSet read, present (stay), being deleted or gone (detach) even when no watch saw it; unreadable: what the watch saw', async (t) => {
    if (!f.need(t)) return;
    const NS = 'xdplb-system';
    const DS = 'xdplb-backend-test';
    kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: DS, namespace: NS, finalizers: [FINALIZER] },
      spec: { selector: { matchLabels: { app: DS } }, template: { metadata: { labels: { app: DS } }, spec: { containers: [{ name: 'backend', image: 'none' }] } } },
    }));
    const watchSawIt = { seen: () => null, sawExist: () => true };
    try {
      assert.equal(await backendRemoval(agent(), NS, DS, watchSawIt, GET_TIMEOUT_MS), null, 'present: a restart');
      kubectl(['delete', 'ds', DS, '-n', NS, '--wait=false']);
      assert.equal(await backendRemoval(agent(), NS, DS, watchSawIt, GET_TIMEOUT_MS), `DaemonSet ${DS} is being deleted`);
      kubectl(['patch', 'ds', DS, '-n', NS, '--type=json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
      const gone = await waitUntil('the DaemonSet gone', () => backendRemoval(agent(), NS, DS, watchSawIt, GET_TIMEOUT_MS), (x) => x === `DaemonSet ${DS} is gone`);
      assert.equal(gone, `DaemonSet ${DS} is gone`, 'a deletion no watch saw still detaches');
      // Never seen while the agent ran (deployed under another name): not found is no removal.
      assert.equal(await backendRemoval(agent(), NS, DS, { seen: () => null, sawExist: () => false }, GET_TIMEOUT_MS), null);
      // Forbidden: what the watch saw decides, either way.
      assert.equal(await backendRemoval(kubeAs('bob'), NS, DS, watchSawIt, GET_TIMEOUT_MS), null);
      assert.equal(await backendRemoval(kubeAs('bob'), NS, DS, { seen: () => `DaemonSet ${DS} was deleted`, sawExist: () => true }, GET_TIMEOUT_MS),
        `DaemonSet ${DS} was deleted`);
    } finally {
      if (kubectl(['get', 'ds', DS, '-n', NS, '--ignore-not-found', '-o', 'name']).trim()) {
        kubectl(['patch', 'ds', DS, '-n', NS, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
        kubectl(['delete', 'ds', DS, '-n', NS, '--ignore-not-found', '--wait=false']);
      }
    }
  });

  test('the XdpBalancer CRD gone: detach', async (t) => {
    if (!f.need(t)) return;
    kubectl(['delete', 'crd', 'xdpbalancers.xdplb.dev', '--wait=true', '--timeout=60s']);
    // The CRD's handler may serve for a moment after the object is gone: wait for the 404, however long it takes.
    const d = await waitUntil('the agent sees the CRD gone', () => exitDecision(agent(), 'edge', AT, undefined, GET_TIMEOUT_MS), (x) => x.detach, CRD_GONE_WAIT_MS);
    assert.equal(d.detach, true, d.message);
    assert.match(d.message, /XdpBalancer edge is gone/);
  });
});
