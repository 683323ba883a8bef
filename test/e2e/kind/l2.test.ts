/**
 * L2 mode on a real cluster, run by test/e2e/kind/run.sh after the BGP
 * scenario and before test/e2e/kind/cluster.test.ts. The VIP is an address of
 * the kind network itself, so the client container (on that network) finds
 * it by ARP, as a host on a flat LAN would: the worker the controller names
 * in status.l2.node answers from its XDP program, through the host-side veth
 * run.sh gave an XDP program. Deleting that worker's agent pod (SIGTERM, a
 * restart under a real kubelet) hands the VIP over to the other worker,
 * which announces it by gratuitous ARP, while the client keeps connecting.
 *
 * It leaves things as it found them: spec.l2 removed (the agents roll back),
 * its VIP and pool gone. Environment as cluster.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { LoadBalancerVip } from '../../../src/api/loadbalancervip.js';
import { KindOperatorEnv } from '../operator/kind-env.js';
import { AGENT_NAMESPACE, waitFor } from '../operator/lab-env.js';
import { vipManifest } from '../invalid-vips.js';
import { poolManifest } from '../pool-manifests.js';
import { sample } from '../../support/prometheus.js';

const HTTP = 80;
const CLIENT = process.env.XDPLB_E2E_CLIENT ?? 'xdplb-e2e-client';
const AGENT_SELECTOR = 'app.kubernetes.io/name=xdplb-agent';
const AGENT_DS = 'ds/xdplb-agent-default';
/** The VIP: an address of the kind network (run.sh's 198.19.128.0/24) the backends serve too (kind-env's l2Vip). */
const L2_VIP = { name: 'web-l2', pool: 'xdplb-e2e-l2', prefixLength: 29 };
const LEASE_SECONDS = 5;
const ROLL_WAIT = '300s';
const WAIT_MS = 120_000;
const TRAFFIC_MS = 15_000;

function onClient(args: string[]): string {
  return execFileSync('docker', ['exec', CLIENT, ...args], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }).trim();
}

/** The MAC of a kind node container on the kind network: its eth0, where the balancer's program is. */
function nodeMac(node: string): string {
  return execFileSync('docker', ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}', node], { encoding: 'utf8' }).trim();
}

describe('kind: L2 mode, the VIP on the nodes\' own network', () => {
  let env: KindOperatorEnv;
  const l2Node = () => (JSON.parse(env.kubectl(['get', 'lbvip', L2_VIP.name, '-n', env.namespace, '-o', 'json'])) as LoadBalancerVip).status?.l2?.node;
  const clientNeighbor = () => (JSON.parse(onClient(['ip', '-j', 'neigh', 'show', 'to', env.l2Vip]) || '[]') as { lladdr?: string }[])[0]?.lladdr ?? null;
  const template = () => env.kubectl(['get', AGENT_DS, '-n', AGENT_NAMESPACE, '-o', 'jsonpath={.spec.template.spec.containers[0].args}']);
  const rollout = () => env.kubectl(['rollout', 'status', '-n', AGENT_NAMESPACE, AGENT_DS, `--timeout=${ROLL_WAIT}`]);

  before(async () => {
    env = await KindOperatorEnv.up();
    for (const b of env.backendNames) await env.setBackend(b, 'ready');
    env.kubectl(['apply', '-f', '-'], poolManifest(L2_VIP.pool, [`${env.l2Vip}/${L2_VIP.prefixLength}`], { matchLabels: { 'kubernetes.io/metadata.name': env.namespace } }));
  });

  after(async () => {
    const quiet = (f: () => unknown) => { try { f(); } catch { /* best effort */ } };
    quiet(() => env.kubectl(['delete', 'lbvip', L2_VIP.name, '-n', env.namespace, '--ignore-not-found']));
    quiet(() => env.kubectl(['patch', 'xdpbalancer', 'default', '--type=json', '-p', '[{"op": "remove", "path": "/spec/l2"}]']));
    await waitFor('the agents without --l2-lease-seconds', template, (a) => !a.includes('--l2-lease-seconds')).catch(() => undefined);
    quiet(() => rollout());
    quiet(() => env.kubectl(['delete', 'xdpaddresspool', L2_VIP.pool, '--ignore-not-found']));
    await env?.down();
  });

  test('spec.l2: the agents roll with a Lease each; the VIP gets one node; the client resolves it to that node and is served', async (t) => {
    env.kubectl(['patch', 'xdpbalancer', 'default', '--type=merge', '-p', JSON.stringify({ spec: { l2: { leaseSeconds: LEASE_SECONDS } } })]);
    await waitFor('--l2-lease-seconds in the agent DaemonSet', template, (a) => a.includes('--l2-lease-seconds'));
    rollout();
    const leases = await waitFor('a Lease per balancer worker', () => env.kubectl(['get', 'leases', '-n', AGENT_NAMESPACE, '-l', 'xdplb.dev/l2-balancer=default',
      '-o', 'jsonpath={.items[*].spec.holderIdentity}']).split(' ').filter(Boolean).sort(), (h) => h.length === env.nodes.length, WAIT_MS, 1000);
    assert.deepEqual(leases, [...env.nodes].sort());
    env.kubectl(['apply', '-f', '-'], vipManifest(`  address: ${env.l2Vip}\n  ports: [{port: ${HTTP}, targetPort: ${env.backendPort}}]\n  backendSelector: {matchLabels: {app: web}}`, L2_VIP.name, env.namespace));
    const node = await waitFor('status.l2.node', l2Node, (n) => !!n && env.nodes.includes(n), WAIT_MS, 500);
    t.diagnostic(`kubectl get lbvip -o wide:\n${env.kubectl(['get', 'lbvip', L2_VIP.name, '-n', env.namespace, '-o', 'wide']).trimEnd()}`);
    const r = await waitFor('every backend served on-link', () => env.connect(env.l2Vip, HTTP, 300),
      (x) => x.failures === 0 && env.backendNames.every((b) => !!x.byReal[b]), WAIT_MS, 500);
    t.diagnostic(`300 connections: ${JSON.stringify(r.byReal)}; client: ${onClient(['ip', 'neigh', 'show', 'to', env.l2Vip])}`);
    assert.equal(clientNeighbor(), nodeMac(node!), `the client resolved ${env.l2Vip} to ${node}'s MAC`);
    for (const n of env.nodes) {
      const answered = sample(await env.agentMetrics(n), 'xdplb_l2_addresses_answered');
      assert.equal(answered, n === node ? 1 : 0, `${n} answers ARP for ${answered} address(es)`);
    }
  });

  test('the announcing worker\'s agent pod deleted: the other worker takes the VIP over and announces it; the client is served throughout', async (t) => {
    const from = l2Node()!;
    const to = env.nodes.find((n) => n !== from)!;
    const pod = JSON.parse(env.kubectl(['get', 'pods', '-n', AGENT_NAMESPACE, '-l', AGENT_SELECTOR, '--field-selector', `spec.nodeName=${from}`, '-o', 'json'])).items[0].metadata.name as string;
    const traffic = env.continuous(env.l2Vip, HTTP, TRAFFIC_MS);
    await new Promise((r) => setTimeout(r, 2000));
    const t0 = Date.now();
    env.kubectl(['delete', 'pod', '-n', AGENT_NAMESPACE, pod, '--wait=false']);
    await waitFor(`status.l2.node moved to ${to}`, l2Node, (n) => n === to, WAIT_MS, 100);
    const statusMs = Date.now() - t0;
    await waitFor(`the client's neighbor entry moved to ${to}`, clientNeighbor, (mac) => mac === nodeMac(to), WAIT_MS, 100);
    const clientMs = Date.now() - t0;
    const c = await traffic;
    t.diagnostic(`takeover ${from} -> ${to}: status after ${statusMs} ms, client's neighbor entry after ${clientMs} ms (polled); ${c.ok} connections ok, ${c.failures} failed`);
    assert.equal(c.failures, 0, c.errors.join(', '));
    assert.ok(sample(await env.agentMetrics(to), 'xdplb_l2_announcements_total') >= 1, `${to} announced the address`);
    rollout();
    assert.equal(l2Node(), to, 'the restarted worker does not take it back');
    const r = await env.connect(env.l2Vip, HTTP, 100);
    assert.equal(r.failures, 0, r.errors.join(', '));
  });
});
