/**
 * The backend program (bpf/backend.bpf.c) on BPF_PROG_TEST_RUN: toward a pod,
 * a tunnel packet of each family comes out as the packet the pod would get
 * from the client directly (outer header gone, VIP:80 become pod:8080,
 * checksums valid); from the pod, its replies come out as from VIP:80;
 * everything else is left byte for byte as it was.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type LoadedBackend, loadBackend } from '../../src/bpf/programs.js';
import type { BackendReason } from '../../src/bpf/consts.js';
import { IPPROTO_TCP, IPPROTO_UDP } from '../../src/bpf/consts.js';
import { parseIp } from '../../src/lib/ip.js';
import { TcAction, testRun } from '../../src/libbpf/test-run.js';
import { addPodService, expectCounted } from '../support/backend.js';
import { requireKernel } from '../support/kernel.js';
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
const VIP_PORT = 80;
const TARGET_PORT = 8080;
/** The IPv4-in-IPv6 VIP's target port: (pod, 8080, TCP) already answers as VIP4:80. */
const TARGET_PORT_OVER_V6 = 8081;
const UDP_VIP_PORT = 53;
const UDP_TARGET_PORT = 5353;
const CLIENT_PORT = 40000;
const PAYLOAD = Buffer.from('GET / HTTP/1.0\r\n\r\n');

interface FamilyCase {
  name: string;
  client: string;
  vip: string;
  pod: string;
  targetPort: number;
  outerSrc: string;
  outerDst: string;
  reason: BackendReason;
}

const FAMILIES: FamilyCase[] = [
  { name: 'IPv4 in IPv4', client: CLIENT4, vip: VIP4, pod: POD4, targetPort: TARGET_PORT, outerSrc: BALANCER4, outerDst: POD4,
    reason: 'TO_POD_V4_IN_V4' },
  { name: 'IPv6 in IPv6', client: CLIENT6, vip: VIP6, pod: POD6, targetPort: TARGET_PORT, outerSrc: BALANCER6, outerDst: POD6,
    reason: 'TO_POD_V6_IN_V6' },
  { name: 'IPv4 in IPv6', client: CLIENT4, vip: VIP4_OVER_V6, pod: POD4, targetPort: TARGET_PORT_OVER_V6, outerSrc: BALANCER6,
    outerDst: POD6, reason: 'TO_POD_V4_IN_V6' },
];

describe('backend program', () => {
  let b: LoadedBackend;
  before(() => {
    if (process.getuid?.() !== 0) return;
    b = loadBackend();
    for (const f of FAMILIES) {
      addPodService(b.maps, { vip: parseIp(f.vip), vipPort: VIP_PORT, proto: IPPROTO_TCP, pod: parseIp(f.pod),
        targetPort: f.targetPort, tunnelDst: parseIp(f.outerDst) });
    }
    addPodService(b.maps, { vip: parseIp(VIP4), vipPort: UDP_VIP_PORT, proto: IPPROTO_UDP, pod: parseIp(POD4),
      targetPort: UDP_TARGET_PORT });
  });
  after(() => b?.object.close());

  /** Runs a program on a frame; checks the one counter it moved and the verdict. */
  function run(progFd: number, frame: Buffer, reason: BackendReason, verdict: number = TcAction.NEXT): Buffer {
    const r = expectCounted(b.maps, reason, () => testRun(progFd, frame));
    assert.equal(r.action, verdict, `verdict for ${reason}`);
    return r.output;
  }
  const toPod = (frame: Buffer, reason: BackendReason, verdict?: number) => run(b.toPodFd, frame, reason, verdict);
  const fromPod = (frame: Buffer, reason: BackendReason, verdict?: number) => run(b.fromPodFd, frame, reason, verdict);

  function assertValid(frame: Buffer): void {
    assert.deepEqual(checksumsValid(frame.subarray(ETH_HLEN)), { ip: true, l4: true }, 'checksums recomputed by the test');
  }

  for (const f of FAMILIES) {
    const request: PacketSpec = { src: f.client, dst: f.vip, proto: 'tcp', sport: CLIENT_PORT, dport: VIP_PORT, syn: true,
      payload: PAYLOAD };
    const reply: PacketSpec = { src: f.pod, dst: f.client, proto: 'tcp', sport: f.targetPort, dport: CLIENT_PORT, syn: true,
      ack: true, payload: PAYLOAD };

    test(`${f.name}: the pod gets the client's packet to pod:${f.targetPort}, outer header gone`, (t) => {
      if (!requireKernel(t)) return;
      const out = toPod(encapsulate(buildPacket(request), f.outerSrc, f.outerDst), f.reason);
      const expected = buildPacket({ ...request, dst: f.pod, dport: f.targetPort });
      assert.equal(out.toString('hex'), expected.toString('hex'));
      assertValid(out);
    });

    test(`${f.name}: the pod's reply leaves as from ${f.vip}:${VIP_PORT}`, (t) => {
      if (!requireKernel(t)) return;
      const out = fromPod(buildPacket(reply), 'REPLY_REWRITTEN');
      const expected = buildPacket({ ...reply, src: f.vip, sport: VIP_PORT });
      assert.equal(out.toString('hex'), expected.toString('hex'));
      assertValid(out);
    });
  }

  test('UDP both ways', (t) => {
    if (!requireKernel(t)) return;
    const request: PacketSpec = { src: CLIENT4, dst: VIP4, proto: 'udp', sport: CLIENT_PORT, dport: UDP_VIP_PORT, payload: PAYLOAD };
    const out = toPod(encapsulate(buildPacket(request), BALANCER4, POD4), 'TO_POD_V4_IN_V4');
    assert.equal(out.toString('hex'), buildPacket({ ...request, dst: POD4, dport: UDP_TARGET_PORT }).toString('hex'));
    assertValid(out);
    const reply: PacketSpec = { src: POD4, dst: CLIENT4, proto: 'udp', sport: UDP_TARGET_PORT, dport: CLIENT_PORT, payload: PAYLOAD };
    const back = fromPod(buildPacket(reply), 'REPLY_REWRITTEN');
    assert.equal(back.toString('hex'), buildPacket({ ...reply, src: VIP4, sport: UDP_VIP_PORT }).toString('hex'));
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

  test('from the pod, its own connections pass byte for byte', (t) => {
    if (!requireKernel(t)) return;
    const own = buildPacket({ src: POD4, dst: CLIENT4, proto: 'tcp', sport: 40001, dport: 443, syn: true });
    const ownData = buildPacket({ src: POD4, dst: CLIENT4, proto: 'tcp', sport: 40001, dport: 443, ack: true, payload: PAYLOAD });
    const ownUdp = buildPacket({ src: POD4, dst: CLIENT4, proto: 'udp', sport: UDP_TARGET_PORT + 1, dport: UDP_VIP_PORT });
    const fromTarget = buildPacket({ src: POD4, dst: CLIENT4, proto: 'tcp', sport: TARGET_PORT, dport: 443, syn: true });
    const cases: [string, Buffer, BackendReason][] = [
      ['a connection from a port that is not a target port', own, 'PASS_NOT_REPLY'],
      ['its data', ownData, 'PASS_NOT_REPLY'],
      ['a datagram from another port', ownUdp, 'PASS_NOT_REPLY'],
      ['a connection opened from a target port (a bare SYN)', fromTarget, 'PASS_OWN_SYN'],
    ];
    for (const [what, frame, reason] of cases) {
      assert.ok(fromPod(frame, reason).equals(frame), what);
    }
  });

  test('a pod\'s own connection to a VIP it backs, balanced back to it, is dropped', (t) => {
    if (!requireKernel(t)) return;
    const hairpin = buildPacket({ src: POD4, dst: VIP4, proto: 'tcp', sport: CLIENT_PORT, dport: VIP_PORT, syn: true });
    toPod(encapsulate(hairpin, BALANCER4, POD4), 'DROP_HAIRPIN', TcAction.SHOT);
  });
});
