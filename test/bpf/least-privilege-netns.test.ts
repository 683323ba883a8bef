/**
 * The balancer agent as its DaemonSet runs it: a process of uid 0 holding only
 * the capabilities the DaemonSet adds (setpriv: inheritable, ambient and
 * bounding sets, no_new_privs), in a "balancer" namespace whose eth0 is a veth
 * to a "peer" namespace. It loads and attaches the program, programs a VIP
 * from its file, forwards the peer's packets to the VIP, opens the health
 * prober's sockets and serves metrics and /trace; a second run adopts the pins and takes
 * the attached program over; `cleanup` detaches and unpins; the L2 takeover
 * frames leave through a packet socket. Without CAP_BPF or CAP_NET_ADMIN it
 * exits at once naming what it lacks; without CAP_NET_RAW it runs, without
 * health checks, and says why.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import * as yaml from 'js-yaml';
import { AGENT_CAPABILITIES } from '../../src/controller/agent-daemonset.js';
import { onExitOrSignal } from '../support/cleanup.js';
import { requireKernel } from '../support/kernel.js';
import { removeNetns, TestNetns } from '../support/netns.js';
import { setprivPrefix } from '../support/setpriv.js';

const AGENT = join(import.meta.dirname, '../../src/agent/main.js');
const LB_NS = `xdplb-cap-lb-${process.pid}`;
const PEER_NS = `xdplb-cap-peer-${process.pid}`;
const PEER_NIC = 'p0';
const PIN_DIR = `/sys/fs/bpf/xdplb-cap-${process.pid}`;
const LB = { v4: '198.18.92.1', v6: '2001:db8:92::1' };
const PEER = { v4: '198.18.92.2', v6: '2001:db8:92::2' };
const VIP = '198.19.92.10';
const VIP_PORT = 80;
const METRICS = '127.0.0.1:19741';
const TRACE = '127.0.0.1:19742';
/** A MAC the L2 takeover announces for the VIP. */
const TAKEOVER_MAC = '02:00:00:00:92:99';
/** What the agent does is awaited with generous bounds, never timed. */
const WAIT_MS = 60_000;
const POLL_MS = 100;

/** argv of nsenter running a command in the balancer namespace as uid 0 with only `caps` (and no_new_privs). */
function confined(caps: readonly string[], command: string[]): string[] {
  return [`--net=/var/run/netns/${LB_NS}`, ...setprivPrefix(caps), ...command];
}

interface Run {
  child: ChildProcess;
  log: string[];
  exited: Promise<number | null>;
}

function startAgent(caps: readonly string[], args: string[]): Run {
  // nsenter and setpriv exec: the child's PID is the agent's.
  const child = spawn('nsenter', confined(caps, [process.execPath, AGENT, ...args]), { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  const keep = (d: Buffer) => log.push(...d.toString().split('\n').filter(Boolean));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, log, exited };
}

function runConfined(caps: readonly string[], command: string[]): string {
  return execFileSync('nsenter', confined(caps, command), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** GET from inside the balancer namespace (the servers listen on its loopback); '' when nothing answers. */
function get(address: string, path: string): string {
  try {
    return execFileSync('nsenter', [`--net=/var/run/netns/${LB_NS}`, 'curl', '-s', '-m', '5', `http://${address}${path}`], { encoding: 'utf8' });
  } catch {
    return '';
  }
}

/** A sample of /metrics; NaN when absent. */
function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : NaN;
}

async function until<T>(what: string, probe: () => T, ok: (v: T) => boolean, run?: Run): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const v = probe();
    if (ok(v)) return v;
    if (run && run.child.exitCode !== null) assert.fail(`${what}: the agent exited ${run.child.exitCode}:\n${run.log.slice(-10).join('\n')}`);
    if (Date.now() > deadline) assert.fail(`${what}: not within ${WAIT_MS} ms (last: ${JSON.stringify(v)})${run ? `\n${run.log.slice(-10).join('\n')}` : ''}`);
    await sleep(POLL_MS);
  }
}

async function stop(run: Run | null): Promise<void> {
  if (!run || run.child.exitCode !== null || run.child.signalCode !== null) return;
  run.child.kill('SIGTERM');
  await run.exited;
}

/** The XDP program on the balancer's eth0: its id, or 0. */
function attachedId(): number {
  const [link] = JSON.parse(execFileSync('ip', ['-n', LB_NS, '-j', '-d', 'link', 'show', 'eth0'], { encoding: 'utf8' })) as
    { xdp?: { prog?: { id: number } } }[];
  return link?.xdp?.prog?.id ?? 0;
}

/** The peer opens TCP connections to the VIP: each SYN meets the program, which encapsulates it back out of eth0. */
function synsFromPeer(n: number): void {
  const script = `const net = require('net'); for (let i = 0; i < ${n}; i++) { const s = net.connect(${VIP_PORT}, '${VIP}'); s.on('error', () => {}); setTimeout(() => s.destroy(), 300); }`;
  execFileSync('ip', ['netns', 'exec', PEER_NS, process.execPath, '-e', script], { stdio: 'pipe' });
}

describe('the agent under only the capabilities its DaemonSet adds', () => {
  const caps = AGENT_CAPABILITIES.BPF;
  let lb: TestNetns | null = null;
  let peer: TestNetns | null = null;
  let dir = '';
  let config = '';
  const runs: Run[] = [];
  const cleanUp = () => {
    for (const r of runs) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    removeNetns(peer, lb); // takes eth0 and its program with it
    lb = peer = null;
    rmSync(PIN_DIR, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
  let unregister = () => {};
  const agentArgs = () => ['--config', config, '--nic', 'eth0', '--pin-dir', PIN_DIR, '--metrics-address', METRICS, '--trace-address', TRACE,
    '--connection-table', '65536'];
  const writeVips = () => {
    const vips = [{ name: 'web', address: VIP, ports: [{ port: VIP_PORT, protocol: 'TCP' }], reals: [{ address: PEER.v4, weight: 1 }] }];
    writeFileSync(config, yaml.dump({ vips }));
  };

  before(() => {
    if (process.getuid?.() !== 0) return;
    unregister = onExitOrSignal(cleanUp);
    dir = mkdtempSync(join(tmpdir(), 'xdplb-cap-'));
    config = join(dir, 'vips.yaml');
    writeVips();
    lb = new TestNetns(LB_NS);
    peer = new TestNetns(PEER_NS);
    lb.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', PEER_NIC, 'netns', PEER_NS);
    lb.ip('addr', 'add', `${LB.v4}/24`, 'dev', 'eth0');
    lb.ip('-6', 'addr', 'add', `${LB.v6}/64`, 'dev', 'eth0', 'nodad');
    peer.ip('addr', 'add', `${PEER.v4}/24`, 'dev', PEER_NIC);
    peer.ip('-6', 'addr', 'add', `${PEER.v6}/64`, 'dev', PEER_NIC, 'nodad');
    for (const [ns, nic] of [[lb, 'eth0'], [peer, PEER_NIC]] as const) {
      ns.ip('link', 'set', 'lo', 'up');
      ns.ip('link', 'set', nic, 'up');
    }
    // The peer is the balancer's gateway (its next hop), and routes the VIP to the balancer.
    lb.ip('route', 'add', 'default', 'via', PEER.v4);
    lb.ip('-6', 'route', 'add', 'default', 'via', PEER.v6);
    peer.ip('route', 'add', `${VIP}/32`, 'via', LB.v4);
    // The peer takes unsolicited ARP (the L2 takeover's gratuitous ARP) into its neighbor table.
    execFileSync('ip', ['netns', 'exec', PEER_NS, 'sysctl', '-qw', `net.ipv4.conf.${PEER_NIC}.arp_accept=1`], { stdio: 'pipe' });
  });

  after(async () => {
    try {
      for (const r of runs) await stop(r);
    } finally {
      cleanUp();
      unregister();
    }
  });

  test('the capabilities are CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_NET_RAW; the process has those and no others', (t) => {
    if (!requireKernel(t)) return;
    assert.deepEqual(caps, ['BPF', 'PERFMON', 'NET_ADMIN', 'NET_RAW']);
    const status = runConfined(caps, ['cat', '/proc/self/status']);
    // CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_PERFMON 38, CAP_BPF 39.
    for (const set of ['CapEff', 'CapPrm', 'CapBnd']) assert.match(status, new RegExp(`^${set}:\\s*000000c000003000$`, 'm'), set);
    assert.match(status, /^NoNewPrivs:\s*1$/m);
  });

  test('loads, attaches, programs the VIP, forwards, probes and serves metrics and /trace', async (t) => {
    if (!requireKernel(t)) return;
    const run = startAgent(caps, agentArgs());
    runs.push(run);
    await until('the agent ready', () => get(METRICS, '/readyz'), (r) => r === 'ready\n', run);
    assert.ok(attachedId() > 0, 'an XDP program on eth0');
    assert.ok(existsSync(join(PIN_DIR, 'vip_map')), 'the maps pinned');
    // The program sees and forwards the peer's SYNs to the VIP, to the real.
    synsFromPeer(3);
    const vipPackets = () => metric(get(METRICS, '/metrics'), 'xdplb_vip_packets_total', `vip="${VIP}:${VIP_PORT}/TCP"`);
    await until('the VIP\'s packets counted', vipPackets, (n) => n >= 3, run);
    assert.ok(metric(get(METRICS, '/metrics'), 'xdplb_real_packets_total', `real="${PEER.v4}"`) >= 3);
    // /trace streams what the program's ring buffer carries, until the client hangs up.
    const trace = spawnSync('nsenter', [`--net=/var/run/netns/${LB_NS}`, 'curl', '-s', '-N', '-m', '3', `http://${TRACE}/trace`], { encoding: 'utf8' });
    assert.match(trace.stdout, /"type":"start"/, `the trace session started: ${trace.stdout.slice(0, 200)}`);
    // The prober's sockets (a packet socket to send, one to receive) opened: it logs this only then. Its frames
    // leave as the L2 takeover's do, through the same kind of packet socket (below).
    await until('the prober\'s sockets open', () => run.log.join('\n'), (l) => l.includes('health checks along the real path: probing'), run);
  });

  test('a second run adopts the pins and takes the attached program over; its maps still hold the VIP', async (t) => {
    if (!requireKernel(t)) return;
    await stop(runs.at(-1)!);
    const before = attachedId();
    assert.ok(before > 0, 'standalone, a stopped agent leaves its program attached');
    const run = startAgent(caps, agentArgs());
    runs.push(run);
    await until('the agent ready again', () => get(METRICS, '/readyz'), (r) => r === 'ready\n', run);
    await until('the agent to say it took the program over', () => run.log.join('\n'), (l) => l.includes('took over the attached program'), run);
    assert.notEqual(attachedId(), before, 'replaced in place by the new program');
    assert.ok(metric(get(METRICS, '/metrics'), 'xdplb_vip_packets_total', `vip="${VIP}:${VIP_PORT}/TCP"`) >= 3, 'the pinned counters adopted');
    synsFromPeer(1);
    await until('the new program forwards', () => metric(get(METRICS, '/metrics'), 'xdplb_vip_packets_total', `vip="${VIP}:${VIP_PORT}/TCP"`), (n) => n >= 4, run);
  });

  test('L2 takeover frames leave through a packet socket', async (t) => {
    if (!requireKernel(t)) return;
    const frames = join(import.meta.dirname, '../../src/agent/announce/l2-frames.js');
    const socket = join(import.meta.dirname, '../../src/agent/net/packet-socket.js');
    const script = `const [{ takeoverFrames }, { sendFrames }] = await Promise.all([import(${JSON.stringify(frames)}), import(${JSON.stringify(socket)})]);
      sendFrames('eth0', takeoverFrames('${TAKEOVER_MAC}', '${VIP}'));`;
    runConfined(caps, [process.execPath, '--input-type=module', '-e', script]);
    const neighbor = () => execFileSync('ip', ['-n', PEER_NS, 'neigh', 'show', VIP, 'dev', PEER_NIC], { encoding: 'utf8' });
    await until('the peer to learn the VIP at the announced MAC', neighbor, (n) => n.includes(TAKEOVER_MAC));
  });

  test('cleanup under the same capabilities detaches and unpins', async (t) => {
    if (!requireKernel(t)) return;
    await stop(runs.at(-1)!);
    runConfined(caps, [process.execPath, AGENT, 'cleanup', '--nic', 'eth0', '--pin-dir', PIN_DIR]);
    assert.equal(attachedId(), 0);
    assert.equal(existsSync(PIN_DIR), false);
  });

  test('without CAP_NET_RAW it runs, without health checks, and says why', async (t) => {
    if (!requireKernel(t)) return;
    const run = startAgent(caps.filter((c) => c !== 'NET_RAW'), agentArgs());
    runs.push(run);
    await until('the agent ready', () => get(METRICS, '/readyz'), (r) => r === 'ready\n', run);
    await until('the agent to say it cannot probe', () => run.log.join('\n'), (l) => /cannot open the health probe sockets/.test(l) && /CAP_NET_RAW/.test(l), run);
    await stop(run);
    runConfined(caps, [process.execPath, AGENT, 'cleanup', '--nic', 'eth0', '--pin-dir', PIN_DIR]);
  });

  for (const missing of ['BPF', 'NET_ADMIN', 'PERFMON']) {
    test(`without CAP_${missing} it exits at once, naming it, and attaches nothing`, async (t) => {
      if (!requireKernel(t)) return;
      const run = startAgent(caps.filter((c) => c !== missing), agentArgs());
      runs.push(run);
      const code = await run.exited;
      assert.notEqual(code, 0);
      assert.match(run.log.join('\n'), new RegExp(`the agent lacks CAP_${missing}\\b`));
      assert.equal(attachedId(), 0);
      assert.equal(existsSync(join(PIN_DIR, 'vip_map')), false, 'nothing pinned');
    });
  }
});
