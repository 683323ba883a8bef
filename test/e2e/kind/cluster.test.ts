/**
 * What only a real cluster shows, run by test/e2e/kind/run.sh after the
 * operator scenarios (never by a plain `npm test`: test/run.mjs leaves files
 * under e2e/kind/ out unless named): `kubectl drain` of a balancer worker under
 * traffic, and uninstalling, which must leave no XDP program and no pin on any
 * node. Environment as kind-env.ts, plus XDPLB_KIND_CLUSTER (the cluster's
 * name) and XDPLB_KIND_OVERLAY (the kustomization run.sh applied).
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { KindOperatorEnv } from '../operator/kind-env.js';
import { AGENT_NAMESPACE, waitFor } from '../operator/lab-env.js';
import { vipManifest } from '../invalid-vips.js';

const HTTP = 80;
const CLUSTER = process.env.XDPLB_KIND_CLUSTER ?? 'xdplb-e2e';
const OVERLAY = process.env.XDPLB_KIND_OVERLAY;
const AGENT_SELECTOR = 'app.kubernetes.io/name=xdplb-agent';
const DRAIN_TRAFFIC_MS = 30_000;
const UNINSTALL_WAIT = '180s';
/** The same, for waits the test polls. */
const UNINSTALL_WAIT_MS = 180_000;
const KERNEL_PINS = ['/sys/fs/bpf/progs.debug', '/sys/fs/bpf/maps.debug'];
const execFileAsync = promisify(execFile);

/** The kind node containers of the cluster, by name. */
function kindNodes(): string[] {
  return execFileSync('docker', ['ps', '--filter', `label=io.x-k8s.kind.cluster=${CLUSTER}`, '--format', '{{.Names}}'], { encoding: 'utf8' })
    .split('\n').filter(Boolean).sort();
}

function onNode(node: string, script: string): string {
  return execFileSync('docker', ['exec', node, 'sh', '-c', script], { encoding: 'utf8' }).trim();
}

describe('kind: what only a real cluster shows', () => {
  let env: KindOperatorEnv;
  const podsOn = (node: string) => env.kubectl(['get', 'pods', '-n', env.namespace, '--field-selector', `spec.nodeName=${node}`, '-o', 'jsonpath={.items[*].metadata.name}'])
    .split(' ').filter(Boolean);

  before(async () => {
    env = await KindOperatorEnv.up();
    for (const b of env.backendNames) await env.setBackend(b, 'ready');
    env.kubectl(['apply', '-f', '-'], vipManifest(`  address: ${env.vip4}\n  ports: [{port: ${HTTP}, targetPort: ${env.backendPort}}]\n  backendSelector: {matchLabels: {app: web}}`, 'web', env.namespace));
    await waitFor('every backend served', () => env.connect(env.vip4, HTTP, 300),
      (r) => r.failures === 0 && env.backendNames.every((b) => !!r.byReal[b]), 60_000, 500);
  });
  after(() => {
    for (const n of env?.nodes ?? []) execFileSync('kubectl', ['uncordon', n], { stdio: 'ignore' });
  });

  test('kubectl drain of a balancer worker under traffic: its agent stays, its backends leave, the rest serve', async (t) => {
    const node = env.nodes[0]!;
    const evicted = podsOn(node);
    t.diagnostic(`draining ${node}, which runs backends [${evicted.join(', ')}]`);
    const traffic = env.continuous(env.vip4, HTTP, DRAIN_TRAFFIC_MS);
    await sleep(2000);
    // DaemonSet pods stay (the agent keeps balancing); bare backend pods need --force.
    await execFileAsync('kubectl', ['drain', node, '--ignore-daemonsets', '--force', '--delete-emptydir-data', '--timeout=120s']);
    const c = await traffic;
    t.diagnostic(`during the drain: ${c.ok} connections served, ${c.failures} failed${c.failures ? ` (${[...new Set(c.errors)].slice(0, 5).join('; ')})` : ''}`);
    assert.ok(c.ok > 0, 'nothing was served during the drain');
    assert.deepEqual(podsOn(node), [], `pods left on the drained node ${node}`);
    const agent = env.kubectl(['get', 'pods', '-n', AGENT_NAMESPACE, '-l', AGENT_SELECTOR, '--field-selector', `spec.nodeName=${node}`,
      '-o', 'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}']);
    assert.equal(agent, 'True', `the agent on the drained node ${node} is still there and Ready`);
    const remaining = env.backendNames.filter((b) => !evicted.includes(b));
    assert.ok(remaining.length > 0, 'every backend was on the drained node');
    const r = await waitFor('only the remaining backends served', () => env.connect(env.vip4, HTTP, 200),
      (x) => x.failures === 0 && Object.keys(x.byReal).every((b) => remaining.includes(b)), 60_000, 500);
    assert.deepEqual(Object.keys(r.byReal).sort(), remaining.sort());
    execFileSync('kubectl', ['uncordon', node]);
  });

  test('a second XdpBalancer selecting the same nodes: the DaemonSet controller keeps it off them; the first one\'s agents are untouched', async () => {
    const agentUids = () => env.kubectl(['get', 'pods', '-n', AGENT_NAMESPACE, '-l', 'xdplb.dev/balancer=default', '-o', 'jsonpath={.items[*].metadata.uid}']);
    const before = agentUids();
    const dflt = JSON.parse(env.kubectl(['get', 'xdpbalancer', 'default', '-o', 'json'])) as { spec: Record<string, unknown> };
    env.kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'xdplb.dev/v1alpha1', kind: 'XdpBalancer', metadata: { name: 'second' },
      spec: { image: dflt.spec.image, nodeSelector: dflt.spec.nodeSelector, nic: dflt.spec.nic, bpfCapability: dflt.spec.bpfCapability },
    }));
    const excluded = () => env.kubectl(['get', 'xdpbalancer', 'second', '-o', 'jsonpath={.status.conditions[?(@.type=="NodesExcluded")].status}']);
    await waitFor('second says its nodes are default\'s', excluded, (x) => x === 'True');
    // The DaemonSet controller has seen the affinity and placed nothing.
    const ds = () => JSON.parse(env.kubectl(['get', 'ds', 'xdplb-agent-second', '-n', AGENT_NAMESPACE, '-o', 'json'])) as
      { metadata: { generation: number }; status?: { observedGeneration?: number; desiredNumberScheduled?: number } };
    await waitFor('second\'s DaemonSet observed, with no node to run on', ds,
      (d) => d.status?.observedGeneration === d.metadata.generation && d.status.desiredNumberScheduled === 0);
    assert.equal(env.kubectl(['get', 'pods', '-n', AGENT_NAMESPACE, '-l', 'xdplb.dev/balancer=second', '-o', 'name']), '');
    assert.equal(agentUids(), before, 'the first balancer\'s agents were not replaced');
    env.kubectl(['delete', 'xdpbalancer', 'second']);
    await waitFor('second\'s DaemonSet gone', () => env.kubectl(['get', 'ds', '-n', AGENT_NAMESPACE, '-o', 'name']), (x) => !x.includes('xdplb-agent-second'));
  });

  test('uninstall: kubectl delete -k deploy/ alone (everything at once) leaves no XDP program, pin or xdplb object', async () => {
    assert.ok(OVERLAY, 'XDPLB_KIND_OVERLAY names the kustomization run.sh applied');
    await env.down();
    const nodes = kindNodes();
    assert.equal(nodes.length, 3, `kind nodes: ${nodes}`);
    const attached = () => nodes.filter((n) => onNode(n, 'ip -d link show eth0').includes('prog/xdp'));
    assert.deepEqual(attached().sort(), [...env.nodes].sort(), 'before: the balancer workers run XDP on eth0');
    // The agents' RBAC, the CRDs and their namespace go together: each agent decides by what it can
    // still read, or else by the deletion its watches saw while it ran.
    env.kubectl(['delete', '-k', OVERLAY, '--ignore-not-found', '--wait', `--timeout=${UNINSTALL_WAIT}`]);
    const namespaceGone = () => {
      try {
        env.kubectl(['get', 'namespace', AGENT_NAMESPACE]);
        return false;
      } catch (err) {
        return /NotFound/.test(String((err as { stderr?: string }).stderr ?? err));
      }
    };
    await waitFor('the agents\' namespace gone (its pods stopped)', namespaceGone, (gone) => gone, UNINSTALL_WAIT_MS, 1000);
    assert.deepEqual(attached(), [], 'no node runs XDP on eth0');
    for (const n of nodes) {
      // progs.debug and maps.debug are the kernel's (every bpffs mount has them: CONFIG_BPF_PRELOAD).
      const left = onNode(n, 'find /sys/fs/bpf -mindepth 1 2>/dev/null').split('\n').filter((p) => p && !KERNEL_PINS.includes(p));
      assert.deepEqual(left, [], `${n}: nothing of ours in /sys/fs/bpf`);
    }
    assert.equal(env.kubectl(['get', 'crd', '-o', 'name']).split('\n').filter((c) => c.includes('xdplb')).join(','), '', 'no xdplb CRD');
    assert.match(env.kubectlError(['get', 'namespace', AGENT_NAMESPACE]), /NotFound/);
  });
});
