/**
 * Random and mutated packets through the balancer: the verdict is always
 * PASS, DROP or TX; a passed packet is untouched; every TX is a well-formed
 * encapsulation of a packet for a VIP, to one of that VIP's reals.
 * XDPLB_FUZZ_PACKETS (default 100000) and XDPLB_FUZZ_SEED set the run.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { XdpAction } from '../../src/libbpf/test-run.js';
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { canonicalIp } from '../../src/lib/ip.js';
import { type BalancerHarness, ENCAP, useBalancerHarness } from '../support/balancer-harness.js';
import { requireKernel } from '../support/kernel.js';
import { buildPacket, ETH_HLEN, innerFlow, IPV4_HLEN, IPV6_HLEN, macBytes, parseEncapsulated, type PacketSpec } from '../support/packets.js';
import { parseIcmp } from '../support/icmp-packets.js';
import { ICMP_PROTO } from '../../src/bpf/consts.js';

/**
 * A TX back toward the sender, not to a real: an echo reply, or a too-big
 * answer to a packet that did not fit. Either comes from the packet's
 * destination to its source, with checksums that add up.
 */
function checkIcmpAnswer(i: number, pkt: Buffer, out: Buffer): void {
  const at = `packet ${i}: ${pkt.toString('hex')}`;
  assert.deepEqual([out.subarray(0, 6), out.subarray(6, 12)], [pkt.subarray(6, 12), pkt.subarray(0, 6)], `${at}: back where it came from`);
  const q = innerFlow(pkt.subarray(ETH_HLEN));
  const a = innerFlow(out.subarray(ETH_HLEN));
  assert.deepEqual([a.src, a.dst], [q.dst, q.src], `${at}: from the VIP to the sender`);
  const icmp = parseIcmp(out);
  assert.ok(icmp.ipChecksumOk && icmp.checksumOk, `${at}: checksums`);
  const [type, code] = [icmp.msg[0], icmp.msg[1]];
  const echo = type === (a.family === 4 ? ICMP_PROTO.ICMP_ECHO_REPLY : ICMP_PROTO.ICMPV6_ECHO_REPLY) && code === 0;
  const tooBig = a.family === 4 ? type === ICMP_PROTO.ICMP_DEST_UNREACH && code === ICMP_PROTO.ICMP_FRAG_NEEDED :
    type === ICMP_PROTO.ICMPV6_PKT_TOOBIG && code === 0;
  assert.ok(echo || tooBig, `${at}: ICMP type ${type} code ${code}`);
  if (echo) assert.equal(out.length, pkt.length, `${at}: an echo reply is its request rewritten`);
  else assert.ok(q.l3Len + IPV6_HLEN > ENCAP.maxPktSize, `${at}: a too-big answer to a packet that fits even the larger outer header`);
}

const PACKETS = Number(process.env.XDPLB_FUZZ_PACKETS ?? 100_000);
const SEED = Number(process.env.XDPLB_FUZZ_SEED ?? 0x5eed);

/** mulberry32: small, seedable, good enough to pick test inputs. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]! };
}

const VIPS: VipSpec[] = [
  { address: '198.19.3.1', port: 80, protocol: 'TCP', reals: [{ address: '198.18.10.1', weight: 1 }, { address: '198.18.10.2', weight: 2 }] },
  { address: '198.19.3.1', port: 53, protocol: 'UDP', reals: [{ address: '198.18.10.3', weight: 1 }] },
  { address: '198.19.3.2', port: 0, protocol: 'UDP', hashNoSrcPort: true, reals: [{ address: '2001:db8:10::1', weight: 1 }] },
  { address: '198.19.3.3', port: 443, protocol: 'TCP', reals: [] },
  { address: '2001:db8:19:3::1', port: 443, protocol: 'TCP', reals: [{ address: '2001:db8:10::2', weight: 1 }, { address: '2001:db8:10::3', weight: 1 }] },
  { address: '2001:db8:19:3::1', port: 0, protocol: 'UDP', lruBypass: true, reals: [{ address: '2001:db8:10::4', weight: 1 }] },
];
const PROTO = { TCP: 6, UDP: 17 } as const;

function vipReals(dst: string, dport: number, proto: number): string[] | null {
  const match = (port: number) =>
    VIPS.find((v) => canonicalIp(v.address) === canonicalIp(dst) && v.port === port && PROTO[v.protocol] === proto);
  const v = match(dport) ?? match(0);
  return v ? v.reals.map((r) => canonicalIp(r.address)) : null;
}

let h: BalancerHarness;
useBalancerHarness(VIPS, (x) => (h = x));

test(`fuzz: ${PACKETS} random and mutated packets (seed ${SEED})`, (t) => {
  if (!requireKernel(t)) return;
  const r = rng(SEED);
  const dst4 = ['198.19.3.1', '198.19.3.2', '198.19.3.3', '198.19.3.9'];
  const dst6 = ['2001:db8:19:3::1', '2001:db8:19:3::9'];
  const ports = [80, 53, 443, 0, 1, 8080, 65535];
  const counts = { TX: 0, PASS: 0, DROP: 0 };
  const reasonsBefore = h.reasons();

  for (let i = 0; i < PACKETS; i++) {
    const v6 = r.next() < 0.4;
    const spec: PacketSpec = {
      src: v6 ? `2001:db8:200::${r.int(0xffff).toString(16)}` : `198.18.${200 + r.int(50)}.${r.int(256)}`,
      dst: v6 ? r.pick(dst6) : r.pick(dst4),
      proto: r.next() < 0.9 ? r.pick(['tcp', 'udp'] as const) : r.pick([1, 58, 132, 47]),
      sport: r.int(65536),
      dport: r.pick(ports),
      syn: r.next() < 0.3,
      ack: r.next() < 0.7,
      ttl: r.int(256),
      tos: r.int(256),
      df: r.next() < 0.5,
      payload: Buffer.alloc(r.int(r.next() < 0.05 ? 1500 : 120), r.int(256)),
      fragment: r.next() < 0.05 ? { more: r.next() < 0.5, offset: r.int(8) } : undefined,
      hopByHop: v6 && r.next() < 0.1,
    };
    let pkt = buildPacket(spec);
    // Mutations: flipped bytes in the headers, truncation, garbage appended.
    const m = r.next();
    if (m < 0.3) {
      pkt = Buffer.from(pkt);
      for (let k = 0, n = 1 + r.int(4); k < n; k++) pkt[r.int(Math.min(pkt.length, 80))] = r.int(256);
    } else if (m < 0.45) {
      pkt = pkt.subarray(0, ETH_HLEN + r.int(pkt.length - ETH_HLEN + 1));
    } else if (m < 0.5) {
      pkt = Buffer.concat([pkt, Buffer.alloc(1 + r.int(40), r.int(256))]);
    }

    const res = h.run(pkt);
    if (res.action === XdpAction.PASS) {
      counts.PASS++;
      assert.ok(res.output.equals(pkt), `packet ${i} passed but modified: ${pkt.toString('hex')}`);
    } else if (res.action === XdpAction.DROP) {
      counts.DROP++;
    } else if (res.action === XdpAction.TX && !res.output.subarray(0, 6).equals(macBytes(ENCAP.nextHopMac))) {
      counts.TX++;
      checkIcmpAnswer(i, pkt, res.output);
    } else if (res.action === XdpAction.TX) {
      counts.TX++;
      const e = parseEncapsulated(res.output);
      const hdr = e.outerFamily === 4 ? IPV4_HLEN : IPV6_HLEN;
      const inner = pkt.subarray(ETH_HLEN);
      assert.equal(res.output.length, pkt.length + hdr, `packet ${i}: output length`);
      assert.ok(e.inner.equals(inner), `packet ${i}: inner packet changed`);
      assert.ok(e.checksumOk, `packet ${i}: outer checksum`);
      assert.equal(e.dstMac, ENCAP.nextHopMac);
      assert.equal(e.srcMac, ENCAP.srcMac);
      const f = innerFlow(inner);
      assert.equal(e.outerLen, f.l3Len + hdr, `packet ${i}: outer length`);
      assert.ok(f.l3Len <= inner.length, `packet ${i}: TX of a packet shorter than its IP length`);
      const reals = vipReals(f.dst, f.dport, f.proto);
      assert.ok(reals, `packet ${i}: TX of a packet for no VIP (${f.dst}:${f.dport}/${f.proto}): ${pkt.toString('hex')}`);
      assert.ok(reals.includes(e.outerDst), `packet ${i}: sent to ${e.outerDst}, not a real of its VIP`);
      assert.equal(e.outerSrc, e.outerFamily === 4 ? ENCAP.srcV4 : canonicalIp(ENCAP.srcV6!));
    } else {
      assert.fail(`packet ${i}: verdict ${res.action}: ${pkt.toString('hex')}`);
    }
  }
  const reasonsAfter = h.reasons();
  const counted = Object.keys(reasonsAfter).reduce((n, k) => n + (reasonsAfter[k as keyof typeof reasonsAfter] - reasonsBefore[k as keyof typeof reasonsBefore]), 0n);
  assert.equal(counted, BigInt(PACKETS), 'every packet increments exactly one reason counter');
  t.diagnostic(`verdicts: ${JSON.stringify(counts)}`);
  for (const v of ['TX', 'PASS', 'DROP'] as const) assert.ok(counts[v] > PACKETS / 50, `too few ${v} verdicts to mean anything: ${JSON.stringify(counts)}`);
});
