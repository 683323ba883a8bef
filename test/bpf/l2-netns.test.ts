/**
 * L2 mode on real sockets: a balancer namespace and a peer namespace joined
 * by a veth. The peer's kernel resolves the VIPs (ARP, NDP) and gets the
 * program's answers, in native and in generic mode; the takeover frames sent
 * through a packet socket move (and, where the peer accepts unsolicited
 * ones, create) the peer's neighbor entries.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { type LoadedDecap, loadDecap } from '../../src/bpf/programs.js';
import { BALANCER_MAPS, typedMap } from '../../src/bpf/maps.js';
import { L2_F_ANSWER } from '../../src/bpf/consts.js';
import { parseIp } from '../../src/lib/ip.js';
import { attachXdp, detachXdp, type XdpMode } from '../../src/libbpf/xdp.js';
import { takeoverFrames } from '../../src/agent/announce/l2-frames.js';
import { PacketSocket, sendFrames } from '../../src/agent/net/packet-socket.js';
import { BalancerHarness, ENCAP } from '../support/balancer-harness.js';
import { onExitOrSignal } from '../support/cleanup.js';
import { requireKernel } from '../support/kernel.js';
import { TestNetns } from '../support/netns.js';
import { ARP_REQUEST, buildArp } from '../support/l2-packets.js';

const LB_NS = `xdplb-l2lb-${process.pid}`;
const PEER_NS = `xdplb-l2peer-${process.pid}`;
const LB_NIC = 'lb0';
const PEER_NIC = 'peer0';
const VIP4 = '198.19.50.10';
const VIP6 = '2001:db8:51::10';
const LB_ADDR4 = '198.18.50.1';
const PEER_ADDR4 = '198.18.50.2';
/** The sender of a request that marks how far the peer has read. */
const MARKER_MAC = '02:00:00:00:51:aa';
/** Another node's MAC: the one a takeover announces. */
const NEW_OWNER_MAC = '02:00:00:00:51:99';
/** Neighbor states in which an entry holds no usable MAC. */
const UNRESOLVED = ['INCOMPLETE', 'FAILED'];
const WAIT_MS = 20_000;
const POLL_MS = 50;
/** The peer retries unanswered solicitations every 250 ms (default 1 s): an unanswered one fails sooner. */
const RETRANS_MS = 250;

interface Neighbor {
  lladdr?: string;
  state?: string[];
}

function sysctl(ns: string, ...settings: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...settings], { stdio: 'pipe' });
}

function neighbor(addr: string): Neighbor | null {
  const family = parseIp(addr).family === 6 ? '-6' : '-4';
  const out = execFileSync('ip', ['-n', PEER_NS, '-j', family, 'neigh', 'show', addr, 'dev', PEER_NIC], { encoding: 'utf8' });
  return (out.trim() ? (JSON.parse(out) as Neighbor[]) : [])[0] ?? null;
}

async function waitForNeighbor(addr: string, ok: (n: Neighbor | null) => boolean, what: string): Promise<Neighbor | null> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const n = neighbor(addr);
    if (ok(n)) return n;
    if (Date.now() > deadline) assert.fail(`the peer's neighbor entry for ${addr} is not ${what}: ${JSON.stringify(n)}`);
    await sleep(POLL_MS);
  }
}

/** The peer's kernel sends a datagram to addr, so it resolves addr's MAC (ARP or NDP) first. */
function sendFromPeer(addr: string): void {
  const script = "const s = require('dgram').createSocket(process.argv[1]); s.send('x', 9, process.argv[2], () => s.close());";
  execFileSync('ip', ['netns', 'exec', PEER_NS, process.execPath, '-e', script, parseIp(addr).family === 6 ? 'udp6' : 'udp4', addr],
    { stdio: 'pipe' });
}

describe('L2 mode between two namespaces', () => {
  let lbNs: TestNetns | null = null;
  let peerNs: TestNetns | null = null;
  let h: BalancerHarness | null = null;
  let decap: LoadedDecap | null = null;
  let lbMac = '';
  const removeNamespaces = () => {
    peerNs?.remove();
    peerNs = null;
    lbNs?.remove();
    lbNs = null;
  };
  let unregister = () => {};

  before(() => {
    if (process.getuid?.() !== 0) return;
    unregister = onExitOrSignal(removeNamespaces);
    lbNs = new TestNetns(LB_NS);
    peerNs = new TestNetns(PEER_NS);
    for (const ns of [LB_NS, PEER_NS]) sysctl(ns, 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
    lbNs.ip('link', 'add', LB_NIC, 'type', 'veth', 'peer', 'name', PEER_NIC, 'netns', PEER_NS);
    lbNs.ip('addr', 'add', `${LB_ADDR4}/24`, 'dev', LB_NIC);
    lbNs.ip('-6', 'addr', 'add', '2001:db8:50::1/64', 'dev', LB_NIC, 'nodad');
    peerNs.ip('addr', 'add', `${PEER_ADDR4}/24`, 'dev', PEER_NIC);
    peerNs.ip('-6', 'addr', 'add', '2001:db8:50::2/64', 'dev', PEER_NIC, 'nodad');
    lbNs.ip('link', 'set', LB_NIC, 'up');
    peerNs.ip('link', 'set', PEER_NIC, 'up');
    // The VIPs are on the peer's link (the L2 lab has no router): resolved, not routed.
    peerNs.ip('route', 'add', `${VIP4}/32`, 'dev', PEER_NIC);
    peerNs.ip('-6', 'route', 'add', `${VIP6}/128`, 'dev', PEER_NIC);
    sysctl(PEER_NS, `net.ipv4.neigh.${PEER_NIC}.retrans_time_ms=${RETRANS_MS}`, `net.ipv6.neigh.${PEER_NIC}.retrans_time_ms=${RETRANS_MS}`);
    lbMac = (JSON.parse(execFileSync('ip', ['-n', LB_NS, '-j', 'link', 'show', LB_NIC], { encoding: 'utf8' })) as { address: string }[])[0]!.address;

    h = new BalancerHarness();
    h.apply([], { ...ENCAP, srcMac: lbMac });
    // XDP_TX into a veth needs an XDP program on its peer: decap with no addresses passes everything.
    decap = loadDecap();
    peerNs.within(() => attachXdp(PEER_NIC, decap!.progFd, { mode: 'native' }));
  });

  after(() => {
    try {
      removeNamespaces(); // takes the veths and their programs with them
    } finally {
      unregister();
      h?.close();
      decap?.object.close();
    }
  });

  const l2Addrs = () => typedMap(BALANCER_MAPS.l2Addrs, h!.lb.maps.l2Addrs);
  const flushPeerNeighbors = () => peerNs!.ip('neigh', 'flush', 'dev', PEER_NIC);

  /** The peer resolves both VIPs with the program on lb0 in this mode; returns the answers counted. */
  async function resolveBoth(mode: XdpMode, expect: (n: Neighbor | null) => boolean, what: string) {
    const before = h!.reasons();
    lbNs!.within(() => attachXdp(LB_NIC, h!.lb.progFd, { mode }));
    try {
      flushPeerNeighbors();
      for (const vip of [VIP4, VIP6]) {
        sendFromPeer(vip);
        await waitForNeighbor(vip, expect, what);
      }
    } finally {
      lbNs!.within(() => detachXdp(LB_NIC, mode));
    }
    const after = h!.reasons();
    return { arp: after.TX_ARP_REPLY - before.TX_ARP_REPLY, ndp: after.TX_NDP_ADVERT - before.TX_NDP_ADVERT };
  }

  for (const mode of ['native', 'generic'] as const) {
    test(`${mode} mode: the peer's kernel resolves both VIPs to our MAC`, async (t) => {
      if (!requireKernel(t)) return;
      for (const vip of [VIP4, VIP6]) l2Addrs().set(parseIp(vip), L2_F_ANSWER);
      const answered = await resolveBoth(mode, (n) => n?.lladdr === lbMac && !UNRESOLVED.includes(n.state?.[0] ?? ''), `at ${lbMac}`);
      assert.ok(answered.arp >= 1n && answered.ndp >= 1n, `answers counted: ${JSON.stringify(answered, (_, v) => String(v))}`);
    });
  }

  test('addresses not in l2_addrs are not answered: the peer fails to resolve them', async (t) => {
    if (!requireKernel(t)) return;
    for (const vip of [VIP4, VIP6]) l2Addrs().delete(parseIp(vip));
    const answered = await resolveBoth('native', (n) => n?.state?.[0] === 'FAILED', 'FAILED');
    assert.deepEqual(answered, { arp: 0n, ndp: 0n });
  });

  test('takeover frames move the peer\'s existing entries to the new owner\'s MAC', async (t) => {
    if (!requireKernel(t)) return;
    for (const vip of [VIP4, VIP6]) l2Addrs().set(parseIp(vip), L2_F_ANSWER);
    await resolveBoth('native', (n) => n?.lladdr === lbMac, `at ${lbMac}`);
    lbNs!.within(() => {
      for (const vip of [VIP4, VIP6]) sendFrames(LB_NIC, takeoverFrames(NEW_OWNER_MAC, vip));
    });
    for (const vip of [VIP4, VIP6]) await waitForNeighbor(vip, (n) => n?.lladdr === NEW_OWNER_MAC, `at ${NEW_OWNER_MAC}`);
  });

  test('takeover frames create no entry on a peer with default settings', async (t) => {
    if (!requireKernel(t)) return;
    flushPeerNeighbors();
    lbNs!.within(() => {
      for (const vip of [VIP4, VIP6]) sendFrames(LB_NIC, takeoverFrames(NEW_OWNER_MAC, vip));
      // The peer takes frames in order: once it has learned the sender of this request for its
      // own address, it has handled the takeover frames before it.
      sendFrames(LB_NIC, [buildArp({ op: ARP_REQUEST, sha: MARKER_MAC, spa: LB_ADDR4, tpa: PEER_ADDR4 })]);
    });
    await waitForNeighbor(LB_ADDR4, (n) => n?.lladdr === MARKER_MAC, `at ${MARKER_MAC}`);
    for (const vip of [VIP4, VIP6]) assert.equal(neighbor(vip), null, `no entry for ${vip}`);
  });

  test('takeover frames create entries on a peer that accepts unsolicited ones, as routers and switches do', async (t) => {
    if (!requireKernel(t)) return;
    // Hosts by default only update entries they have. A router that should learn an
    // address from its announcement accepts unsolicited ARP (arp_accept) and, being a
    // router (forwarding), untracked advertisements (accept_untracked_na, RFC 9131).
    sysctl(PEER_NS, `net.ipv4.conf.${PEER_NIC}.arp_accept=1`, `net.ipv6.conf.${PEER_NIC}.forwarding=1`,
      `net.ipv6.conf.${PEER_NIC}.accept_untracked_na=1`, `net.ipv6.conf.${PEER_NIC}.drop_unsolicited_na=0`);
    flushPeerNeighbors();
    for (const vip of [VIP4, VIP6]) assert.equal(neighbor(vip)?.lladdr, undefined, `no entry for ${vip} before`);
    const socket = lbNs!.within(() => new PacketSocket(LB_NIC));
    try {
      for (const vip of [VIP4, VIP6]) for (const frame of takeoverFrames(NEW_OWNER_MAC, vip)) socket.send(frame);
    } finally {
      socket.close();
    }
    for (const vip of [VIP4, VIP6]) await waitForNeighbor(vip, (n) => n?.lladdr === NEW_OWNER_MAC, `created at ${NEW_OWNER_MAC}`);
  });

  test('a packet socket says what is wrong: a missing NIC, a NIC that is down', (t) => {
    if (!requireKernel(t)) return;
    lbNs!.within(() => {
      assert.throws(() => new PacketSocket('no-such-nic'), /network interface "no-such-nic" does not exist/);
      const socket = new PacketSocket(LB_NIC);
      lbNs!.ip('link', 'set', LB_NIC, 'down');
      try {
        assert.throws(() => socket.send(takeoverFrames(NEW_OWNER_MAC, VIP4)[0]!), /sendto\(lb0\) failed: ENETDOWN .*: lb0 is down/);
        assert.throws(() => socket.send(Buffer.alloc(10)), /a 10-byte frame has no Ethernet header/);
      } finally {
        lbNs!.ip('link', 'set', LB_NIC, 'up');
        socket.close();
      }
      assert.throws(() => socket.send(Buffer.alloc(60)), /the packet socket on lb0 is closed/);
    });
  });
});
