/**
 * The backend program's Node addressing path (xdplb_backend_from_nic, tcx
 * ingress of the node's NIC) on BPF_PROG_TEST_RUN: a tunnel packet whose
 * outer destination is the node's address comes out as the packet a local pod
 * would get from the client directly (outer header gone, VIP:80 become
 * pod:8080, checksums valid), redirected to the pod's veth (TC_ACT_REDIRECT),
 * with its flow recorded both for the replies (backend_flows: the from-pod
 * program then rewrites them) and for the node's pick (backend_node_flows).
 * A flow keeps its pod when a pod is added or starts draining, and moves only
 * when its pod's entry is gone. What is not for a node entry passes byte for
 * byte; every packet moves exactly one counter.
 *
 * The runs happen in a namespace of the test's own standing in for the node
 * (the route lookup is the namespace's), as if each packet came in on its
 * uplink, the node's NIC; the pods are behind its "pods" veth.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { BackendNodeSvc } from '../../src/bpf/backend-structs.js';
import { type BackendReason, FAMILY_V4, FAMILY_V6, IPPROTO_TCP, IPPROTO_UDP, NODE_SVC_SLOTS } from '../../src/bpf/consts.js';
import { BACKEND_MAPS, typedMap } from '../../src/bpf/maps.js';
import { type LoadedBackend, loadBackend } from '../../src/bpf/programs.js';
import { type IpAddress, parseIp } from '../../src/lib/ip.js';
import { TcAction, testRun, type TestRunOptions } from '../../src/libbpf/test-run.js';
import { addPodService, backendFlows, expectCounted } from '../support/backend.js';
import { BLACKHOLED, createBackendNodeNetns, NARROW, NARROW_MTU, UPLINK } from '../support/backend-node-netns.js';
import { requireKernel } from '../support/kernel.js';
import { removeNetns, type TestNetns } from '../support/netns.js';
import { buildPacket, checksumsValid, encapsulate, ETH_HLEN, innerFlow, type PacketSpec } from '../support/packets.js';

const CLIENT = { v4: '198.18.100.1', v6: '2001:db8:100::1' };
const BALANCER = { v4: '198.18.0.1', v6: '2001:db8::1' };
/** Two local pods, behind the node namespace's pods veth (its 198.18.1.0/24 and 2001:db8:1::/64). */
const POD_A = { v4: '198.18.1.10', v6: '2001:db8:1::10' };
const POD_B = { v4: '198.18.1.11', v6: '2001:db8:1::11' };
/** An address the node routes out of its NIC (its default route): no pod of this node. */
const ELSEWHERE = { v4: '198.18.77.1', v6: '2001:db8:77::1' };
const VIP_PORT = 80;
const TARGET_PORT = 8080;
const PAYLOAD = Buffer.from('GET / HTTP/1.0\r\n\r\n');
const LARGE_PAYLOAD = Buffer.alloc(NARROW_MTU + 100);
/** New flows sent to see how the node spreads them: enough that two equal pods both get some (a miss has odds 2^-31). */
const SPREAD_FLOWS = 32;

type V = 'v4' | 'v6';
interface FamilyCase {
  name: string;
  vip: string;
  /** The family of the VIP (the client, the pods' addresses) and of the outer header (the node's address). */
  inner: V;
  outer: V;
  reason: BackendReason;
}

const FAMILIES: FamilyCase[] = [
  { name: 'IPv4 in IPv4', vip: '198.19.0.20', inner: 'v4', outer: 'v4', reason: 'NODE_TO_POD_V4_IN_V4' },
  { name: 'IPv6 in IPv6', vip: '2001:db8:19::20', inner: 'v6', outer: 'v6', reason: 'NODE_TO_POD_V6_IN_V6' },
  { name: 'IPv4 in IPv6', vip: '198.19.0.22', inner: 'v4', outer: 'v6', reason: 'NODE_TO_POD_V4_IN_V6' },
];

let nextClientPort = 42000;

describe('backend program, Node addressing: tunnel packets to the node\'s address on its NIC', () => {
  let b: LoadedBackend;
  let node: TestNetns | null = null;
  let nicRunOpts: TestRunOptions;
  let podRunOpts: TestRunOptions;
  before(() => {
    if (process.getuid?.() !== 0) return;
    ({ ns: node, nicRunOpts, runOpts: podRunOpts } = createBackendNodeNetns(`xdplb-na-bk-${process.pid}`));
    b = loadBackend();
  });
  after(() => {
    b?.object.close();
    removeNetns(node);
    node = null;
  });

  const nodeServices = () => typedMap(BACKEND_MAPS.nodeServices, b.maps.nodeServices);
  const nodeFlows = () => typedMap(BACKEND_MAPS.nodeFlows, b.maps.nodeFlows);

  /** Writes the node entry of (node address of the outer family, vip:80/proto) over these pods, and each pod's own entry. */
  function serve(f: FamilyCase, vip: string, pods: { v4: string; v6: string }[], opts: { proto?: number; hashNoSrcPort?: boolean } = {}): void {
    const proto = opts.proto ?? IPPROTO_TCP;
    const v = parseIp(vip);
    for (const p of pods) addPodService(b.maps, { vip: v, vipPort: VIP_PORT, proto, pod: parseIp(p[f.inner]), targetPort: TARGET_PORT });
    const value: BackendNodeSvc = { family: f.inner === 'v4' ? FAMILY_V4 : FAMILY_V6, slots: pods.map((p) => parseIp(p[f.inner])),
      hashNoSrcPort: opts.hashNoSrcPort ?? false };
    nodeServices().set({ tunnelDst: parseIp(UPLINK[f.outer]), vip: v, vipPort: VIP_PORT, proto }, value);
  }

  /** Removes a pod's own entry (its drain period ended). */
  function unserve(f: FamilyCase, vip: string, pod: { v4: string; v6: string }): void {
    typedMap(BACKEND_MAPS.services, b.maps.services).delete({ tunnelDst: parseIp(pod[f.inner]), vip: parseIp(vip), vipPort: VIP_PORT, proto: IPPROTO_TCP });
  }

  function run(progFd: number, opts: TestRunOptions, frame: Buffer, reason: BackendReason, verdict: number): Buffer {
    const r = expectCounted(b.maps, reason, () => node!.within(() => testRun(progFd, frame, opts)));
    assert.equal(r.action, verdict, `verdict for ${reason}`);
    return r.output;
  }
  const fromNic = (frame: Buffer, reason: BackendReason, verdict: number = TcAction.REDIRECT) => run(b.fromNicFd, nicRunOpts, frame, reason, verdict);

  /** A client's packet to vip:80 tunnelled to the node's address. */
  function request(f: FamilyCase, vip = f.vip, opts: Partial<PacketSpec> & { client?: string } = {}) {
    const { client = CLIENT[f.inner], ...spec } = opts;
    const packet: PacketSpec = { src: client, dst: vip, proto: 'tcp', sport: nextClientPort++, dport: VIP_PORT, syn: true, payload: PAYLOAD, ...spec };
    return { packet, frame: encapsulate(buildPacket(packet), BALANCER[f.outer], UPLINK[f.outer]) };
  }

  /** Which pod the node sent the packet to; checks it is exactly the client's packet translated to that pod:8080. */
  function deliveredTo(f: FamilyCase, packet: PacketSpec, out: Buffer, pods: { v4: string; v6: string }[]): number {
    const i = pods.findIndex((p) => out.equals(buildPacket({ ...packet, dst: p[f.inner], dport: TARGET_PORT })));
    assert.notEqual(i, -1, `the packet went to one of ${pods.map((p) => p[f.inner]).join(', ')} as it would have come from the client`);
    assert.deepEqual(checksumsValid(out.subarray(ETH_HLEN)), { ip: true, l4: true });
    return i;
  }

  /** The pod the node remembers for the flow of this client packet. */
  function remembered(packet: PacketSpec): string | undefined {
    return nodeFlows().get({ client: parseIp(packet.src), clientPort: packet.sport!, vip: parseIp(packet.dst), vipPort: packet.dport!,
      proto: packet.proto === 'udp' ? IPPROTO_UDP : IPPROTO_TCP })?.text;
  }

  for (const f of FAMILIES) {
    test(`${f.name}: to the node's address, the pod gets the client's packet to pod:${TARGET_PORT}, sent to its veth, the flow recorded`, (t) => {
      if (!requireKernel(t)) return;
      serve(f, f.vip, [POD_A]);
      const { packet, frame } = request(f);
      deliveredTo(f, packet, fromNic(frame, f.reason), [POD_A]);
      assert.equal(remembered(packet), parseIp(POD_A[f.inner]).text, 'the node remembers the flow\'s pod');
      const recorded = backendFlows(b.maps).get({ client: parseIp(packet.src), clientPort: packet.sport!, pod: parseIp(POD_A[f.inner]),
        targetPort: TARGET_PORT, proto: IPPROTO_TCP });
      assert.equal(recorded?.address.text, parseIp(f.vip).text, 'backend_flows: the reply will be rewritten to the VIP');
      // The pod's reply, on its veth: rewritten as from the VIP and routed, as in Pod addressing.
      const reply: PacketSpec = { src: POD_A[f.inner], dst: packet.src, proto: 'tcp', sport: TARGET_PORT, dport: packet.sport, syn: true, ack: true };
      const back = innerFlow(run(b.fromPodFd, podRunOpts, buildPacket(reply), 'REPLY_REWRITTEN', TcAction.REDIRECT).subarray(ETH_HLEN));
      assert.deepEqual({ src: back.src, sport: back.sport }, { src: parseIp(f.vip).text, sport: VIP_PORT }, 'the reply leaves as from the VIP');
    });

    test(`${f.name}: a flow keeps its pod when a second pod comes and when its pod drains; new flows go to both; it moves when its pod is gone`, (t) => {
      if (!requireKernel(t)) return;
      const vip = f.inner === 'v4' ? (f.outer === 'v4' ? '198.19.0.30' : '198.19.0.32') : '2001:db8:19::30';
      serve(f, vip, [POD_A]);
      const first = request(f, vip);
      deliveredTo(f, first.packet, fromNic(first.frame, f.reason), [POD_A]);
      serve(f, vip, [POD_A, POD_B]);
      const later = request(f, vip, { sport: first.packet.sport, syn: false, ack: true });
      for (let i = 0; i < 4; i++) assert.equal(deliveredTo(f, later.packet, fromNic(later.frame, f.reason), [POD_A, POD_B]), 0, 'still pod A');
      const got = new Set<number>();
      for (let i = 0; i < SPREAD_FLOWS; i++) {
        const n = request(f, vip);
        got.add(deliveredTo(f, n.packet, fromNic(n.frame, f.reason), [POD_A, POD_B]));
      }
      assert.deepEqual([...got].sort(), [0, 1], 'new flows go to both pods');
      serve(f, vip, [POD_B]); // pod A drains: no slot, its own entry kept
      assert.equal(deliveredTo(f, later.packet, fromNic(later.frame, f.reason), [POD_A, POD_B]), 0, 'a draining pod keeps its flows');
      unserve(f, vip, POD_A); // its drain period ended
      assert.equal(deliveredTo(f, later.packet, fromNic(later.frame, f.reason), [POD_A, POD_B]), 1, 'moved to pod B');
      assert.equal(remembered(later.packet), parseIp(POD_B[f.inner]).text, 'and remembered there');
    });
  }

  test('a pod\'s own connection to its VIP goes to the other pod; with only itself here it is dropped', (t) => {
    if (!requireKernel(t)) return;
    const f = FAMILIES[0]!;
    const vip = '198.19.0.40';
    serve(f, vip, [POD_A, POD_B]);
    for (let i = 0; i < 8; i++) {
      const { packet, frame } = request(f, vip, { client: POD_A.v4 });
      assert.equal(deliveredTo(f, packet, fromNic(frame, f.reason), [POD_A, POD_B]), 1, 'to pod B, never to itself');
    }
    serve(f, vip, [POD_A]);
    fromNic(request(f, vip, { client: POD_A.v4 }).frame, 'NODE_DROP_HAIRPIN', TcAction.SHOT);
  });

  test('an entry whose pods all drain takes no new flow; its flows go on', (t) => {
    if (!requireKernel(t)) return;
    const f = FAMILIES[0]!;
    const vip = '198.19.0.41';
    serve(f, vip, [POD_A]);
    const known = request(f, vip);
    fromNic(known.frame, f.reason);
    serve(f, vip, []);
    fromNic(request(f, vip).frame, 'NODE_DROP_NO_POD', TcAction.SHOT);
    const later = request(f, vip, { sport: known.packet.sport, syn: false, ack: true });
    deliveredTo(f, later.packet, fromNic(later.frame, f.reason), [POD_A]);
  });

  test('hashing without the source port: one client\'s flows all go to one pod', (t) => {
    if (!requireKernel(t)) return;
    const f = FAMILIES[0]!;
    const vip = '198.19.0.42';
    serve(f, vip, [POD_A, POD_B], { hashNoSrcPort: true });
    const got = new Set<number>();
    for (let i = 0; i < SPREAD_FLOWS; i++) {
      const n = request(f, vip);
      got.add(deliveredTo(f, n.packet, fromNic(n.frame, f.reason), [POD_A, POD_B]));
    }
    assert.equal(got.size, 1, 'every flow of the client to the same pod');
  });

  test('UDP, and weights as slots: a pod in three slots of four gets most new flows', (t) => {
    if (!requireKernel(t)) return;
    const f = FAMILIES[0]!;
    const vip = '198.19.0.43';
    serve(f, vip, [POD_A, POD_A, POD_A, POD_B], { proto: IPPROTO_UDP });
    const count = [0, 0];
    for (let i = 0; i < SPREAD_FLOWS; i++) {
      const n = request(f, vip, { proto: 'udp', syn: false });
      count[deliveredTo(f, n.packet, fromNic(n.frame, f.reason), [POD_A, POD_B])]!++;
    }
    assert.ok(count[0]! > count[1]!, `pod A (weight 3) got ${count[0]}, pod B (weight 1) ${count[1]}`);
  });

  test('where the node would not simply forward to the pod: back out of the NIC dropped, the rest to the stack translated', (t) => {
    if (!requireKernel(t)) return;
    const f = FAMILIES[0]!;
    const cases: [string, { v4: string; v6: string }, BackendReason, number, Partial<PacketSpec>][] = [
      ['a pod the node routes out of its NIC (gone)', ELSEWHERE, 'NODE_DROP_NOT_LOCAL', TcAction.SHOT, {}],
      ['a blackholed pod address', BLACKHOLED, 'NODE_TO_STACK_NO_ROUTE', TcAction.NEXT, {}],
      ['larger than the pod veth\'s MTU', NARROW, 'NODE_TO_STACK_FRAG_NEEDED', TcAction.NEXT, { payload: LARGE_PAYLOAD }],
    ];
    cases.forEach(([what, pod, reason, verdict, change], i) => {
      const vip = `198.19.0.${50 + i}`;
      serve(f, vip, [pod]);
      const { packet, frame } = request(f, vip, change);
      const out = fromNic(frame, reason, verdict);
      if (verdict === TcAction.NEXT) assert.doesNotThrow(() => deliveredTo(f, packet, out, [pod]), `${what}: translated for the stack`);
    });
  });

  test('what is not for a node entry passes byte for byte', (t) => {
    if (!requireKernel(t)) return;
    const f = FAMILIES[0]!;
    serve(f, '198.19.0.60', [POD_A]);
    const syn = (dst: string, dport = VIP_PORT): PacketSpec => ({ src: CLIENT.v4, dst, proto: 'tcp', sport: nextClientPort++, dport, syn: true });
    const cases: [string, Buffer, BackendReason][] = [
      ['the node\'s own traffic', buildPacket(syn(UPLINK.v4, 22)), 'NODE_PASS_NOT_ENCAP'],
      ['a tunnel packet to a pod\'s address (Pod addressing: the veth\'s program takes it)',
        encapsulate(buildPacket(syn('198.19.0.60')), BALANCER.v4, POD_A.v4), 'NODE_PASS_NO_SERVICE'],
      ['to the node\'s address, for a VIP port no local pod serves', encapsulate(buildPacket(syn('198.19.0.60', 443)), BALANCER.v4, UPLINK.v4),
        'NODE_PASS_NO_SERVICE'],
      ['to the node\'s address, an inner fragment', encapsulate(buildPacket({ ...syn('198.19.0.60'), proto: 'udp', fragment: { more: true, offset: 0 } }),
        BALANCER.v4, UPLINK.v4), 'NODE_PASS_FRAGMENT'],
      ['an outer fragment', buildPacket({ src: BALANCER.v6, dst: UPLINK.v6, proto: 4, fragment: { more: true, offset: 0 }, payload: Buffer.alloc(40) }),
        'NODE_PASS_FRAGMENT'],
    ];
    for (const [what, frame, reason] of cases) assert.ok(fromNic(frame, reason, TcAction.NEXT).equals(frame), what);
  });

  test('slots: the map holds at most NODE_SVC_SLOTS, all of the VIP\'s family', () => {
    const ip = (t: string): IpAddress => parseIp(t);
    const codec = BACKEND_MAPS.nodeServices.value;
    const value: BackendNodeSvc = { family: FAMILY_V6, slots: [ip(POD_A.v6), ip(POD_B.v6)], hashNoSrcPort: true };
    assert.deepEqual(codec.decode(codec.encode(value)), value);
    assert.throws(() => codec.encode({ family: FAMILY_V4, slots: Array(NODE_SVC_SLOTS + 1).fill(ip(POD_A.v4)), hashNoSrcPort: false }), /at most/);
    assert.throws(() => codec.encode({ family: FAMILY_V4, slots: [ip(POD_A.v6)], hashNoSrcPort: false }), /not an IPv4/);
  });
});
