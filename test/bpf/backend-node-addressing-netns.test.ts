/**
 * Node addressing on real namespaces: a "node" namespace whose NIC (a veth)
 * faces a "client" namespace that stands in for the balancer too, and two
 * ptp-style pods behind veths (host routes /32 and /128 through them), each
 * running an unmodified TCP and UDP server on 0.0.0.0:8080 and [::]:8080 that
 * answers with its name. The backend agent runs in the test process, in the
 * node's namespace, with backends that name the node's address. The client
 * encapsulates its packets to the node's address (it builds the outer header
 * itself: the machine has no ipip module) and must get the answers straight
 * from VIP:80: a whole TCP handshake and a request answered, in each tunnel
 * kind, and UDP. The node's FORWARD chain drops everything toward the pods
 * and what conntrack calls INVALID: nothing of it goes through the node's
 * netfilter. New flows reach both pods; a pod deleted leaves the other
 * serving them all; the NIC carries the program only while node entries are
 * held, and remove() leaves no pin and no link.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { BackendAgent, removeBackend } from '../../src/agent/backend/backend-agent.js';
import { nicLinkPin, pinnedNics } from '../../src/agent/backend/nic-links.js';
import type { PodBackend } from '../../src/agent/backend/service-plan.js';
import { readBackendReasons } from '../../src/agent/dataplane/counters.js';
import { parseIp } from '../../src/lib/ip.js';
import { TcxLink } from '../../src/libbpf/tcx.js';
import { onExitOrSignal } from '../support/cleanup.js';
import { ensureBpffs, requireKernel } from '../support/kernel.js';
import { TestNetns } from '../support/netns.js';
import { buildPacket, encapsulate, ETH_HLEN, innerFlow, IPV4_HLEN, IPV6_HLEN, type PacketSpec } from '../support/packets.js';
import { captureWhile, sendFrames, waitForExit, waitForOutput } from '../support/tunnel-capture.js';

const PIN_DIR = `/sys/fs/bpf/xdplb-na-backend-${process.pid}`;
const CLIENT_NS = `xdplb-na-c-${process.pid}`;
const NODE_NS = `xdplb-na-n-${process.pid}`;
const POD_NS = [`xdplb-na-p1-${process.pid}`, `xdplb-na-p2-${process.pid}`] as const;
const POD_NAME = ['pod1', 'pod2'] as const;
const HOST_VETH = ['hv1', 'hv2'] as const;
const POD_NIC = 'eth0';
const NIC = { client: 'c0', node: 'n0' } as const;
const MAC = { client: '02:00:00:00:80:01', node: '02:00:00:00:80:02' };
const CLIENT = { v4: '198.18.80.1', v6: '2001:db8:80::1' };
/** The node's addresses, on its NIC: what the balancers encapsulate to in Node addressing. */
const NODE = { v4: '198.18.80.2', v6: '2001:db8:80::2' };
const GATEWAY = { v4: '198.18.81.1', v6: '2001:db8:81::1' };
const POD = [{ v4: '198.18.81.11', v6: '2001:db8:81::11' }, { v4: '198.18.81.12', v6: '2001:db8:81::12' }] as const;
const POD_NET = { v4: '198.18.81.0/24', v6: '2001:db8:81::/64' };
const VIP = { v4: '198.19.80.10', v6: '2001:db8:89::10' };
const VIP_NET = { v4: '198.19.80.0/24', v6: '2001:db8:89::/64' };
const VIP_PORT = 80;
const TARGET_PORT = 8080;
const RP_FILTER_STRICT = 1;
const DRAIN_MS = 10 * 60_000;
const POLL_MS = 200;
const NOTICE_TIMEOUT_MS = 60_000;
const CHECK_EVERY_MS = 100;
/** UDP requests sent to see both pods get new flows: a miss of one has odds 2^-15. */
const SPREAD_REQUESTS = 16;
/** TCP header fields the handshake reads and writes. */
const TCP_SEQ_OFFSET = 4;
const TCP_FLAGS_OFFSET = 13;
const TCP_FLAG_SYN_ACK = 0x12;
const UDP_HLEN = 8;
/** Our SYN's sequence number (test/support/packets.ts's default). */
const SYN_SEQ = 1000;
const REQUEST = Buffer.from('ping\n');

type Tunnel = 'IPv4 in IPv4' | 'IPv6 in IPv6' | 'IPv4 in IPv6';
const TUNNELS: Tunnel[] = ['IPv4 in IPv4', 'IPv6 in IPv6', 'IPv4 in IPv6'];

/** Each pod's server: TCP says its name then echoes; UDP answers "name:request"; both families, all addresses. */
const SERVER = `
const net = require('net'), dgram = require('dgram');
const [name, port] = [process.argv[1], Number(process.argv[2])];
let up = 0;
const ready = () => { if (++up === 3) console.log('listening'); };
net.createServer((s) => { s.on('error', () => {}); s.write(name + '\\n'); s.on('data', (d) => s.write(d)); })
  .listen({ port, host: '::', ipv6Only: false }, ready);
for (const [type, host] of [['udp4', '0.0.0.0'], ['udp6', '::']]) {
  const u = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
  u.on('message', (m, r) => u.send(name + ':' + m, r.port, r.address));
  u.bind(port, host, ready);
}`;

function sh(ns: string, ...args: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, ...args], { stdio: 'pipe' });
}

async function eventually(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + NOTICE_TIMEOUT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${NOTICE_TIMEOUT_MS} ms`);
    await sleep(CHECK_EVERY_MS);
  }
}

/** The payload of a captured frame's TCP or UDP packet. */
function payloadOf(frame: Buffer): Buffer {
  const l3 = frame.subarray(ETH_HLEN);
  const f = innerFlow(l3);
  const l4 = l3.subarray(f.family === 4 ? (l3[0]! & 0x0f) * 4 : IPV6_HLEN, f.l3Len);
  return f.proto === 6 ? l4.subarray((l4[12]! >> 4) * 4) : l4.subarray(UDP_HLEN);
}

describe('Node addressing on pods in namespaces: tunnels to the node\'s address reach a pod through the NIC program', () => {
  let client: TestNetns | null = null;
  let node: TestNetns | null = null;
  const pods: (TestNetns | null)[] = [null, null];
  const servers: (ChildProcess | null)[] = [null, null];
  let agent: BackendAgent | null = null;
  let dir: string | null = null;
  let clientPort = 43000;
  let captures = 0;

  function cleanup(): void {
    agent = null;
    for (const s of servers) s?.kill();
    try {
      node?.enter();
      if (existsSync(PIN_DIR)) removeBackend(PIN_DIR);
    } catch {
      rmSync(PIN_DIR, { recursive: true, force: true });
    }
    for (const ns of [client, node, ...pods]) {
      try {
        ns?.remove();
      } catch {
        /* already gone */
      }
    }
    client = node = pods[0] = pods[1] = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = null;
  }
  const unregister = onExitOrSignal(cleanup);

  async function addPod(i: 0 | 1): Promise<void> {
    const pod = (pods[i] = new TestNetns(POD_NS[i]));
    const veth = HOST_VETH[i];
    node!.ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', POD_NIC, 'netns', POD_NS[i]);
    pod.ip('addr', 'add', `${POD[i].v4}/32`, 'dev', POD_NIC);
    pod.ip('addr', 'add', `${POD[i].v6}/128`, 'dev', POD_NIC, 'nodad');
    for (const [ns, nic] of [[pod, POD_NIC], [pod, 'lo'], [node!, veth]] as const) ns.ip('link', 'set', nic, 'up');
    node!.ip('addr', 'add', `${GATEWAY.v4}/32`, 'dev', veth);
    node!.ip('addr', 'add', `${GATEWAY.v6}/128`, 'dev', veth, 'nodad');
    pod.ip('route', 'add', GATEWAY.v4, 'dev', POD_NIC, 'scope', 'link');
    pod.ip('route', 'add', 'default', 'via', GATEWAY.v4, 'dev', POD_NIC);
    pod.ip('-6', 'route', 'add', GATEWAY.v6, 'dev', POD_NIC);
    pod.ip('-6', 'route', 'add', 'default', 'via', GATEWAY.v6, 'dev', POD_NIC);
    node!.ip('route', 'add', POD[i].v4, 'dev', veth, 'scope', 'link');
    node!.ip('-6', 'route', 'add', POD[i].v6, 'dev', veth);
    const server = spawn('ip', ['netns', 'exec', POD_NS[i], process.execPath, '-e', SERVER, POD_NAME[i], String(TARGET_PORT)],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    servers[i] = server;
    await waitForOutput(server, 'listening', `the server in ${POD_NS[i]}`);
  }

  async function deletePod(i: 0 | 1): Promise<void> {
    const server = servers[i];
    servers[i] = null;
    server?.kill();
    if (server) await waitForExit(server);
    node!.ip('link', 'del', HOST_VETH[i]);
    pods[i]?.remove();
    pods[i] = null;
  }

  /** Both VIPs on TCP and UDP port 80 through the node's address of each family, for these pods. */
  const backendsOf = (indexes: readonly (0 | 1)[]): PodBackend[] => indexes.flatMap((i) => (['TCP', 'UDP'] as const).flatMap((protocol) => [
    { vip: VIP.v4, vipPort: VIP_PORT, protocol, podAddress: POD[i].v4, targetPort: TARGET_PORT, nodeAddress: NODE.v4 },
    { vip: VIP.v4, vipPort: VIP_PORT, protocol, podAddress: POD[i].v4, targetPort: TARGET_PORT, nodeAddress: NODE.v6 }, // IPv4 in IPv6
    { vip: VIP.v6, vipPort: VIP_PORT, protocol, podAddress: POD[i].v6, targetPort: TARGET_PORT, nodeAddress: NODE.v6 },
  ]));

  before(async () => {
    if (process.getuid?.() !== 0) return;
    ensureBpffs();
    rmSync(PIN_DIR, { recursive: true, force: true });
    dir = mkdtempSync(join(tmpdir(), 'xdplb-na-'));
    client = new TestNetns(CLIENT_NS);
    node = new TestNetns(NODE_NS);
    client.ip('link', 'add', NIC.client, 'address', MAC.client, 'type', 'veth', 'peer', 'name', NIC.node, 'address', MAC.node, 'netns', NODE_NS);
    for (const [ns, a, nic] of [[client, CLIENT, NIC.client], [node, NODE, NIC.node]] as const) {
      ns.ip('addr', 'add', `${a.v4}/24`, 'dev', nic);
      ns.ip('addr', 'add', `${a.v6}/64`, 'dev', nic, 'nodad');
      ns.ip('link', 'set', nic, 'up');
      ns.ip('link', 'set', 'lo', 'up');
    }
    node.ip('route', 'add', 'default', 'via', CLIENT.v4);
    node.ip('-6', 'route', 'add', 'default', 'via', CLIENT.v6);
    sh(NODE_NS, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', `net.ipv4.conf.all.rp_filter=${RP_FILTER_STRICT}`,
      `net.ipv4.conf.default.rp_filter=${RP_FILTER_STRICT}`);
    // The node's netfilter would drop every packet toward the pods, and kube-proxy's INVALID: none may go through it.
    for (const [tool, net] of [['iptables', POD_NET.v4], ['ip6tables', POD_NET.v6]] as const) {
      sh(NODE_NS, tool, '-w', '-A', 'FORWARD', '-d', net, '-j', 'DROP');
      sh(NODE_NS, tool, '-w', '-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP');
    }
    // The client's answers to the VIP (RSTs for segments its kernel has no socket for) go nowhere: no balancer here.
    client.ip('route', 'add', 'blackhole', VIP_NET.v4);
    client.ip('-6', 'route', 'add', 'blackhole', VIP_NET.v6);
    await addPod(0);
    await addPod(1);
    node.enter();
  });

  after(async () => {
    await agent?.stop().catch(() => undefined);
    cleanup();
    unregister();
  });

  const kindOf = (tunnel: Tunnel) => {
    const v6Inner = tunnel === 'IPv6 in IPv6';
    const v6Outer = tunnel !== 'IPv4 in IPv4';
    return { vip: v6Inner ? VIP.v6 : VIP.v4, src: v6Inner ? CLIENT.v6 : CLIENT.v4, outerSrc: v6Outer ? CLIENT.v6 : CLIENT.v4,
      outerDst: v6Outer ? NODE.v6 : NODE.v4 };
  };
  const file = () => join(dir!, `${++captures}.pcap`);
  const frameOf = (spec: PacketSpec, tunnel: Tunnel) => {
    const k = kindOf(tunnel);
    return encapsulate(buildPacket({ ...spec, srcMac: MAC.client, dstMac: MAC.node }), k.outerSrc, k.outerDst);
  };

  /** A TCP handshake and a request through the tunnel of that kind; returns the name of the pod that answered. */
  async function tcpExchange(tunnel: Tunnel): Promise<string> {
    const k = kindOf(tunnel);
    const sport = clientPort++;
    const base: PacketSpec = { src: k.src, dst: k.vip, proto: 'tcp', sport, dport: VIP_PORT };
    const [synAck] = await captureWhile(client!, NIC.client, file(), `tcp and src port ${VIP_PORT} and dst port ${sport}`,
      () => sendFrames(client!, NIC.client, [frameOf({ ...base, syn: true }, tunnel)]));
    const l3 = synAck!.subarray(ETH_HLEN);
    const flow = innerFlow(l3);
    assert.deepEqual({ src: flow.src, sport: flow.sport, dst: flow.dst }, { src: parseIp(k.vip).text, sport: VIP_PORT, dst: parseIp(k.src).text },
      `${tunnel}: the SYN-ACK comes from the VIP, straight from the node`);
    const tcp = l3.subarray(flow.family === 4 ? IPV4_HLEN : IPV6_HLEN);
    assert.equal(tcp[TCP_FLAGS_OFFSET], TCP_FLAG_SYN_ACK, `${tunnel}: a SYN-ACK`);
    const serverIsn = tcp.readUInt32BE(TCP_SEQ_OFFSET);
    // Our ACK with the request: the server's accept() runs, it says its name and echoes.
    const ackNumber = (serverIsn + 1) >>> 0;
    const frames = await captureWhile(client!, NIC.client, file(),
      `tcp and src port ${VIP_PORT} and dst port ${sport} and ${flow.family === 4 ? 'ip[2:2] > 40' : 'ip6[4:2] > 20'}`,
      () => sendFrames(client!, NIC.client, [frameOf({ ...base, ack: true, seq: SYN_SEQ + 1, ackNumber, payload: REQUEST }, tunnel)]));
    const data = frames.find((f) => payloadOf(f).length > 0);
    assert.ok(data, `${tunnel}: data from the server`);
    assert.equal(innerFlow(data.subarray(ETH_HLEN)).src, parseIp(k.vip).text);
    const text = payloadOf(data).toString();
    const name = POD_NAME.find((n) => text.startsWith(n));
    assert.ok(name, `${tunnel}: the answer names its pod: "${text}"`);
    return name;
  }

  /** UDP requests to VIP:80 through the tunnel of that kind, one per source port; the names of the pods that answered, from VIP:80. */
  async function udpAnswers(tunnel: Tunnel, requests: number): Promise<string[]> {
    const k = kindOf(tunnel);
    const first = clientPort;
    clientPort += requests;
    const frames = Array.from({ length: requests }, (_, i) =>
      frameOf({ src: k.src, dst: k.vip, proto: 'udp', sport: first + i, dport: VIP_PORT, payload: REQUEST }, tunnel));
    const answers = await captureWhile(client!, NIC.client, file(), `udp and src port ${VIP_PORT} and dst portrange ${first}-${first + requests - 1}`,
      () => sendFrames(client!, NIC.client, frames), requests);
    return answers.map((f) => {
      assert.equal(innerFlow(f.subarray(ETH_HLEN)).src, parseIp(k.vip).text, 'answered from the VIP');
      const text = payloadOf(f).toString();
      assert.ok(text.endsWith(`:${REQUEST}`), `an answer to the request: "${text}"`);
      return text.split(':')[0]!;
    });
  }

  const nicLink = () => {
    const link = TcxLink.fromPin(nicLinkPin(PIN_DIR, NIC.node), NIC.node);
    try {
      return link?.info() ?? null;
    } finally {
      link?.close();
    }
  };

  test('no node entry, no program on the NIC; with them, the NIC carries it and every tunnel kind completes a TCP handshake with a pod', async (t) => {
    if (!requireKernel(t)) return;
    agent = BackendAgent.open({ pinDir: PIN_DIR, drainMs: DRAIN_MS, pollMs: POLL_MS });
    const podOnly = await agent.setBackends(backendsOf([0, 1]).map(({ nodeAddress: _n, ...b }) => b));
    assert.deepEqual(podOnly.refused, []);
    assert.deepEqual(pinnedNics(PIN_DIR), [], 'Pod addressing only: nothing on the NIC');
    const result = await agent.setBackends(backendsOf([0, 1]));
    assert.deepEqual(result.refused, []);
    assert.deepEqual(result.nics.attached, [NIC.node]);
    // Per protocol: IPv4 VIP through the node's IPv4 and IPv6 addresses, IPv6 VIP through its IPv6 one.
    assert.equal(agent.counts().nodeEntries, 6);
    assert.equal(nicLink()?.ifindex !== 0, true, 'the NIC link pinned, on the NIC');
    agent.start();
    const before = readBackendReasons(agent.maps);
    for (const tunnel of TUNNELS) await tcpExchange(tunnel);
    const after = readBackendReasons(agent.maps);
    for (const reason of ['NODE_TO_POD_V4_IN_V4', 'NODE_TO_POD_V6_IN_V6', 'NODE_TO_POD_V4_IN_V6'] as const) {
      assert.ok(after[reason] - before[reason] >= 2n, `${reason}: the SYN and the ACK with the request delivered from the NIC`);
    }
    assert.ok(after.REPLY_REWRITTEN - before.REPLY_REWRITTEN >= 6n, 'the pods\' answers rewritten on their veths');
    assert.equal(after.NODE_DROP_NOT_LOCAL - before.NODE_DROP_NOT_LOCAL, 0n);
  });

  test('UDP is answered from VIP:80, and new flows reach both pods in every tunnel kind', async (t) => {
    if (!requireKernel(t)) return;
    for (const tunnel of TUNNELS) {
      const names = await udpAnswers(tunnel, SPREAD_REQUESTS);
      assert.deepEqual([...new Set(names)].sort(), [...POD_NAME], `${tunnel}: both pods answered (${names.join(' ')})`);
    }
  });

  test('a pod deleted and its backends gone: the other pod serves every new flow; the NIC keeps the program', async (t) => {
    if (!requireKernel(t)) return;
    await deletePod(0);
    await agent!.setBackends(backendsOf([1]));
    await eventually('the deleted pod\'s veth links unpinned', () => !existsSync(join(PIN_DIR, `tcx_${HOST_VETH[0]}_egress`)));
    for (const tunnel of TUNNELS) {
      const names = await udpAnswers(tunnel, SPREAD_REQUESTS / 2);
      assert.deepEqual([...new Set(names)], [POD_NAME[1]], `${tunnel}: pod2 answers all`);
      assert.equal(await tcpExchange(tunnel), POD_NAME[1]);
    }
    assert.deepEqual(pinnedNics(PIN_DIR), [NIC.node]);
  });

  test('remove() takes the program off the NIC and the pod veths and leaves no pin', async (t) => {
    if (!requireKernel(t)) return;
    const link = nicLink();
    assert.ok(link, 'the NIC link before');
    await agent!.remove();
    agent = null;
    assert.equal(existsSync(PIN_DIR), false, `${PIN_DIR} removed`);
    await eventually(`bpftool link: the NIC link ${link.id} freed`, () =>
      !(JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { id: number }[]).some((l) => l.id === link.id));
  });
});
