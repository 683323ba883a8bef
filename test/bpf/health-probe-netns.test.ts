/**
 * Health probes along the real path, in namespaces (all named xdplb-hc-*):
 *
 *   balancer (the prober: its sockets, its NIC b0) ── node (forwards; a
 *   ptp-style pod behind veth hv1 with the backend programs, and a second veth
 *   to an InPod real)
 *
 * The pod runs an unmodified TCP server on 8080 and is a real of VIP
 * 198.19.90.10:80 (and its IPv6 twin) through the backend programs attached
 * by the BackendAgent; the InPod real has its VIP on lo, the decap program
 * on its NIC and a server on :80. The prober sends its SYNs as the balancer
 * would, in all three tunnel kinds; every target is healthy. The pod's
 * backend programs detached (its server still runs, the tunnel path is
 * broken): its targets turn unhealthy after N failures, the InPod real stays
 * healthy. Attached again: healthy after M successes.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { BackendAgent, removeBackend } from '../../src/agent/backend/backend-agent.js';
import type { PodBackend } from '../../src/agent/backend/service-plan.js';
import { ProbeSocket } from '../../src/agent/health/probe-socket.js';
import { type ProbeTarget, Prober } from '../../src/agent/health/prober.js';
import type { HealthState } from '../../src/agent/health/thresholds.js';
import { healthTargetKey } from '../../src/api/health-check.js';
import { onExitOrSignal } from '../support/cleanup.js';
import { ensureBpffs, requireKernel } from '../support/kernel.js';
import { removeNetns, TestNetns } from '../support/netns.js';
import { startPodServer, waitForExit } from '../support/tunnel-capture.js';

const PID = process.pid;
const NS = { balancer: `xdplb-hc-b-${PID}`, node: `xdplb-hc-n-${PID}`, pod: `xdplb-hc-p-${PID}`, real: `xdplb-hc-r-${PID}` };
const PIN_DIR = `/sys/fs/bpf/xdplb-hc-backend-${PID}`;
const DECAP_PIN_DIR = `/sys/fs/bpf/xdplb-hc-decap-${PID}`;
const DECAP = join(fileURLToPath(new URL('../../', import.meta.url)), 'src/decap/main.js');
const MAC = { balancer: '02:00:00:00:90:01', node: '02:00:00:00:90:02' };
const BALANCER = { v4: '198.18.90.1', v6: '2001:db8:90::1' };
const NODE = { v4: '198.18.90.2', v6: '2001:db8:90::2' };
const GATEWAY = { v4: '198.18.91.1', v6: '2001:db8:91::1' };
const POD = { v4: '198.18.91.11', v6: '2001:db8:91::11' };
const NODE_TO_REAL = { v4: '198.18.92.1', v6: '2001:db8:92::1' };
const REAL = { v4: '198.18.92.2', v6: '2001:db8:92::2' };
const POD_VIP = { v4: '198.19.90.10', v6: '2001:db8:99::10' };
const REAL_VIP = { v4: '198.19.90.20', v6: '2001:db8:99::20' };
const VIP_NET = { v4: '198.19.90.0/24', v6: '2001:db8:99::/64' };
const VIP_PORT = 80;
const TARGET_PORT = 8080;
/** Fast probes for the test; every wait is bounded generously, never timed. */
const CHECK = { port: VIP_PORT, intervalMs: 500, timeoutMs: 400, unhealthyThreshold: 3, healthyThreshold: 2 };
const NOTICE_TIMEOUT_MS = 60_000;
const CHECK_EVERY_MS = 100;

const BACKENDS: PodBackend[] = [
  { vip: POD_VIP.v4, vipPort: VIP_PORT, protocol: 'TCP', podAddress: POD.v4, targetPort: TARGET_PORT },
  { vip: POD_VIP.v6, vipPort: VIP_PORT, protocol: 'TCP', podAddress: POD.v6, targetPort: TARGET_PORT },
];

const target = (name: string, vip: string, real: string): ProbeTarget =>
  ({ key: healthTargetKey(name, real), vipName: name, vip, real, check: CHECK });
/** The pod through each tunnel kind, and the InPod real through IPIP and IPv6 in IPv6. */
const POD_TARGETS = [
  target('hc/pod-v4', POD_VIP.v4, POD.v4), // IPv4 in IPv4
  target('hc/pod-v6', POD_VIP.v6, POD.v6), // IPv6 in IPv6
  target('hc/pod-v4', POD_VIP.v4, POD.v6), // IPv4 in IPv6
];
const REAL_TARGETS = [target('hc/inpod-v4', REAL_VIP.v4, REAL.v4), target('hc/inpod-v6', REAL_VIP.v6, REAL.v6)];

async function eventually(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + NOTICE_TIMEOUT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${NOTICE_TIMEOUT_MS} ms`);
    await sleep(CHECK_EVERY_MS);
  }
}

function sysctl(ns: string, ...settings: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...settings], { stdio: 'pipe' });
}

describe('health probes along the real path: a pod behind the backend programs, an InPod real', () => {
  let balancer: TestNetns | null = null;
  let node: TestNetns | null = null;
  let pod: TestNetns | null = null;
  let real: TestNetns | null = null;
  const servers: ChildProcess[] = [];
  let agent: BackendAgent | null = null;
  let prober: Prober | null = null;
  const changes: { key: string; state: HealthState }[] = [];

  function cleanup(): void {
    prober?.close();
    prober = null;
    agent = null;
    for (const s of servers) s.kill();
    try {
      node?.enter();
      if (existsSync(PIN_DIR)) removeBackend(PIN_DIR);
    } catch {
      rmSync(PIN_DIR, { recursive: true, force: true });
    }
    node?.leave();
    // The decap program goes with the real's namespace (its NIC); its pinned maps and program stay until removed.
    rmSync(DECAP_PIN_DIR, { recursive: true, force: true });
    removeNetns(balancer, node, pod, real);
    balancer = node = pod = real = null;
  }
  const unregister = onExitOrSignal(cleanup);

  before(async () => {
    if (process.getuid?.() !== 0) return;
    ensureBpffs();
    try {
      balancer = new TestNetns(NS.balancer);
      node = new TestNetns(NS.node);
      pod = new TestNetns(NS.pod);
      real = new TestNetns(NS.real);
      // No duplicate address detection, link-local addresses included: a tentative one delays the first neighbour solicitations by seconds.
      for (const ns of Object.values(NS)) sysctl(ns, 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
      // balancer b0 <-> node n0
      balancer.ip('link', 'add', 'b0', 'address', MAC.balancer, 'type', 'veth', 'peer', 'name', 'n0', 'address', MAC.node, 'netns', NS.node);
      for (const [ns, nic, a] of [[balancer, 'b0', BALANCER], [node, 'n0', NODE]] as const) {
        ns.ip('addr', 'add', `${a.v4}/24`, 'dev', nic);
        ns.ip('addr', 'add', `${a.v6}/64`, 'dev', nic, 'nodad');
        ns.ip('link', 'set', nic, 'up');
        ns.ip('link', 'set', 'lo', 'up');
      }
      // The balancer's own stack answers each SYN-ACK with a RST toward the VIP: here it goes nowhere.
      balancer.ip('route', 'add', 'blackhole', VIP_NET.v4);
      balancer.ip('-6', 'route', 'add', 'blackhole', VIP_NET.v6);
      node.ip('route', 'add', 'default', 'via', BALANCER.v4);
      node.ip('-6', 'route', 'add', 'default', 'via', BALANCER.v6);
      sysctl(NS.node, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.all.rp_filter=2', 'net.ipv4.conf.default.rp_filter=2');
      // The pod, as the ptp CNI plugin lays it out.
      node.ip('link', 'add', 'hv1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.pod);
      pod.ip('addr', 'add', `${POD.v4}/32`, 'dev', 'eth0');
      pod.ip('addr', 'add', `${POD.v6}/128`, 'dev', 'eth0', 'nodad');
      for (const [ns, nic] of [[pod, 'eth0'], [pod, 'lo'], [node, 'hv1']] as const) ns.ip('link', 'set', nic, 'up');
      node.ip('addr', 'add', `${GATEWAY.v4}/32`, 'dev', 'hv1');
      node.ip('addr', 'add', `${GATEWAY.v6}/128`, 'dev', 'hv1', 'nodad');
      pod.ip('route', 'add', GATEWAY.v4, 'dev', 'eth0', 'scope', 'link');
      pod.ip('route', 'add', 'default', 'via', GATEWAY.v4, 'dev', 'eth0');
      pod.ip('-6', 'route', 'add', GATEWAY.v6, 'dev', 'eth0');
      pod.ip('-6', 'route', 'add', 'default', 'via', GATEWAY.v6, 'dev', 'eth0');
      node.ip('route', 'add', POD.v4, 'dev', 'hv1', 'scope', 'link');
      node.ip('-6', 'route', 'add', POD.v6, 'dev', 'hv1');
      servers.push(await startPodServer(NS.pod, [TARGET_PORT]));
      // The InPod real: a routed host behind the node, its VIPs on lo, decapsulating itself.
      node.ip('link', 'add', 'n1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.real);
      for (const [ns, nic, a] of [[node, 'n1', NODE_TO_REAL], [real, 'eth0', REAL]] as const) {
        ns.ip('addr', 'add', `${a.v4}/24`, 'dev', nic);
        ns.ip('addr', 'add', `${a.v6}/64`, 'dev', nic, 'nodad');
        ns.ip('link', 'set', nic, 'up');
      }
      real.ip('link', 'set', 'lo', 'up');
      real.ip('addr', 'add', `${REAL_VIP.v4}/32`, 'dev', 'lo');
      real.ip('addr', 'add', `${REAL_VIP.v6}/128`, 'dev', 'lo');
      real.ip('route', 'add', 'default', 'via', NODE_TO_REAL.v4);
      real.ip('-6', 'route', 'add', 'default', 'via', NODE_TO_REAL.v6);
      // ip netns exec hides /sys/fs/bpf: nsenter keeps the host's mounts.
      execFileSync('nsenter', [`--net=/var/run/netns/${NS.real}`, process.execPath, DECAP, 'attach', '--nic', 'eth0', '--addr', REAL.v4, '--addr', REAL.v6,
        '--pin-dir', DECAP_PIN_DIR, '--xdp-mode', 'native'], { stdio: 'pipe' });
      servers.push(await startPodServer(NS.real, [VIP_PORT]));
      await attachBackend();
      prober = balancer.within(() => new Prober({
        io: new ProbeSocket('b0', { lo: 61000, hi: 61999 }),
        encap: () => ({ srcMac: MAC.balancer, nextHopMac: MAC.node, srcV4: BALANCER.v4, srcV6: BALANCER.v6 }),
        onChange: (t, state) => changes.push({ key: t.key, state }),
      }));
      prober.setTargets([...POD_TARGETS, ...REAL_TARGETS]);
    } catch (err) {
      cleanup();
      throw err;
    }
  });

  after(() => {
    cleanup();
    unregister();
  });

  /** The pod's backend programs on its veth, as the backend agent attaches them (run in the node's namespace). */
  async function attachBackend(): Promise<void> {
    node!.enter();
    try {
      agent = BackendAgent.open({ pinDir: PIN_DIR, drainMs: 0 });
      const result = await agent.setBackends(BACKENDS);
      assert.deepEqual(result.refused, []);
    } finally {
      node!.leave();
    }
  }

  const healthy = (t: ProbeTarget) => prober!.state(t.key)?.healthy;
  const successes = () => prober!.counts.success;

  test('every target answers its probes: all three tunnel kinds to the pod, and the InPod real', async (t) => {
    if (!requireKernel(t)) return;
    prober!.start();
    // Two rounds of successes for each of the five targets at least.
    await eventually('10 successful probes', () => successes() >= 10);
    assert.equal(prober!.counts.timeout + prober!.counts.refused, 0, `no probe failed: ${JSON.stringify(prober!.counts)} ${JSON.stringify([...prober!.states()].map(([t, s]) => [t.key, s]))}`);
    for (const target of [...POD_TARGETS, ...REAL_TARGETS]) assert.equal(healthy(target), true, `${target.key} healthy`);
    assert.deepEqual(changes, []);
  });

  test('the pod\'s backend programs detached: its targets unhealthy after N timeouts, the InPod real still healthy', async (t) => {
    if (!requireKernel(t)) return;
    node!.enter();
    try {
      await agent!.remove(); // links and pins gone; the pod's server goes on listening on 8080
    } finally {
      node!.leave();
    }
    agent = null;
    await eventually('the pod\'s targets unhealthy', () => POD_TARGETS.every((x) => healthy(x) === false));
    for (const target of POD_TARGETS) {
      const change = changes.find((c) => c.key === target.key && !c.state.healthy);
      assert.match(change?.state.reason ?? '', /no SYN-ACK/, `${target.key}: judged by timeouts`);
    }
    for (const target of REAL_TARGETS) assert.equal(healthy(target), true, `${target.key} still healthy`);
    assert.ok(changes.every((c) => !c.state.healthy && POD_TARGETS.some((x) => x.key === c.key)), 'only the pod\'s targets changed');
  });

  test('attached again: healthy after M successes', async (t) => {
    if (!requireKernel(t)) return;
    const before = changes.length;
    await attachBackend();
    await eventually('the pod\'s targets healthy again', () => POD_TARGETS.every((x) => healthy(x) === true));
    assert.deepEqual(changes.slice(before).map((c) => c.state.healthy), POD_TARGETS.map(() => true));
  });

  test('the probe sockets close and the server processes end', async (t) => {
    if (!requireKernel(t)) return;
    prober!.close();
    prober = null;
    for (const s of servers.splice(0)) {
      s.kill();
      await waitForExit(s);
    }
  });
});
