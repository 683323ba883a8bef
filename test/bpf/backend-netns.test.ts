/**
 * The backend program on real packets: a "pod" namespace behind a veth pair
 * whose host side is in a "node" namespace, the program attached there with
 * tcx, and an unmodified TCP server in the pod on 8080/8081 with no VIP. A
 * "client" namespace, standing in for the balancer too, sends a tunnelled SYN
 * for VIP:80 (it builds the outer header itself: the machine has no ipip
 * module); the pod's SYN-ACK must reach the client as from VIP:80, straight
 * from the node (direct server return). With the pod's transmit checksum
 * offload on (the replies are CHECKSUM_PARTIAL) and off (complete checksums).
 * And the node's own connection to the pod's target port (a kubelet probe)
 * completes: its SYN-ACK is no tunnelled flow's reply and keeps the pod's address.
 * With the pod veth's rp_filter strict the SYN-ACK still arrives (the program
 * redirects it: it never meets rp_filter).
 * Last, the node's FORWARD chain gets kube-proxy's (iptables mode) rule that
 * drops what conntrack calls INVALID, in both families: the rewritten SYN-ACK
 * is the first packet of its flow conntrack would see (a SYN-ACK without a
 * SYN: INVALID), and must reach the client all the same, as nothing of it
 * goes through FORWARD.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type LoadedBackend, loadBackend } from '../../src/bpf/programs.js';
import { IPPROTO_TCP } from '../../src/bpf/consts.js';
import { parseIp } from '../../src/lib/ip.js';
import { TcxLink } from '../../src/libbpf/tcx.js';
import { readBackendReasons } from '../../src/agent/dataplane/counters.js';
import { addPodService } from '../support/backend.js';
import { onExitOrSignal } from '../support/cleanup.js';
import { requireKernel } from '../support/kernel.js';
import { removeNetns, TestNetns } from '../support/netns.js';
import { checksum, checksumsValid, ETH_HLEN, innerFlow, pseudoHeader } from '../support/packets.js';
import { waitUntil } from '../e2e/control-plane/objects.js';
import { startPodServer, tunnelledSynReply } from '../support/tunnel-capture.js';

const CLIENT_NS = `xdplb-bkc-${process.pid}`;
const NODE_NS = `xdplb-bkn-${process.pid}`;
const POD_NS = `xdplb-bkp-${process.pid}`;
const NIC = { client: 'c0', node: 'n0', hostVeth: 'hv0', pod: 'p0' } as const;
const MAC = { client: '02:00:00:00:60:01', node: '02:00:00:00:60:02', hostVeth: '02:00:00:00:61:01', pod: '02:00:00:00:61:10' };
const CLIENT = { v4: '198.18.60.1', v6: '2001:db8:60::1' };
const NODE = { v4: '198.18.60.2', v6: '2001:db8:60::2' };
const HOST_VETH = { v4: '198.18.61.1', v6: '2001:db8:61::1' };
const POD = { v4: '198.18.61.10', v6: '2001:db8:61::10' };
const VIP_PORT = 80;
const TCP_FLAG_SYN = 0x02;
const TCP_FLAG_ACK = 0x10;
/** The SYN's sequence number, as test/support/packets.ts writes it. */
const SYN_SEQ = 1000;
/** The pod's unmodified server listens on both target ports. */
const SERVER_PORTS = [8080, 8081];
/** kube-proxy's (iptables mode) KUBE-FORWARD rule, here straight in the node's FORWARD chain. */
const DROP_INVALID = ['FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP'];
const RP_FILTER_STRICT = 1;
const RP_FILTER_LOOSE = 2;
/** A pending SYN-ACK retransmit may be up to 16 s away (1, 2, 4, 8, 16 s backoff): it drops the request when it fires. */
const HALF_OPEN_GONE_MS = 60_000;

interface Case {
  name: string;
  vip: string;
  client: string;
  outerSrc: string;
  outerDst: string;
  pod: string;
  targetPort: number;
}

const CASES: Case[] = [
  { name: 'IPv4 in IPv4', vip: '198.19.60.10', client: CLIENT.v4, outerSrc: CLIENT.v4, outerDst: POD.v4, pod: POD.v4, targetPort: 8080 },
  { name: 'IPv6 in IPv6', vip: '2001:db8:69::10', client: CLIENT.v6, outerSrc: CLIENT.v6, outerDst: POD.v6, pod: POD.v6, targetPort: 8080 },
  { name: 'IPv4 in IPv6', vip: '198.19.60.12', client: CLIENT.v4, outerSrc: CLIENT.v6, outerDst: POD.v6, pod: POD.v4, targetPort: 8081 },
];

/** Connects to host:port and prints "connected" (the kubelet's TCP probe, from the node). */
const PROBE = `
const net = require('net');
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), timeout: 10000 }, () => { console.log('connected'); s.destroy(); });
s.on('timeout', () => { console.log('timeout'); s.destroy(); process.exitCode = 1; });
s.on('error', (e) => { console.log(e.code); process.exitCode = 1; });`;

function sh(ns: string, ...args: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, ...args], { stdio: 'pipe' });
}

/** Packets the DROP_INVALID rule dropped in the node's namespace (iptables or ip6tables: 'v4' or 'v6'). */
function invalidDrops(family: 'v4' | 'v6'): number {
  const tool = family === 'v4' ? 'iptables' : 'ip6tables';
  const out = execFileSync('ip', ['netns', 'exec', NODE_NS, tool, '-w', '-nvxL', 'FORWARD'], { encoding: 'utf8' });
  const rule = out.split('\n').find((l) => /\bDROP\b.*INVALID/.test(l));
  assert.ok(rule, `${tool}: the INVALID rule is in the node's FORWARD chain`);
  return Number(rule.trim().split(/\s+/)[0]);
}

/**
 * The TCP checksum is complete and valid, or (CHECKSUM_PARTIAL: a veth
 * carries the pod's segments unsummed) holds the folded pseudo-header sum of
 * the addresses on the wire, so the final sum comes out right.
 */
function tcpChecksumState(l3: Buffer): 'complete' | 'partial' | 'wrong' {
  if (checksumsValid(l3).l4) return 'complete';
  const { pseudo, hlen } = pseudoHeader(l3);
  const field = l3.readUInt16BE(hlen + 16);
  return field === (~checksum(pseudo) & 0xffff) ? 'partial' : 'wrong';
}

describe('backend program between namespaces (tcx on the pod\'s host-side veth)', () => {
  let client: TestNetns | null = null;
  let node: TestNetns | null = null;
  let pod: TestNetns | null = null;
  let backend: LoadedBackend | null = null;
  let server: ChildProcess | null = null;
  const links: TcxLink[] = [];
  let dir: string | null = null;

  function cleanup(): void {
    for (const l of links.splice(0)) l.close();
    server?.kill();
    server = null;
    backend?.object.close();
    backend = null;
    removeNetns(client, node, pod);
    client = node = pod = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = null;
  }
  const unregister = onExitOrSignal(cleanup);

  before(async () => {
    if (process.getuid?.() !== 0) return;
    dir = mkdtempSync(join(tmpdir(), 'xdplb-backend-'));
    client = new TestNetns(CLIENT_NS);
    node = new TestNetns(NODE_NS);
    pod = new TestNetns(POD_NS);
    client.ip('link', 'add', NIC.client, 'address', MAC.client, 'type', 'veth', 'peer', 'name', NIC.node, 'address', MAC.node,
      'netns', NODE_NS);
    node.ip('link', 'add', NIC.hostVeth, 'address', MAC.hostVeth, 'type', 'veth', 'peer', 'name', NIC.pod, 'address', MAC.pod,
      'netns', POD_NS);
    const addrs: [TestNetns, string, { v4: string; v6: string }][] = [
      [client, NIC.client, CLIENT], [node, NIC.node, NODE], [node, NIC.hostVeth, HOST_VETH], [pod, NIC.pod, POD],
    ];
    for (const [ns, nic, a] of addrs) {
      ns.ip('addr', 'add', `${a.v4}/24`, 'dev', nic);
      ns.ip('addr', 'add', `${a.v6}/64`, 'dev', nic, 'nodad');
      ns.ip('link', 'set', nic, 'up');
    }
    for (const ns of [client, node, pod]) ns.ip('link', 'set', 'lo', 'up');
    // The pod: the node is its gateway, as a CNI lays it out.
    pod.ip('route', 'add', 'default', 'via', HOST_VETH.v4);
    pod.ip('-6', 'route', 'add', 'default', 'via', HOST_VETH.v6);
    // The node routes pods and, by default, toward the client's network (VIPs included: loose rp_filter needs a route).
    node.ip('route', 'add', 'default', 'via', CLIENT.v4);
    node.ip('-6', 'route', 'add', 'default', 'via', CLIENT.v6);
    sh(NODE_NS, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1',
      `net.ipv4.conf.all.rp_filter=${RP_FILTER_STRICT}`, `net.ipv4.conf.${NIC.hostVeth}.rp_filter=${RP_FILTER_LOOSE}`);
    // The client reaches the pods through the node; its answers to a VIP go nowhere (no balancer here).
    client.ip('route', 'add', '198.18.61.0/24', 'via', NODE.v4);
    client.ip('-6', 'route', 'add', '2001:db8:61::/64', 'via', NODE.v6);
    client.ip('route', 'add', 'blackhole', '198.19.60.0/24');
    client.ip('-6', 'route', 'add', 'blackhole', '2001:db8:69::/64');

    server = await startPodServer(POD_NS, SERVER_PORTS);

    backend = loadBackend();
    for (const c of CASES) {
      addPodService(backend.maps, { vip: parseIp(c.vip), vipPort: VIP_PORT, proto: IPPROTO_TCP, pod: parseIp(c.pod),
        targetPort: c.targetPort, tunnelDst: parseIp(c.outerDst) });
    }
    const b = backend;
    node.within(() => {
      links.push(TcxLink.attach(NIC.hostVeth, 'egress', b.toPodFd));
      links.push(TcxLink.attach(NIC.hostVeth, 'ingress', b.fromPodFd));
    });
  });

  after(() => {
    cleanup();
    unregister();
  });

  /** Sends a tunnelled SYN from the client and returns the first segment from port 80 the client receives. */
  function synAck(c: Case, clientPort: number): Promise<Buffer> {
    return tunnelledSynReply({ client: client!, nic: NIC.client, dir: dir!, srcMac: MAC.client, dstMac: MAC.node, src: c.client,
      sport: clientPort, vip: c.vip, vipPort: VIP_PORT, outerSrc: c.outerSrc, outerDst: c.outerDst });
  }

  const offloads: [string, string][] = [['on', 'CHECKSUM_PARTIAL replies'], ['off', 'complete checksums']];
  let clientPort = 40000;
  for (const [offload, what] of offloads) {
    for (const c of CASES) {
      test(`${c.name}, pod transmit checksum offload ${offload} (${what}): the SYN-ACK reaches the client from ${c.vip}:${VIP_PORT}`,
        async (t) => {
          if (!requireKernel(t)) return;
          sh(POD_NS, 'ethtool', '-K', NIC.pod, 'tx', offload);
          const port = clientPort++;
          const before = readBackendReasons(backend!.maps);
          const frame = await synAck(c, port);
          const l3 = frame.subarray(ETH_HLEN);
          const flow = innerFlow(l3);
          assert.deepEqual({ src: flow.src, sport: flow.sport, dst: flow.dst, dport: flow.dport },
            { src: parseIp(c.vip).text, sport: VIP_PORT, dst: parseIp(c.client).text, dport: port });
          const tcp = l3.subarray(pseudoHeader(l3).hlen);
          assert.equal(tcp[13]! & (TCP_FLAG_SYN | TCP_FLAG_ACK), TCP_FLAG_SYN | TCP_FLAG_ACK, 'a SYN-ACK');
          assert.equal(tcp.readUInt32BE(8), SYN_SEQ + 1, 'acknowledging the client\'s SYN');
          assert.equal(checksumsValid(l3).ip, true, 'IPv4 header checksum');
          assert.equal(tcpChecksumState(l3), offload === 'on' ? 'partial' : 'complete', 'TCP checksum');
          const now = readBackendReasons(backend!.maps);
          const toPod = c.name === 'IPv4 in IPv4' ? 'TO_POD_V4_IN_V4' : c.name === 'IPv6 in IPv6' ? 'TO_POD_V6_IN_V6' : 'TO_POD_V4_IN_V6';
          assert.ok(now[toPod] > before[toPod], `${toPod} counted`);
          assert.ok(now.REPLY_REWRITTEN > before.REPLY_REWRITTEN, 'REPLY_REWRITTEN counted');
        });
    }
  }

  for (const family of ['v4', 'v6'] as const) {
    test(`a kubelet probe from the node's ${family} address to the pod's target port 8080 connects (its answer is not rewritten)`,
      async (t) => {
        if (!requireKernel(t)) return;
        // The tests above leave half-open connections (crafted SYNs nobody ACKs), whose SYN-ACKs the
        // pod retransmits, rewritten each time: on a slow machine they land in this test's window.
        // No more retransmits, and none pending, so the count below is the probe's alone.
        sh(POD_NS, 'sysctl', '-qw', 'net.ipv4.tcp_synack_retries=0');
        await waitUntil('no half-open connection left in the pod', () => execFileSync('ip', ['netns', 'exec', POD_NS, 'ss', '-Htn', 'state', 'syn-recv'],
          { encoding: 'utf8' }).trim(), (o) => o === '', HALF_OPEN_GONE_MS);
        const before = readBackendReasons(backend!.maps);
        const out = execFileSync('ip', ['netns', 'exec', NODE_NS, process.execPath, '-e', PROBE, POD[family], '8080'],
          { encoding: 'utf8' });
        assert.equal(out.trim(), 'connected');
        const now = readBackendReasons(backend!.maps);
        assert.ok(now.PASS_NO_FLOW > before.PASS_NO_FLOW, 'PASS_NO_FLOW counted');
        assert.equal(now.REPLY_REWRITTEN, before.REPLY_REWRITTEN, 'nothing rewritten');
      });
  }

  test('with the pod veth\'s rp_filter strict, the IPv4 SYN-ACK still reaches the client: a redirected reply never meets it',
    async (t) => {
      if (!requireKernel(t)) return;
      const c = CASES[0]!;
      sh(NODE_NS, 'sysctl', '-qw', `net.ipv4.conf.${NIC.hostVeth}.rp_filter=${RP_FILTER_STRICT}`);
      try {
        const port = clientPort++;
        const flow = innerFlow((await synAck(c, port)).subarray(ETH_HLEN));
        assert.deepEqual({ src: flow.src, sport: flow.sport }, { src: parseIp(c.vip).text, sport: VIP_PORT });
      } finally {
        sh(NODE_NS, 'sysctl', '-qw', `net.ipv4.conf.${NIC.hostVeth}.rp_filter=${RP_FILTER_LOOSE}`);
      }
    });

  describe('the node\'s FORWARD chain drops conntrack INVALID (kube-proxy, iptables mode)', () => {
    // Only in the node's namespace: deleting the namespace takes the rules with it.
    before(() => {
      if (process.getuid?.() !== 0) return;
      for (const tool of ['iptables', 'ip6tables']) sh(NODE_NS, tool, '-w', '-A', ...DROP_INVALID);
    });
    after(() => {
      if (!node) return;
      for (const tool of ['iptables', 'ip6tables']) {
        try {
          sh(NODE_NS, tool, '-w', '-D', ...DROP_INVALID);
        } catch {
          /* the namespace is gone, and the rule with it */
        }
      }
    });

    for (const c of CASES) {
      const family = c.vip.includes(':') ? 'v6' : 'v4';
      test(`${c.name}: the SYN-ACK still reaches the client from ${c.vip}:${VIP_PORT}, and FORWARD never sees it`, async (t) => {
        if (!requireKernel(t)) return;
        sh(POD_NS, 'ethtool', '-K', NIC.pod, 'tx', 'on');
        const port = clientPort++;
        const dropped = invalidDrops(family);
        let frame: Buffer;
        try {
          frame = await synAck(c, port);
        } catch (err) {
          throw new Error(`no SYN-ACK; the INVALID rule dropped ${invalidDrops(family) - dropped} packets meanwhile`, { cause: err });
        }
        const flow = innerFlow(frame.subarray(ETH_HLEN));
        assert.deepEqual({ src: flow.src, sport: flow.sport, dst: flow.dst, dport: flow.dport },
          { src: parseIp(c.vip).text, sport: VIP_PORT, dst: parseIp(c.client).text, dport: port });
        assert.equal(invalidDrops(family), dropped, 'the INVALID rule dropped nothing');
      });
    }
  });
});
