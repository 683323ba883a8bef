/**
 * `xdplb-agent --mode backend` against a real kube-apiserver and a real
 * kernel: the controller (in-process) resolves a LoadBalancerVip with
 * delivery Node, port 80 -> targetPort 8080, to a pod on node-a; the backend
 * agent runs as a process in a "node" network namespace (nsenter) as node-a, with
 * deploy/backend.yaml's service account and RBAC, and reaches the API server
 * through a relay (the node namespace has no route to the host's loopback).
 * As deployed, its /metrics answers only a token allowed "get /metrics": the
 * test scrapes with the Prometheus service account's (deploy/prometheus/rbac.yaml).
 * A "client" namespace, standing in for the balancer, sends a tunnelled SYN
 * for VIP:80 to the pod: the unmodified pod, listening on 8080 only, must
 * answer from VIP:80. Deleting the VIP drains its entries, then removes them.
 * The agent stops on SIGTERM leaving its pins; `cleanup` removes them; an
 * agent that saw its DaemonSet deleted (an uninstall) removes them itself.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { removeBackend } from '../../src/agent/backend/backend-agent.js';
import { Controller } from '../../src/controller/controller.js';
import { parseIp } from '../../src/lib/ip.js';
import { onExitOrSignal } from '../support/cleanup.js';
import { ensureBpffs, requireKernel } from '../support/kernel.js';
import { removeNetns, TestNetns } from '../support/netns.js';
import { ETH_HLEN, innerFlow } from '../support/packets.js';
import { startPodServer, tunnelledSynReply, waitForExit, waitForOutput } from '../support/tunnel-capture.js';
import { controlPlaneFixture } from './control-plane/fixture.js';
import { applyPod, getVip, kubeConfigFrom, waitUntil } from './control-plane/objects.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const AGENT = join(REPO, 'dist/src/agent/main.js');
const BACKEND_MANIFEST = join(REPO, 'deploy/backend.yaml');
const METRICS_READER = join(REPO, 'deploy/prometheus/rbac.yaml');
const AGENT_NS = 'xdplb-system';
const NS = 'shop';
/** applyPod puts pods on node-a: the backend agent runs as that node. */
const NODE_NAME = 'node-a';
const PIN_DIR = `/sys/fs/bpf/xdplb-backend-e2e-${process.pid}`;
const CLIENT_NS = `xdplb-bmc-${process.pid}`;
const NODE_NS = `xdplb-bmn-${process.pid}`;
const POD_NS = `xdplb-bmp-${process.pid}`;
const HOST_VETH = 'hv1';
const POD_NIC = 'eth0';
const NIC = { client: 'c0', node: 'n0' } as const;
const MAC = { client: '02:00:00:00:74:01', node: '02:00:00:00:74:02' };
const CLIENT = '198.18.74.1';
const NODE = '198.18.74.2';
const GATEWAY = '198.18.75.1';
const POD = '198.18.75.11';
const POD_NET = '198.18.75.0/24';
/** In the e2e pools' range (OPEN_POOL). */
const VIP = '198.19.7.10';
const VIP_NET = '198.19.7.0/24';
const VIP_PORT = 80;
const TARGET_PORT = 8080;
const METRICS = '127.0.0.1:19643';
/** Long enough to see the drain begin before it ends, even on a loaded machine (only the order is checked). */
const DRAIN_SECONDS = 20;
const DRAIN_WAIT_MS = 60_000 + DRAIN_SECONDS * 1000;

/** A TCP relay script: listen on `from`, connect each connection to `to` (each a port on 127.0.0.1 or a unix socket path). */
const relayScript = (from: string | number, to: string | number) => `
const net = require('net');
const target = ${JSON.stringify(to)};
net.createServer((c) => {
  const u = typeof target === 'number' ? net.connect(target, '127.0.0.1') : net.connect(target);
  c.pipe(u).pipe(c);
  u.on('error', () => c.destroy());
  c.on('error', () => u.destroy());
}).listen(...(${JSON.stringify(typeof from === 'number' ? [from, '127.0.0.1'] : [from])}), () => console.log('listening'));`;

describe('xdplb-agent --mode backend: an unmodified pod serves a VIP with delivery Node and a targetPort', () => {
  let controller: Controller | undefined;
  const tokens = { prometheus: '', alice: '' };
  const f = controlPlaneFixture(async (cp) => {
    for (const ns of [NS, AGENT_NS, 'monitoring']) cp.kubectl(['create', 'namespace', ns]);
    cp.kubectl(['apply', '-f', BACKEND_MANIFEST]); // its RBAC, which the agent runs under (and a DaemonSet nothing schedules)
    cp.kubectl(['apply', '-f', METRICS_READER]);
    cp.kubectl(['create', 'clusterrolebinding', 'prometheus-xdplb-metrics', '--clusterrole=xdplb-metrics-reader', '--serviceaccount=monitoring:prometheus']);
    tokens.prometheus = kubeConfigFrom(cp.kubeconfigAs('monitoring/prometheus')).getCurrentUser()!.token!;
    tokens.alice = kubeConfigFrom(cp.kubeconfigAs('alice')).getCurrentUser()!.token!;
    controller = new Controller(kubeConfigFrom(cp.kubeconfig), { namespace: AGENT_NS, identity: 'test' });
    await controller.start();
  }, async () => {
    await controller?.stop();
  });

  let client: TestNetns | null = null;
  let node: TestNetns | null = null;
  let pod: TestNetns | null = null;
  const children: ChildProcess[] = [];
  let agent: ChildProcess | null = null;
  let agentLog = '';
  let dir: string | null = null;

  function cleanup(): void {
    for (const c of children) c.kill('SIGKILL');
    children.length = 0;
    try {
      if (existsSync(PIN_DIR)) node?.within(() => removeBackend(PIN_DIR));
    } catch {
      rmSync(PIN_DIR, { recursive: true, force: true });
    }
    removeNetns(client, node, pod);
    client = node = pod = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = null;
  }
  const unregister = onExitOrSignal(cleanup);

  /**
   * In the namespace's network namespace only (nsenter, not `ip netns exec`, which remounts /sys and so hides
   * bpffs), as a hostNetwork pod runs.
   */
  const inNetns = (ns: string | null, args: string[]): string[] => (ns ? ['nsenter', `--net=/run/netns/${ns}`, '--', ...args] : args);
  const spawnIn = (ns: string | null, args: string[]): ChildProcess => {
    const [cmd, ...rest] = inNetns(ns, args);
    const child = spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    return child;
  };

  before(async () => {
    if (process.getuid?.() !== 0) return;
    ensureBpffs();
    rmSync(PIN_DIR, { recursive: true, force: true });
    dir = mkdtempSync(join(tmpdir(), 'xdplb-backend-mode-'));
    client = new TestNetns(CLIENT_NS);
    node = new TestNetns(NODE_NS);
    pod = new TestNetns(POD_NS);
    client.ip('link', 'add', NIC.client, 'address', MAC.client, 'type', 'veth', 'peer', 'name', NIC.node, 'address', MAC.node, 'netns', NODE_NS);
    client.ip('addr', 'add', `${CLIENT}/24`, 'dev', NIC.client);
    node.ip('addr', 'add', `${NODE}/24`, 'dev', NIC.node);
    for (const [ns, nic] of [[client, NIC.client], [client, 'lo'], [node, NIC.node], [node, 'lo']] as const) ns.ip('link', 'set', nic, 'up');
    node.ip('route', 'add', 'default', 'via', CLIENT);
    execFileSync('ip', ['netns', 'exec', NODE_NS, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'], { stdio: 'pipe' });
    client.ip('route', 'add', POD_NET, 'via', NODE);
    client.ip('route', 'add', 'blackhole', VIP_NET);
    // The pod, as the ptp CNI plugin lays it out: its /32, a host route to it through its veth.
    node.ip('link', 'add', HOST_VETH, 'type', 'veth', 'peer', 'name', POD_NIC, 'netns', POD_NS);
    pod.ip('addr', 'add', `${POD}/32`, 'dev', POD_NIC);
    for (const [ns, nic] of [[pod, POD_NIC], [pod, 'lo'], [node, HOST_VETH]] as const) ns.ip('link', 'set', nic, 'up');
    node.ip('addr', 'add', `${GATEWAY}/32`, 'dev', HOST_VETH);
    pod.ip('route', 'add', GATEWAY, 'dev', POD_NIC, 'scope', 'link');
    pod.ip('route', 'add', 'default', 'via', GATEWAY, 'dev', POD_NIC);
    node.ip('route', 'add', POD, 'dev', HOST_VETH, 'scope', 'link');
    children.push(await startPodServer(POD_NS, [TARGET_PORT]));
  });

  after(async () => {
    cleanup();
    unregister();
  });

  /** GET on the agent's metrics address, from inside the node namespace, with `token` (default: Prometheus's); `status`: the HTTP status instead of the body. */
  const get = (path: string, opts: { token?: string; status?: boolean } = {}): string => {
    const token = 'token' in opts ? opts.token : tokens.prometheus;
    try {
      // HTTPS with the agent's self-signed certificate (-k: this test is of the token review).
      return execFileSync('ip', ['netns', 'exec', NODE_NS, 'curl', '-s', '-k', '--max-time', '10', ...(token ? ['-H', `Authorization: Bearer ${token}`] : []),
        ...(opts.status ? ['-o', '/dev/null', '-w', '%{http_code}'] : []), `https://${METRICS}${path}`], { encoding: 'utf8' });
    } catch {
      return '';
    }
  };
  const metric = (name: string): number => {
    const line = get('/metrics').split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line ? Number(line.split(' ').pop()) : NaN;
  };

  /** The agent in the node namespace as node-a, under deploy/backend.yaml's RBAC; resolves once /readyz says ready. */
  async function startAgent(env: Record<string, string> = {}): Promise<void> {
    const { cp } = f;
    agentLog = '';
    const args = [process.execPath, AGENT, '--mode', 'backend', '--node-name', NODE_NAME, '--kubeconfig', cp.kubeconfigAs('xdplb-system/xdplb-backend'),
      '--pin-dir', PIN_DIR, '--metrics-address', METRICS, '--drain-seconds', String(DRAIN_SECONDS)];
    const [cmd, ...rest] = inNetns(NODE_NS, args);
    // As deploy/backend.yaml runs it: /metrics reviewed with its service account (system:auth-delegator there).
    agent = spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, XDPLB_METRICS_AUTH: 'kubernetes', ...env } });
    children.push(agent);
    agent.stdout!.on('data', (d: Buffer) => { agentLog += d.toString(); });
    agent.stderr!.on('data', (d: Buffer) => { agentLog += d.toString(); });
    await waitUntil('the backend agent ready', () => get('/readyz'), (r) => r === 'ready\n').catch((err: Error) => {
      throw new Error(`${err.message}\nthe agent's log:\n${agentLog}`);
    });
  }

  test('the pod answers a tunnelled SYN for VIP:80 from VIP:80, listening on 8080; deleting the VIP drains, then removes', async (t) => {
    if (!f.need(t) || !requireKernel(t)) return;
    const { cp } = f;
    applyPod(cp, NS, 'web-1', POD, { labels: { app: 'web' } });
    cp.kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'xdplb.dev/v1alpha1', kind: 'LoadBalancerVip', metadata: { name: 'web', namespace: NS },
      spec: { address: VIP, ports: [{ port: VIP_PORT, targetPort: TARGET_PORT }], delivery: 'Node', backendSelector: { matchLabels: { app: 'web' } } },
    }));
    await waitUntil('the controller lists the pod on node-a and allows the address', () => getVip(cp, NS, 'web').status,
      (s) => !!s?.backends?.some((b) => b.ip === POD && b.node === NODE_NAME) && !!s.conditions?.some((c) => c.type === 'AddressAllowed' && c.status === 'True'));

    // The API server, reachable from the node namespace at its own address: node ns TCP -> unix socket -> host TCP.
    const port = Number(new URL(cp.server).port);
    const sock = join(dir!, 'api.sock');
    await waitForOutput(spawnIn(null, [process.execPath, '-e', relayScript(sock, port)]), 'listening', 'the host-side relay');
    await waitForOutput(spawnIn(NODE_NS, [process.execPath, '-e', relayScript(port, sock)]), 'listening', 'the node-side relay');

    await startAgent();
    assert.equal(get('/metrics', { token: undefined, status: true }), '401', 'no token');
    assert.equal(get('/metrics', { token: tokens.alice, status: true }), '403', 'a token without get /metrics');
    assert.equal(get('/metrics', { status: true }), '200', `the Prometheus service account's token:\n${agentLog}`);
    assert.ok(metric('xdplb_backend_services') >= 1, `backend_svcs holds the VIP's entry:\n${agentLog}`);
    assert.equal(metric('xdplb_backend_refused'), 0, agentLog);

    const sport = 42000;
    const frame = await tunnelledSynReply({ client: client!, nic: NIC.client, dir: dir!, srcMac: MAC.client, dstMac: MAC.node, src: CLIENT, sport,
      vip: VIP, vipPort: VIP_PORT, outerSrc: CLIENT, outerDst: POD });
    const flow = innerFlow(frame.subarray(ETH_HLEN));
    assert.deepEqual({ src: flow.src, sport: flow.sport, dst: flow.dst, dport: flow.dport }, { src: parseIp(VIP).text, sport: VIP_PORT, dst: CLIENT, dport: sport });
    assert.match(get('/metrics'), /xdplb_backend_packets_total\{verdict="delivered",reason="to_pod_v4_in_v4"\} [1-9]/);

    cp.kubectl(['delete', 'lbvip', 'web', '-n', NS]);
    await waitUntil('the entry draining', () => agentLog, (l) => /"drainStarted":[1-9]/.test(l), DRAIN_WAIT_MS);
    await waitUntil('the entry removed after the drain', () => agentLog, (l) => /"removed":[1-9]/.test(l), DRAIN_WAIT_MS);
    await waitUntil('nothing held', () => metric('xdplb_backend_services'), (n) => n === 0);

    agent!.kill('SIGTERM');
    assert.equal(await waitForExit(agent!), 0, agentLog);
    assert.ok(existsSync(PIN_DIR), 'stopped, not removed: the pins stay for the next agent');
    const [cmd, ...args] = inNetns(NODE_NS, [process.execPath, AGENT, '--mode', 'backend', 'cleanup', '--pin-dir', PIN_DIR]);
    execFileSync(cmd!, args, { stdio: 'pipe' });
    assert.ok(!existsSync(PIN_DIR), 'cleanup removed the pins');
  });

  test('an agent in a pod that saw its DaemonSet deleted (an uninstall) detaches and unpins on SIGTERM', async (t) => {
    if (!f.need(t) || !requireKernel(t)) return;
    await startAgent({ POD_NAMESPACE: AGENT_NS });
    assert.ok(existsSync(PIN_DIR), 'the object pinned');
    f.cp.kubectl(['delete', 'daemonset', 'xdplb-backend', '-n', AGENT_NS]);
    await waitUntil('the deletion seen', () => agentLog, (l) => l.includes('DaemonSet xdplb-backend was deleted'));
    agent!.kill('SIGTERM');
    assert.equal(await waitForExit(agent!), 0, agentLog);
    assert.ok(!existsSync(PIN_DIR), `nothing left:\n${agentLog}`);
  });
});
