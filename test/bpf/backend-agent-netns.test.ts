/**
 * The backend agent on real pods: a "node" namespace with two "pod"
 * namespaces behind veths, laid out as a CNI's ptp plugin does (the pod's
 * address as a /32 and /128 on its end, a host route to it through the
 * node's end, the node's end as its gateway), an unmodified TCP server on
 * 8080 in each pod. The test process enters the node namespace, as the agent
 * runs in its node's, and runs the agent's module there with its poll. A
 * "client" namespace sends tunnelled SYNs for VIP:80 (standing in for the
 * balancer) and must get the SYN-ACK from VIP:80. Then a pod goes and comes
 * back under the same names and addresses, the agent restarts over its pins,
 * and remove() leaves no pin and no link.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { BackendAgent, removeBackend } from '../../src/agent/backend/backend-agent.js';
import { linkPin } from '../../src/agent/backend/pod-links.js';
import type { PodBackend } from '../../src/agent/backend/service-plan.js';
import { RP_FILTER_LOOSE, rpFilter } from '../../src/agent/backend/rp-filter.js';
import { BACKEND_FLOW_TABLE_SIZE, BACKEND_REASONS } from '../../src/bpf/consts.js';
import { BACKEND_MAPS } from '../../src/bpf/maps.js';
import { loadBackend } from '../../src/bpf/programs.js';
import { pinnedMapInfo } from '../../src/libbpf/map-info.js';
import { parseIp } from '../../src/lib/ip.js';
import { TcxLink, type TcxLinkInfo } from '../../src/libbpf/tcx.js';
import { backendFlows } from '../support/backend.js';
import { onExitOrSignal } from '../support/cleanup.js';
import { ensureBpffs, requireKernel } from '../support/kernel.js';
import { TestNetns } from '../support/netns.js';
import { ETH_HLEN, innerFlow } from '../support/packets.js';
import { startPodServer, tunnelledSynReply, waitForExit } from '../support/tunnel-capture.js';

const PIN_DIR = `/sys/fs/bpf/xdplb-backend-agent-${process.pid}`;
const CLIENT_NS = `xdplb-bac-${process.pid}`;
const NODE_NS = `xdplb-ban-${process.pid}`;
const POD_NS = [`xdplb-bap1-${process.pid}`, `xdplb-bap2-${process.pid}`] as const;
/** The pods' host-side veths, as a CNI names them on the node; each pod's own end is "eth0". */
const HOST_VETH = ['hv1', 'hv2'] as const;
const POD_NIC = 'eth0';
const NIC = { client: 'c0', node: 'n0' } as const;
const MAC = { client: '02:00:00:00:70:01', node: '02:00:00:00:70:02' };
const CLIENT = { v4: '198.18.70.1', v6: '2001:db8:70::1' };
const NODE = { v4: '198.18.70.2', v6: '2001:db8:70::2' };
/** The address of every pod's gateway: the node's end of each veth has it (the ptp plugin's layout). */
const GATEWAY = { v4: '198.18.71.1', v6: '2001:db8:71::1' };
const POD = [{ v4: '198.18.71.11', v6: '2001:db8:71::11' }, { v4: '198.18.71.12', v6: '2001:db8:71::12' }] as const;
const POD_NET = { v4: '198.18.71.0/24', v6: '2001:db8:71::/64' };
const VIP = { v4: '198.19.70.10', v6: '2001:db8:79::10' };
const VIP_NET = { v4: '198.19.70.0/24', v6: '2001:db8:79::/64' };
const VIP_PORT = 80;
const TARGET_PORT = 8080;
const RP_FILTER_STRICT = 1;
/** Long enough that a backend whose pod went keeps its entries for the whole test. */
const DRAIN_MS = 10 * 60_000;
/** The agent polls fast in the test; what it notices is awaited with a generous bound, never timed. */
const POLL_MS = 200;
const NOTICE_TIMEOUT_MS = 60_000;
const CHECK_EVERY_MS = 100;
/** A flow table size other than the compiled one, which the pinned table has. */
const OTHER_FLOW_TABLE_SIZE = 1024;

/** Each pod backs both VIPs, named by its IPv4 address for the IPv4 VIP and its IPv6 one for the IPv6 VIP. */
const BACKENDS: PodBackend[] = POD.flatMap((p) => [
  { vip: VIP.v4, vipPort: VIP_PORT, protocol: 'TCP' as const, podAddress: p.v4, targetPort: TARGET_PORT },
  { vip: VIP.v6, vipPort: VIP_PORT, protocol: 'TCP' as const, podAddress: p.v6, targetPort: TARGET_PORT },
]);

type Tunnel = 'IPv4 in IPv4' | 'IPv6 in IPv6' | 'IPv4 in IPv6';
const TUNNELS: Tunnel[] = ['IPv4 in IPv4', 'IPv6 in IPv6', 'IPv4 in IPv6'];

function sysctl(ns: string, ...settings: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...settings], { stdio: 'pipe' });
}

/** Waits until check() holds, for at most NOTICE_TIMEOUT_MS; throws saying what did not happen. */
async function eventually(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + NOTICE_TIMEOUT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${NOTICE_TIMEOUT_MS} ms`);
    await sleep(CHECK_EVERY_MS);
  }
}

/** The pinned links of a veth, as the kernel describes them (null where none is pinned). */
function pinnedLinks(ifname: string): { egress: TcxLinkInfo | null; ingress: TcxLinkInfo | null } {
  const read = (direction: 'egress' | 'ingress') => {
    const link = TcxLink.fromPin(linkPin(PIN_DIR, ifname, direction), ifname);
    try {
      return link?.info() ?? null;
    } finally {
      link?.close();
    }
  };
  return { egress: read('egress'), ingress: read('ingress') };
}

/** enum bpf_link_type BPF_LINK_TYPE_TCX: bpftool 7.1 (Debian 12's) predates tcx and prints the number, newer ones "tcx". */
const TCX_LINK_TYPES: readonly (string | number)[] = ['tcx', 11];

/**
 * The tcx links in the kernel (`bpftool link`): id -> program id. bpftool 7.1
 * shows neither their device nor them in `bpftool net`, so the device is
 * checked through the pins' link info instead.
 */
function bpftoolTcxLinks(): Map<number, number> {
  const links = JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { id: number; type: string | number; prog_id: number }[];
  return new Map(links.filter((l) => TCX_LINK_TYPES.includes(l.type)).map((l) => [l.id, l.prog_id]));
}

describe('the backend agent on pods in namespaces: attach, follow veths, restart, remove', () => {
  let client: TestNetns | null = null;
  let node: TestNetns | null = null;
  const pods: (TestNetns | null)[] = [null, null];
  const servers: (ChildProcess | null)[] = [null, null];
  let agent: BackendAgent | null = null;
  let dir: string | null = null;
  let clientPort = 41000;

  function cleanup(): void {
    agent = null; // its fds go with the process; its links and pins go below
    for (const s of servers) s?.kill();
    try {
      node?.enter(); // the links' veths are in the node's namespace
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

  /** A pod namespace behind HOST_VETH[i], as the ptp CNI plugin lays it out, running the server. */
  async function addPod(i: 0 | 1): Promise<void> {
    const name = POD_NS[i];
    const pod = (pods[i] = new TestNetns(name));
    const veth = HOST_VETH[i];
    node!.ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', POD_NIC, 'netns', name);
    pod.ip('addr', 'add', `${POD[i].v4}/32`, 'dev', POD_NIC);
    pod.ip('addr', 'add', `${POD[i].v6}/128`, 'dev', POD_NIC, 'nodad');
    for (const [ns, nic] of [[pod, POD_NIC], [pod, 'lo'], [node!, veth]] as const) ns.ip('link', 'set', nic, 'up');
    node!.ip('addr', 'add', `${GATEWAY.v4}/32`, 'dev', veth);
    node!.ip('addr', 'add', `${GATEWAY.v6}/128`, 'dev', veth, 'nodad');
    pod.ip('route', 'add', GATEWAY.v4, 'dev', POD_NIC, 'scope', 'link');
    pod.ip('route', 'add', 'default', 'via', GATEWAY.v4, 'dev', POD_NIC);
    pod.ip('-6', 'route', 'add', GATEWAY.v6, 'dev', POD_NIC);
    pod.ip('-6', 'route', 'add', 'default', 'via', GATEWAY.v6, 'dev', POD_NIC);
    // The host routes the agent finds the pod by.
    node!.ip('route', 'add', POD[i].v4, 'dev', veth, 'scope', 'link');
    node!.ip('-6', 'route', 'add', POD[i].v6, 'dev', veth);
    servers[i] = await startPodServer(name, [TARGET_PORT]);
  }

  /** The pod goes as a CNI's DEL does it: its process ends, its veth and namespace are deleted. */
  async function deletePod(i: 0 | 1): Promise<void> {
    const server = servers[i];
    servers[i] = null;
    server?.kill();
    if (server) await waitForExit(server);
    node!.ip('link', 'del', HOST_VETH[i]);
    pods[i]?.remove();
    pods[i] = null;
  }

  before(async () => {
    if (process.getuid?.() !== 0) return;
    ensureBpffs();
    rmSync(PIN_DIR, { recursive: true, force: true });
    dir = mkdtempSync(join(tmpdir(), 'xdplb-backend-agent-'));
    client = new TestNetns(CLIENT_NS);
    node = new TestNetns(NODE_NS);
    client.ip('link', 'add', NIC.client, 'address', MAC.client, 'type', 'veth', 'peer', 'name', NIC.node, 'address', MAC.node, 'netns', NODE_NS);
    for (const [ns, a] of [[client, CLIENT], [node, NODE]] as const) {
      const nic = ns === client ? NIC.client : NIC.node;
      ns.ip('addr', 'add', `${a.v4}/24`, 'dev', nic);
      ns.ip('addr', 'add', `${a.v6}/64`, 'dev', nic, 'nodad');
      ns.ip('link', 'set', nic, 'up');
      ns.ip('link', 'set', 'lo', 'up');
    }
    // The node routes toward the client by default (loose rp_filter needs a route that covers the VIPs), strict rp_filter everywhere.
    node.ip('route', 'add', 'default', 'via', CLIENT.v4);
    node.ip('-6', 'route', 'add', 'default', 'via', CLIENT.v6);
    sysctl(NODE_NS, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', `net.ipv4.conf.all.rp_filter=${RP_FILTER_STRICT}`,
      `net.ipv4.conf.default.rp_filter=${RP_FILTER_STRICT}`);
    // The client reaches the pods through the node; its answers to a VIP go nowhere (no balancer here).
    client.ip('route', 'add', POD_NET.v4, 'via', NODE.v4);
    client.ip('-6', 'route', 'add', POD_NET.v6, 'via', NODE.v6);
    client.ip('route', 'add', 'blackhole', VIP_NET.v4);
    client.ip('-6', 'route', 'add', 'blackhole', VIP_NET.v6);
    await addPod(0);
    await addPod(1);
    node.enter(); // the agent's `ip -j` calls, sysctls and tcx attachments happen in the node's namespace
  });

  after(async () => {
    await agent?.stop().catch(() => undefined);
    cleanup();
    unregister();
  });

  /** Sends a tunnelled SYN to pod i through the tunnel of that kind and checks the SYN-ACK comes from the VIP. */
  async function answers(i: 0 | 1, tunnel: Tunnel): Promise<void> {
    const v6Inner = tunnel === 'IPv6 in IPv6';
    const v6Outer = tunnel !== 'IPv4 in IPv4';
    const vip = v6Inner ? VIP.v6 : VIP.v4;
    const src = v6Inner ? CLIENT.v6 : CLIENT.v4;
    const sport = clientPort++;
    const frame = await tunnelledSynReply({ client: client!, nic: NIC.client, dir: dir!, srcMac: MAC.client, dstMac: MAC.node, src, sport,
      vip, vipPort: VIP_PORT, outerSrc: v6Outer ? CLIENT.v6 : CLIENT.v4, outerDst: v6Outer ? POD[i].v6 : POD[i].v4 });
    const flow = innerFlow(frame.subarray(ETH_HLEN));
    assert.deepEqual({ src: flow.src, sport: flow.sport, dst: flow.dst, dport: flow.dport },
      { src: parseIp(vip).text, sport: VIP_PORT, dst: parseIp(src).text, dport: sport }, `pod ${i + 1}, ${tunnel}`);
  }

  const attachedTo = (ifname: string, ifindex: number): boolean => {
    const l = pinnedLinks(ifname);
    return l.egress?.ifindex === ifindex && l.ingress?.ifindex === ifindex;
  };
  const ifindexOf = (ifname: string): number =>
    (JSON.parse(execFileSync('ip', ['-n', NODE_NS, '-j', 'link', 'show', 'dev', ifname], { encoding: 'utf8' })) as { ifindex: number }[])[0]!.ifindex;

  test('attaches to both pods\' veths, sets loose rp_filter, and every tunnel kind reaches each pod', async (t) => {
    if (!requireKernel(t)) return;
    agent = BackendAgent.open({ pinDir: PIN_DIR, drainMs: DRAIN_MS, pollMs: POLL_MS });
    const result = await agent.setBackends(BACKENDS);
    assert.deepEqual(result.refused, []);
    assert.deepEqual(result.links.attached.sort(), [...HOST_VETH]);
    // Per pod: IPv4 VIP through its IPv4 and its IPv6 address, IPv6 VIP through its IPv6 address.
    assert.equal(result.table.added, POD.length * TUNNELS.length);
    agent.start();
    for (const veth of HOST_VETH) {
      assert.ok(attachedTo(veth, ifindexOf(veth)), `${veth}: both links pinned, on it`);
      assert.equal(rpFilter(veth), RP_FILTER_LOOSE, `${veth}: rp_filter loose`);
    }
    const listed = bpftoolTcxLinks();
    for (const veth of HOST_VETH) {
      for (const link of Object.values(pinnedLinks(veth))) {
        assert.equal(listed.get(link!.id), link!.progId, `bpftool link: ${veth}'s tcx link ${link!.id} running program ${link!.progId}`);
      }
    }
    for (const i of [0, 1] as const) for (const tunnel of TUNNELS) await answers(i, tunnel);
  });

  test('a pod that goes: its links and pins are removed, its backends reported, the other pod still answers', async (t) => {
    if (!requireKernel(t)) return;
    const gone = Object.values(pinnedLinks(HOST_VETH[0])).map((l) => l!.id);
    await deletePod(0);
    await eventually(`${HOST_VETH[0]}'s link pins removed`, () => {
      const l = pinnedLinks(HOST_VETH[0]);
      return l.egress === null && l.ingress === null;
    });
    // The kernel frees an unpinned link from a work queue: gone soon after, not at once.
    await eventually(`bpftool link: ${HOST_VETH[0]}'s links ${gone.join(', ')} freed`, () => gone.every((id) => !bpftoolTcxLinks().has(id)));
    await eventually('the gone pod\'s backends refused as not local', () =>
      agent!.refused().filter((r) => r.reason.includes('not local')).length === 2);
    for (const tunnel of TUNNELS) await answers(1, tunnel);
  });

  test('the pod back under the same veth name and addresses: attached again and answering', async (t) => {
    if (!requireKernel(t)) return;
    await addPod(0);
    const ifindex = ifindexOf(HOST_VETH[0]);
    await eventually(`${HOST_VETH[0]} (ifindex ${ifindex}) attached again`, () => attachedTo(HOST_VETH[0], ifindex));
    await eventually('nothing refused', () => agent!.refused().length === 0);
    assert.equal(rpFilter(HOST_VETH[0]), RP_FILTER_LOOSE);
    for (const tunnel of TUNNELS) await answers(0, tunnel);
  });

  test('an agent restart over the same pins: traffic flows while none runs, the flow table and links are adopted', async (t) => {
    if (!requireKernel(t)) return;
    const flowsBefore = backendFlows(agent!.maps).keys().map((f) => `${f.client.text}:${f.clientPort}>${f.pod.text}:${f.targetPort}`).sort();
    assert.ok(flowsBefore.length > 0, 'the SYNs recorded flows');
    const linksBefore = HOST_VETH.map((v) => pinnedLinks(v));
    await agent!.stop();
    agent = null;
    await answers(1, 'IPv4 in IPv4'); // no agent: the pinned links and maps carry on
    assert.throws(() => BackendAgent.open({ pinDir: PIN_DIR, drainMs: DRAIN_MS, capacity: { backendFlows: OTHER_FLOW_TABLE_SIZE } }),
      new RegExp(`backend_flows maxEntries ${BACKEND_FLOW_TABLE_SIZE} pinned, ${OTHER_FLOW_TABLE_SIZE} wanted.*removeBackend`),
      'another flow table size: refused, the pins untouched');
    // An older version's counters pinned (fewer reasons, before REPLY_TO_STACK_*): replaced, all else adopted.
    const statsPin = join(PIN_DIR, BACKEND_MAPS.stats.name);
    const olderReasons = BACKEND_REASONS.filter((r) => !r.startsWith('REPLY_TO_STACK')).length;
    rmSync(statsPin);
    loadBackend({ pinDir: PIN_DIR, maxEntries: { [BACKEND_MAPS.stats.name]: olderReasons } }).object.close();
    assert.equal(pinnedMapInfo(statsPin)?.maxEntries, olderReasons);
    agent = BackendAgent.open({ pinDir: PIN_DIR, drainMs: DRAIN_MS, pollMs: POLL_MS });
    assert.equal(pinnedMapInfo(statsPin)?.maxEntries, BACKEND_REASONS.length, 'the older counters replaced');
    const flowsAfter = backendFlows(agent.maps).keys().map((f) => `${f.client.text}:${f.clientPort}>${f.pod.text}:${f.targetPort}`).sort();
    for (const f of flowsBefore) assert.ok(flowsAfter.includes(f), `flow ${f} kept across the restart`);
    const result = await agent.setBackends(BACKENDS);
    assert.deepEqual(result.links.attached, [], 'no veth attached anew');
    assert.deepEqual(result.links.updated.sort(), [...HOST_VETH], 'the links now run the new agent\'s programs');
    assert.deepEqual(result.table.added + result.table.changed + result.table.removed, 0, 'the service entries adopted as they were');
    HOST_VETH.forEach((v, i) => {
      const now = pinnedLinks(v);
      assert.equal(now.egress?.id, linksBefore[i]!.egress?.id, `${v}: the same egress link`);
      assert.equal(now.ingress?.id, linksBefore[i]!.ingress?.id, `${v}: the same ingress link`);
    });
    agent.start();
    for (const i of [0, 1] as const) await answers(i, 'IPv4 in IPv4');
  });

  test('a pod re-created while no agent runs: the next agent finds its stale links and attaches to the new veth', async (t) => {
    if (!requireKernel(t)) return;
    await agent!.stop();
    agent = null;
    await deletePod(0);
    await addPod(0);
    assert.equal(pinnedLinks(HOST_VETH[0]).egress?.ifindex, 0, 'the old link stays pinned, on no interface');
    agent = BackendAgent.open({ pinDir: PIN_DIR, drainMs: DRAIN_MS, pollMs: POLL_MS });
    const result = await agent.setBackends(BACKENDS);
    assert.deepEqual(result.links.attached, [HOST_VETH[0]]);
    assert.ok(attachedTo(HOST_VETH[0], ifindexOf(HOST_VETH[0])));
    assert.equal(rpFilter(HOST_VETH[0]), RP_FILTER_LOOSE);
    agent.start();
    for (const tunnel of TUNNELS) await answers(0, tunnel);
  });

  test('remove() detaches every link and leaves no pin', async (t) => {
    if (!requireKernel(t)) return;
    const links = HOST_VETH.flatMap((v) => Object.values(pinnedLinks(v)).map((l) => l!));
    await agent!.remove();
    agent = null;
    assert.equal(existsSync(PIN_DIR), false, `${PIN_DIR} removed`);
    const programs = new Set(links.map((l) => l.progId));
    const ours = () => [...bpftoolTcxLinks()].filter(([id, prog]) => links.some((l) => l.id === id) || programs.has(prog));
    await eventually('bpftool link: none of the agent\'s links left, and no link runs its programs', () => ours().length === 0);
    for (const veth of HOST_VETH) assert.equal(rpFilter(veth), RP_FILTER_STRICT, `${veth}: rp_filter back to the default`);
  });
});
