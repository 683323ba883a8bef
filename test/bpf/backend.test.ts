/**
 * The backend program (bpf/backend.bpf.c) on BPF_PROG_TEST_RUN: toward a pod,
 * a tunnel packet of each family comes out as the packet the pod would get
 * from the client directly (outer header gone, VIP:80 become pod:8080,
 * checksums valid) and its flow is recorded; from the pod, the replies of
 * recorded flows come out as from the VIP:80 their client addressed, one
 * hop further (TTL or hop limit less one) and redirected to the egress device
 * the node's routes give (TC_ACT_REDIRECT), or, where the node would not
 * simply forward them (no route, a local destination, too large, TTL 1), to
 * the node's stack with the reason counted;
 * everything else (probes from the node, the pod's own connections, flows no
 * longer recorded) is left byte for byte as it was.
 *
 * The runs happen in a namespace of the test's own, standing in for the
 * node (the route lookup is the namespace's), as if each packet came in on
 * its "pod veth".
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type LoadedBackend, loadBackend } from '../../src/bpf/programs.js';
import type { BackendReason } from '../../src/bpf/consts.js';
import { IPPROTO_TCP, IPPROTO_UDP } from '../../src/bpf/consts.js';
import { parseIp } from '../../src/lib/ip.js';
import { TcAction, testRun, type TestRunOptions } from '../../src/libbpf/test-run.js';
import { addPodService, type BackendFlow, backendFlows, expectCounted } from '../support/backend.js';
import { requireKernel } from '../support/kernel.js';
import { BLACKHOLED, createBackendNodeNetns, NARROW, NARROW_MTU, NODE } from '../support/backend-node-netns.js';
import { removeNetns, type TestNetns } from '../support/netns.js';
import { buildArp, ARP_REQUEST } from '../support/l2-packets.js';
import { buildPacket, checksumsValid, encapsulate, ETH_HLEN, type PacketSpec } from '../support/packets.js';

const CLIENT4 = '198.18.100.1';
const CLIENT6 = '2001:db8:100::1';
const BALANCER4 = '198.18.0.1';
const BALANCER6 = '2001:db8::1';
const POD4 = '198.18.1.10';
const POD6 = '2001:db8:1::10';
const VIP4 = '198.19.0.10';
const VIP4_OVER_V6 = '198.19.0.12';
const VIP6 = '2001:db8:19::10';
/** Each family's second VIP, served by the same pod on the same target port. */
const SECOND_VIP = { [VIP4]: '198.19.0.11', [VIP6]: '2001:db8:19::11', [VIP4_OVER_V6]: '198.19.0.13' } as const;
/** A ClusterIP client pod (kube-proxy DNATs its packets); the node's own address (the kubelet probes from it) is NODE. */
const OTHER_POD = { v4: '198.18.2.5', v6: '2001:db8:2::5' };
const VIP_PORT = 80;
/** Every VIP's target port, IPv4 in IPv6 included: the same (pod, port) answers for several VIPs. */
const TARGET_PORT = 8080;
const UDP_VIP_PORT = 53;
const UDP_TARGET_PORT = 5353;
const CLIENT_PORT = 40000;
const PAYLOAD = Buffer.from('GET / HTTP/1.0\r\n\r\n');
/** The pod's TTL and hop limit; a reply the program forwards leaves with one less. */
const POD_TTL = 64;
const FORWARDED_TTL = POD_TTL - 1;
/** The last hop a packet may take: the node answers time exceeded rather than forward it. */
const LAST_HOP_TTL = 1;
/** A reply that does not fit NARROW_MTU. */
const LARGE_PAYLOAD = Buffer.alloc(NARROW_MTU + 100);

interface FamilyCase {
  name: string;
  client: string;
  vip: string;
  pod: string;
  /** The node and another pod in the pod's family. */
  node: string;
  otherPod: string;
  targetPort: number;
  outerSrc: string;
  outerDst: string;
  reason: BackendReason;
}

const FAMILIES: FamilyCase[] = [
  { name: 'IPv4 in IPv4', client: CLIENT4, vip: VIP4, pod: POD4, node: NODE.v4, otherPod: OTHER_POD.v4, targetPort: TARGET_PORT,
    outerSrc: BALANCER4, outerDst: POD4, reason: 'TO_POD_V4_IN_V4' },
  { name: 'IPv6 in IPv6', client: CLIENT6, vip: VIP6, pod: POD6, node: NODE.v6, otherPod: OTHER_POD.v6, targetPort: TARGET_PORT,
    outerSrc: BALANCER6, outerDst: POD6, reason: 'TO_POD_V6_IN_V6' },
  { name: 'IPv4 in IPv6', client: CLIENT4, vip: VIP4_OVER_V6, pod: POD4, node: NODE.v4, otherPod: OTHER_POD.v4, targetPort: TARGET_PORT,
    outerSrc: BALANCER6, outerDst: POD6, reason: 'TO_POD_V4_IN_V6' },
];
/** Client ports: each test its own, as flows stay recorded from one test to the next. */
let nextClientPort = CLIENT_PORT;

describe('backend program', () => {
  let b: LoadedBackend;
  let node: TestNetns | null = null;
  /** Each run: received on the pods' veth. */
  let runOpts: TestRunOptions;
  before(() => {
    if (process.getuid?.() !== 0) return;
    ({ ns: node, runOpts } = createBackendNodeNetns(`xdplb-bk-${process.pid}`));
    b = loadBackend();
    for (const f of FAMILIES) {
      for (const vip of [f.vip, SECOND_VIP[f.vip as keyof typeof SECOND_VIP]]) {
        addPodService(b.maps, { vip: parseIp(vip), vipPort: VIP_PORT, proto: IPPROTO_TCP, pod: parseIp(f.pod),
          targetPort: f.targetPort, tunnelDst: parseIp(f.outerDst) });
      }
    }
    addPodService(b.maps, { vip: parseIp(VIP4), vipPort: UDP_VIP_PORT, proto: IPPROTO_UDP, pod: parseIp(POD4),
      targetPort: UDP_TARGET_PORT });
  });
  after(() => {
    b?.object.close();
    removeNetns(node);
    node = null;
  });

  /** Runs a program on a frame, in the node's namespace; checks the one counter it moved and the verdict. */
  function run(progFd: number, frame: Buffer, reason: BackendReason, verdict: number = TcAction.NEXT): Buffer {
    const r = expectCounted(b.maps, reason, () => node!.within(() => testRun(progFd, frame, runOpts)));
    assert.equal(r.action, verdict, `verdict for ${reason}`);
    return r.output;
  }
  const toPod = (frame: Buffer, reason: BackendReason, verdict?: number) => run(b.toPodFd, frame, reason, verdict);
  const fromPod = (frame: Buffer, reason: BackendReason, verdict?: number) => run(b.fromPodFd, frame, reason, verdict);

  function assertValid(frame: Buffer): void {
    assert.deepEqual(checksumsValid(frame.subarray(ETH_HLEN)), { ip: true, l4: true }, 'checksums recomputed by the test');
  }

  /** A client's SYN to vip:80 through the tunnel, and the pod's SYN-ACK to it. */
  function flowOf(f: FamilyCase, vip = f.vip, client = f.client) {
    const sport = nextClientPort++;
    const request: PacketSpec = { src: client, dst: vip, proto: 'tcp', sport, dport: VIP_PORT, syn: true, payload: PAYLOAD };
    const reply: PacketSpec = { src: f.pod, dst: client, proto: 'tcp', sport: f.targetPort, dport: sport, syn: true, ack: true,
      ttl: POD_TTL, payload: PAYLOAD };
    const key: BackendFlow = { client: parseIp(client), clientPort: sport, pod: parseIp(f.pod), targetPort: f.targetPort, proto: IPPROTO_TCP };
    return { request, reply, key, tunnelled: encapsulate(buildPacket(request), f.outerSrc, f.outerDst) };
  }

  /** The reply comes out as from vip:80, one hop further, checksums valid, redirected to its egress device. */
  function assertRepliesAs(reply: PacketSpec, vip: string): void {
    const out = fromPod(buildPacket(reply), 'REPLY_REWRITTEN', TcAction.REDIRECT);
    assert.equal(out.toString('hex'), buildPacket({ ...reply, src: vip, sport: VIP_PORT, ttl: FORWARDED_TTL }).toString('hex'),
      `reply as from ${vip}`);
    assertValid(out);
  }

  /** The reply comes out as from vip:80, TTL untouched (the stack forwards it, or not), and goes to the stack. */
  function assertToStack(what: string, reply: PacketSpec, vip: string, reason: BackendReason): void {
    const out = fromPod(buildPacket(reply), reason);
    assert.equal(out.toString('hex'), buildPacket({ ...reply, src: vip, sport: VIP_PORT }).toString('hex'), `${what}: as from ${vip}`);
    assertValid(out);
  }

  /** The pod's packet leaves byte for byte as it was. */
  function assertUntouched(what: string, packet: PacketSpec, reason: BackendReason = 'PASS_NO_FLOW'): void {
    const frame = buildPacket(packet);
    assert.ok(fromPod(frame, reason).equals(frame), what);
  }

  for (const f of FAMILIES) {
    test(`${f.name}: the pod gets the client's packet to pod:${f.targetPort}, outer header gone, the flow recorded`, (t) => {
      if (!requireKernel(t)) return;
      const { request, key, tunnelled } = flowOf(f);
      const out = toPod(tunnelled, f.reason);
      const expected = buildPacket({ ...request, dst: f.pod, dport: f.targetPort });
      assert.equal(out.toString('hex'), expected.toString('hex'));
      assertValid(out);
      const recorded = backendFlows(b.maps).get(key);
      assert.deepEqual(recorded && { vip: recorded.address.text, port: recorded.port, proto: recorded.proto },
        { vip: parseIp(f.vip).text, port: VIP_PORT, proto: IPPROTO_TCP });
    });

    test(`${f.name}: the pod's reply leaves as from ${f.vip}:${VIP_PORT}`, (t) => {
      if (!requireKernel(t)) return;
      const { reply, tunnelled } = flowOf(f);
      toPod(tunnelled, f.reason);
      assertRepliesAs(reply, f.vip);
      assertRepliesAs({ ...reply, syn: false }, f.vip); // and the rest of the connection
    });

    test(`${f.name}: the pod's answers to a kubelet probe from the node and to a ClusterIP client pass byte for byte`, (t) => {
      if (!requireKernel(t)) return;
      for (const [what, peer] of [['the node (kubelet probe)', f.node], ['a ClusterIP client pod', f.otherPod]] as const) {
        // The probe reaches the pod directly, not through the tunnel: not ours, and nothing recorded.
        const probe: PacketSpec = { src: peer, dst: f.pod, proto: 'tcp', sport: nextClientPort, dport: f.targetPort, syn: true };
        const frame = buildPacket(probe);
        assert.ok(toPod(frame, 'PASS_NOT_ENCAP').equals(frame), `the SYN from ${what}`);
        const answer: PacketSpec = { src: f.pod, dst: peer, proto: 'tcp', sport: f.targetPort, dport: nextClientPort++, syn: true,
          ack: true };
        assertUntouched(`the SYN-ACK to ${what}`, answer);
        assertUntouched(`data to ${what}`, { ...answer, syn: false, payload: PAYLOAD });
      }
      // The same client port talking to the pod both ways: only the tunnelled flow is rewritten.
      const { reply, tunnelled } = flowOf(f);
      toPod(tunnelled, f.reason);
      assertUntouched('the same client port, to the node', { ...reply, dst: f.node });
      assertRepliesAs(reply, f.vip);
    });

    test(`${f.name}: the pod's own connection from target port ${f.targetPort} passes byte for byte`, (t) => {
      if (!requireKernel(t)) return;
      const own: PacketSpec = { src: f.pod, dst: f.client, proto: 'tcp', sport: f.targetPort, dport: 443, syn: true };
      assertUntouched('its SYN', own);
      assertUntouched('its data', { ...own, syn: false, ack: true, payload: PAYLOAD });
    });

    const second = SECOND_VIP[f.vip as keyof typeof SECOND_VIP];
    test(`${f.name}: one pod behind ${f.vip} and ${second} on the same target port: each reply carries its client's VIP`, (t) => {
      if (!requireKernel(t)) return;
      const one = flowOf(f);
      const two = flowOf(f, second);
      toPod(one.tunnelled, f.reason);
      toPod(two.tunnelled, f.reason);
      assertRepliesAs(two.reply, second);
      assertRepliesAs(one.reply, f.vip);
    });

    test(`${f.name}: a reply whose flow is no longer recorded passes untouched; the client's next packet records it again`, (t) => {
      if (!requireKernel(t)) return;
      const { reply, key, tunnelled } = flowOf(f);
      toPod(tunnelled, f.reason);
      assert.ok(backendFlows(b.maps).delete(key), 'the entry was there'); // as LRU eviction would
      assertUntouched('the reply of an evicted flow', { ...reply, syn: false });
      toPod(tunnelled, f.reason);
      assertRepliesAs({ ...reply, syn: false }, f.vip);
    });

    const v = f.client.includes(':') ? 'v6' : 'v4';
    test(`${f.name}: a reply the node would not simply forward goes to its stack, rewritten, the reason counted`, (t) => {
      if (!requireKernel(t)) return;
      const cases: [string, string, BackendReason, Partial<PacketSpec>][] = [
        ['a blackholed client', BLACKHOLED[v], 'REPLY_TO_STACK_NO_ROUTE', {}],
        ['the node itself as the client (a local destination)', NODE[v], 'REPLY_TO_STACK_NOT_FORWARDED', {}],
        ['a reply larger than its egress device\'s MTU', NARROW[v], 'REPLY_TO_STACK_FRAG_NEEDED', { payload: LARGE_PAYLOAD }],
        ['a reply at its last hop', f.client, 'REPLY_TO_STACK_TTL_EXPIRED', { ttl: LAST_HOP_TTL }],
      ];
      for (const [what, client, reason, change] of cases) {
        const { reply, tunnelled } = flowOf(f, f.vip, client);
        toPod(tunnelled, f.reason);
        assertToStack(what, { ...reply, syn: false, ...change }, f.vip, reason);
      }
      // The same destination, fitting: redirected.
      const { reply, tunnelled } = flowOf(f, f.vip, NARROW[v]);
      toPod(tunnelled, f.reason);
      assertRepliesAs({ ...reply, syn: false }, f.vip);
    });

    test(`${f.name}: a bare SYN on the tuple of a recorded flow (the pod reusing it) passes untouched`, (t) => {
      if (!requireKernel(t)) return;
      const { reply, tunnelled } = flowOf(f);
      toPod(tunnelled, f.reason);
      assertUntouched('a SYN', { ...reply, ack: false }, 'PASS_OWN_SYN');
    });
  }

  test('UDP both ways', (t) => {
    if (!requireKernel(t)) return;
    const request: PacketSpec = { src: CLIENT4, dst: VIP4, proto: 'udp', sport: CLIENT_PORT, dport: UDP_VIP_PORT, payload: PAYLOAD };
    const unrelated: PacketSpec = { src: POD4, dst: NODE.v4, proto: 'udp', sport: UDP_TARGET_PORT, dport: CLIENT_PORT, payload: PAYLOAD };
    assertUntouched('a datagram from the target port before any flow', unrelated);
    const out = toPod(encapsulate(buildPacket(request), BALANCER4, POD4), 'TO_POD_V4_IN_V4');
    assert.equal(out.toString('hex'), buildPacket({ ...request, dst: POD4, dport: UDP_TARGET_PORT }).toString('hex'));
    assertValid(out);
    const reply: PacketSpec = { src: POD4, dst: CLIENT4, proto: 'udp', sport: UDP_TARGET_PORT, dport: CLIENT_PORT, ttl: POD_TTL,
      payload: PAYLOAD };
    const back = fromPod(buildPacket(reply), 'REPLY_REWRITTEN', TcAction.REDIRECT);
    assert.equal(back.toString('hex'), buildPacket({ ...reply, src: VIP4, sport: UDP_VIP_PORT, ttl: FORWARDED_TTL }).toString('hex'));
    assertValid(back);
  });

  test('a UDP checksum that comes out as 0 is sent as 0xffff, not as "none"', (t) => {
    if (!requireKernel(t)) return;
    const UDP_CHECK = ETH_HLEN + 20 + 6;
    const spec = (payload: Buffer): PacketSpec =>
      ({ src: CLIENT4, dst: VIP4, proto: 'udp', sport: CLIENT_PORT, dport: UDP_VIP_PORT, payload });
    const translated = (payload: Buffer) => buildPacket({ ...spec(payload), dst: POD4, dport: UDP_TARGET_PORT });
    // A payload word whose translated datagram sums to 0: buildPacket, like the kernel, sends that as 0xffff.
    const payload = Buffer.alloc(2);
    for (let w = 0; translated(payload).readUInt16BE(UDP_CHECK) !== 0xffff; w++) payload.writeUInt16BE(w);
    const out = toPod(encapsulate(buildPacket(spec(payload)), BALANCER4, POD4), 'TO_POD_V4_IN_V4');
    assert.equal(out.toString('hex'), translated(payload).toString('hex'));
    assertValid(out);
  });

  test('an IPv4 UDP packet without a checksum (0) keeps none', (t) => {
    if (!requireKernel(t)) return;
    const UDP_CHECK = ETH_HLEN + 20 + 6;
    const request = buildPacket({ src: CLIENT4, dst: VIP4, proto: 'udp', sport: CLIENT_PORT, dport: UDP_VIP_PORT, payload: PAYLOAD });
    request.writeUInt16BE(0, UDP_CHECK);
    const out = toPod(encapsulate(request, BALANCER4, POD4), 'TO_POD_V4_IN_V4');
    const expected = buildPacket({ src: CLIENT4, dst: POD4, proto: 'udp', sport: CLIENT_PORT, dport: UDP_TARGET_PORT, payload: PAYLOAD });
    expected.writeUInt16BE(0, UDP_CHECK);
    assert.equal(out.toString('hex'), expected.toString('hex'));
    assertValid(out);
  });

  test('toward the pod, what is not ours passes byte for byte', (t) => {
    if (!requireKernel(t)) return;
    const plain = buildPacket({ src: CLIENT4, dst: POD4, proto: 'tcp', sport: CLIENT_PORT, dport: TARGET_PORT, syn: true });
    const otherPort = buildPacket({ src: CLIENT4, dst: VIP4, proto: 'tcp', sport: CLIENT_PORT, dport: 443, syn: true });
    const cases: [string, Buffer, BackendReason][] = [
      ['a plain packet to the pod', plain, 'PASS_NOT_ENCAP'],
      ['an ARP request', buildArp({ op: ARP_REQUEST, sha: '02:00:00:00:00:aa', spa: CLIENT4, tpa: POD4 }), 'PASS_NOT_ENCAP'],
      ['IPIP for a VIP port the pod does not serve (in-pod decap\'s)', encapsulate(otherPort, BALANCER4, POD4), 'PASS_NO_SERVICE'],
      ['IPIP for the VIP, tunnelled to another pod', encapsulate(buildPacket({ src: CLIENT4, dst: VIP4, proto: 'tcp',
        sport: CLIENT_PORT, dport: VIP_PORT, syn: true }), BALANCER4, '198.18.1.11'), 'PASS_NO_SERVICE'],
      ['IPIP carrying ICMP', encapsulate(buildPacket({ src: CLIENT4, dst: VIP4, proto: 1, payload: Buffer.alloc(8) }), BALANCER4, POD4),
        'PASS_NO_SERVICE'],
      ['an inner fragment', encapsulate(buildPacket({ src: CLIENT4, dst: VIP4, proto: 'udp', sport: CLIENT_PORT, dport: UDP_VIP_PORT,
        fragment: { more: true, offset: 0 } }), BALANCER4, POD4), 'PASS_FRAGMENT'],
    ];
    for (const [what, frame, reason] of cases) {
      assert.ok(toPod(frame, reason).equals(frame), what);
    }
  });

  test('from the pod, its own connections and what is not TCP or UDP pass byte for byte', (t) => {
    if (!requireKernel(t)) return;
    const own: PacketSpec = { src: POD4, dst: CLIENT4, proto: 'tcp', sport: 40001, dport: 443, syn: true };
    assertUntouched('a connection from a port that is not a target port', own);
    assertUntouched('its data', { ...own, syn: false, ack: true, payload: PAYLOAD });
    assertUntouched('a datagram from another port', { src: POD4, dst: CLIENT4, proto: 'udp', sport: UDP_TARGET_PORT + 1, dport: UDP_VIP_PORT });
    assertUntouched('ICMP', { src: POD4, dst: CLIENT4, proto: 1, payload: Buffer.alloc(8) }, 'PASS_NOT_REPLY');
    const arp = buildArp({ op: ARP_REQUEST, sha: '02:00:00:00:00:bb', spa: POD4, tpa: NODE.v4 });
    assert.ok(fromPod(arp, 'PASS_NOT_REPLY').equals(arp), 'an ARP request');
  });

  test('a pod\'s own connection to a VIP it backs, balanced back to it, is dropped', (t) => {
    if (!requireKernel(t)) return;
    const hairpin = buildPacket({ src: POD4, dst: VIP4, proto: 'tcp', sport: CLIENT_PORT, dport: VIP_PORT, syn: true });
    toPod(encapsulate(hairpin, BALANCER4, POD4), 'DROP_HAIRPIN', TcAction.SHOT);
  });
});
