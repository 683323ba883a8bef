/**
 * Dataplane benchmarks: ns per packet through BPF_PROG_TEST_RUN beside floors
 * measured in the same run, Maglev ring generation, and ring programming
 * (batch vs one element per syscall).
 *
 * Method for packet paths: many runs with repeat=1, each on the original
 * packet, timed by the kernel (the duration it reports for that one run).
 * Not repeat>1: each repetition would see the previous one's output. Not
 * live-frames mode either: on this kernel it resets only the frame pointers of
 * recycled pages, not their bytes, so from the 65th frame on an encapsulating
 * program reads its own earlier output (measured: 936 of 1000 runs counted
 * PASS_NOT_IP). Every timed run is checked against the reason counters.
 */
import { fileURLToPath } from 'node:url';
import { U32_BYTES } from '../src/bpf/structs.js';
import { ICMP_PROTO, RING_SIZE, type Reason } from '../src/bpf/consts.js';
import { BpfObject } from '../src/libbpf/bpf-object.js';
import { loadBalancer } from '../src/bpf/programs.js';
import { testRun } from '../src/libbpf/test-run.js';
import { readReasons } from '../src/agent/dataplane/counters.js';
import { Dataplane } from '../src/agent/dataplane/dataplane.js';
import { maglevRing } from '../src/lib/maglev.js';
import { ENCAP } from '../test/support/balancer-harness.js';
import { buildPacket } from '../test/support/packets.js';
import { connectionId, quicShortHeader } from '../test/support/quic-packets.js';
import { buildEcho, buildIcmpError, quoteOf } from '../test/support/icmp-packets.js';
import { median, timeMs } from './stats.js';
import { type TimedCase, timeRounds } from './test-run-rounds.js';

const FLOORS_OBJECT = fileURLToPath(new URL('../../bench/bpf/build/floors.bpf.o', import.meta.url));
const ROUNDS = Number(process.env.XDPLB_BENCH_ROUNDS ?? 7);
const RUNS_PER_ROUND = Number(process.env.XDPLB_BENCH_RUNS ?? 20_000);
const PAYLOAD = Buffer.alloc(64, 0x61);

interface Case extends TimedCase<Reason> {
  floor?: 'encap' | 'lookups' | 'pass';
}

export function packetPaths(): string {
  const lb = loadBalancer();
  const floors = BpfObject.load(FLOORS_OBJECT, [{ name: 'floor_vips', perCpu: false }, { name: 'floor_flows', perCpu: false }]);
  try {
    new Dataplane(lb.maps).apply({
      encap: ENCAP,
      vips: [
        { address: '198.19.0.10', port: 80, protocol: 'TCP', reals: [1, 2, 3, 4].map((i) => ({ address: `198.18.1.${i}`, weight: 1 })) },
        { address: '198.19.0.10', port: 53, protocol: 'UDP', reals: [1, 2].map((i) => ({ address: `198.18.1.${i}`, weight: 1 })) },
        { address: '2001:db8:19::10', port: 443, protocol: 'TCP', reals: [1, 2].map((i) => ({ address: `2001:db8:1::${i}`, weight: 1 })) },
        { address: '198.19.0.10', port: 443, protocol: 'UDP', quicConnectionIdRouting: true, reals: [1, 2].map((i) => ({ address: `198.18.1.${i}`, weight: 1, quicServerId: i })) },
      ],
    });
    const c = '198.18.100.1';
    const tcp4 = (syn: boolean) => buildPacket({ src: c, dst: '198.19.0.10', proto: 'tcp', sport: 40000, dport: 80, syn, ack: !syn, payload: PAYLOAD });
    const one = (p: Buffer) => () => [p];
    /** A router's "fragmentation needed" about the VIP's answer to tcp4's flow (warm in the table). */
    const fragNeeded = buildIcmpError({
      src: '198.18.50.1', dst: '198.19.0.10', type: ICMP_PROTO.ICMP_DEST_UNREACH, code: ICMP_PROTO.ICMP_FRAG_NEEDED, mtu: 1400,
      quoted: quoteOf(buildPacket({ src: '198.19.0.10', dst: c, proto: 'tcp', sport: 80, dport: 40000, ack: true, df: true, payload: PAYLOAD })),
    });
    // A different client network per round: every SYN is a flow the table has not seen.
    const newFlows = (round: number) => Array.from({ length: RUNS_PER_ROUND }, (_, i) =>
      buildPacket({ src: `198.18.${110 + round}.${i & 255}`, dst: '198.19.0.10', proto: 'tcp', sport: 1024 + (i >> 8), dport: 80, syn: true, payload: PAYLOAD }));
    // The first ACK of each of a round's new connections, their SYNs sent (untimed) when the round asks for its packets.
    const firstAcks = (round: number) => Array.from({ length: RUNS_PER_ROUND }, (_, i) => {
      const flow = { src: `198.18.${130 + round}.${i & 255}`, dst: '198.19.0.10', proto: 'tcp' as const, sport: 1024 + (i >> 8), dport: 80, payload: PAYLOAD };
      testRun(lb.progFd, buildPacket({ ...flow, syn: true }));
      return buildPacket({ ...flow, ack: true });
    });
    // Non-SYN packets of flows neither table knows (a flow the table lost, or ECMP moved here).
    const unknownFlows = (round: number) => Array.from({ length: RUNS_PER_ROUND }, (_, i) =>
      buildPacket({ src: `198.18.${150 + round}.${i & 255}`, dst: '198.19.0.10', proto: 'tcp', sport: 1024 + (i >> 8), dport: 80, ack: true, payload: PAYLOAD }));
    const zero = (n: number) => Buffer.alloc(n);
    floors.map('floor_vips').update(zero(20), zero(8));
    floors.map('floor_flows').update(zero(40), zero(4));
    const cases: Case[] = [
      { name: 'floor: XDP_TX only', fd: floors.programFd('floor_tx'), packets: one(tcp4(false)), samples: [] },
      { name: 'floor: add IPv4 header + XDP_TX', fd: floors.programFd('floor_encap'), packets: one(tcp4(false)), samples: [] },
      { name: 'floor: 2 hash lookups + add IPv4 header + XDP_TX', fd: floors.programFd('floor_lookups_encap'), packets: one(tcp4(false)), samples: [] },
      { name: 'floor: XDP_PASS only', fd: floors.programFd('floor_pass'), packets: one(tcp4(false)), samples: [] },
      { name: 'TCP non-SYN, LRU hit (IPv4)', fd: lb.progFd, packets: one(tcp4(false)), reason: 'TX_ENCAP', floor: 'encap', samples: [] },
      { name: 'UDP to IPv4 VIP, LRU hit', fd: lb.progFd, packets: one(buildPacket({ src: c, dst: '198.19.0.10', proto: 'udp', sport: 5000, dport: 53, payload: PAYLOAD })), reason: 'TX_ENCAP', floor: 'encap', samples: [] },
      { name: 'TCP non-SYN, LRU hit (IPv6 in IPv6)', fd: lb.progFd, packets: one(buildPacket({ src: '2001:db8:100::1', dst: '2001:db8:19::10', proto: 'tcp', sport: 40000, dport: 443, ack: true, payload: PAYLOAD })), reason: 'TX_ENCAP', floor: 'encap', samples: [] },
      { name: 'TCP SYN, known 5-tuple (ring, entry rewritten)', fd: lb.progFd, packets: one(tcp4(true)), reason: 'TX_ENCAP', floor: 'encap', samples: [] },
      { name: 'TCP SYN, new flow (ring, half-open entry inserted)', fd: lb.progFd, packets: newFlows, reason: 'TX_ENCAP', floor: 'encap', samples: [] },
      { name: 'TCP first ACK after a SYN (half-open hit, entry inserted)', fd: lb.progFd, packets: firstAcks, reason: 'TX_ENCAP', floor: 'encap', samples: [] },
      { name: 'TCP non-SYN, flow unknown (ring, entry inserted)', fd: lb.progFd, packets: unknownFlows, reason: 'TX_ENCAP', floor: 'encap', samples: [] },
      { name: 'QUIC short header, routed by its server id', fd: lb.progFd, packets: one(buildPacket({ src: c, dst: '198.19.0.10', proto: 'udp', sport: 5001, dport: 443, payload: quicShortHeader(connectionId(2)) })), reason: 'TX_ENCAP', floor: 'encap', samples: [] },
      { name: 'non-VIP packet, XDP_PASS', fd: lb.progFd, packets: one(buildPacket({ src: c, dst: '198.19.0.99', proto: 'tcp', sport: 40000, dport: 80, ack: true, payload: PAYLOAD })), reason: 'PASS_NOT_VIP', floor: 'pass', samples: [] },
      // What a VIP address gets beyond its ports (issue 18): answered, forwarded or dropped in XDP, never passed.
      { name: 'ICMP echo request to a VIP address, answered', fd: lb.progFd, packets: one(buildEcho({ src: c, dst: '198.19.0.10', payload: PAYLOAD })), reason: 'TX_ICMP_ECHO_REPLY', samples: [] },
      { name: 'ICMP error about a VIP flow, to its real (LRU hit)', fd: lb.progFd, packets: one(fragNeeded), reason: 'TX_ICMP_ERROR', floor: 'encap', samples: [] },
      { name: 'TCP to a VIP address on no VIP port, dropped', fd: lb.progFd, packets: one(buildPacket({ src: c, dst: '198.19.0.10', proto: 'tcp', sport: 40000, dport: 81, ack: true, payload: PAYLOAD })), reason: 'DROP_VIP_NO_PORT', samples: [] },
    ];
    for (const k of cases) testRun(k.fd, k.packets(-1)[0]!); // warms the connection table for the LRU-hit cases
    timeRounds(cases, ROUNDS, RUNS_PER_ROUND, () => readReasons(lb.maps));
    const med = new Map(cases.map((k) => [k.name, median(k.samples)]));
    const floorOf = {
      encap: med.get('floor: add IPv4 header + XDP_TX')!,
      lookups: med.get('floor: 2 hash lookups + add IPv4 header + XDP_TX')!,
      pass: med.get('floor: XDP_PASS only')!,
    };
    const rows = cases.map((k) => {
      const m = med.get(k.name)!;
      const ratio = !k.floor ? '' : k.floor === 'pass' ? `${(m / floorOf.pass).toFixed(2)}x` : `${(m / floorOf.encap).toFixed(2)}x`;
      const design = k.floor === 'encap' ? `${(m / floorOf.lookups).toFixed(2)}x` : '';
      return `| ${k.name} | ${m} | ${Math.min(...k.samples)}–${Math.max(...k.samples)} | ${ratio} | ${design} |`;
    });
    return [
      `Packet paths: ${ROUNDS} rounds x ${RUNS_PER_ROUND} runs of repeat=1 per case, rounds interleaved across cases; the kernel's duration of each run; median per round, then median of rounds; ${PAYLOAD.length}-byte payload.`,
      '',
      '| path | median ns/packet | range of round medians | vs encap floor (pass floor for PASS) | vs 2-lookup floor |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows,
    ].join('\n');
  } finally {
    lb.object.close();
    floors.close();
  }
}

export function maglevGeneration(): string {
  const rows: string[] = [];
  // Reference: filling the same number of slots round-robin (no hashing, no permutations).
  const roundRobin = () => {
    const ring = new Int32Array(RING_SIZE);
    for (let i = 0; i < RING_SIZE; i++) ring[i] = i % 100;
  };
  for (let i = 0; i < 5; i++) roundRobin(); // warm, as the ring generation is warmed below
  const reference = median(Array.from({ length: 5 }, () => timeMs(roundRobin)));
  for (const n of [10, 100, 1000]) {
    const backends = Array.from({ length: n }, (_, i) => ({ key: `198.18.${i >> 8}.${i & 255}`, weight: 1, value: i }));
    maglevRing(backends, RING_SIZE);
    const ms = median(Array.from({ length: 5 }, () => timeMs(() => maglevRing(backends, RING_SIZE))));
    rows.push(`| ${n} | ${ms.toFixed(2)} | ${(ms / reference).toFixed(0)}x |`);
  }
  return [
    `Maglev ring generation, ${RING_SIZE} slots, median of 5 (reference: a plain round-robin fill of the same slots, ${reference.toFixed(3)} ms).`,
    '',
    '| reals | ms | vs reference |',
    '| ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}

export function ringProgramming(): string {
  const lb = loadBalancer({ capacity: { connectionTable: 4096 } });
  try {
    const ring = lb.maps.ring;
    const keys = Buffer.alloc(RING_SIZE * U32_BYTES);
    const values = Buffer.alloc(RING_SIZE * U32_BYTES);
    for (let i = 0; i < RING_SIZE; i++) {
      keys.writeUInt32LE(i, i * U32_BYTES);
      values.writeUInt32LE(1 + (i % 100), i * U32_BYTES);
    }
    const batch = median(Array.from({ length: 5 }, () => timeMs(() => ring.updateBatch(keys, values, RING_SIZE))));
    const slots = new Uint32Array(RING_SIZE);
    let round = 0;
    // Every round writes every slot (values differ from what the map holds).
    const mmapped = median(Array.from({ length: 5 }, () => {
      round++;
      for (let i = 0; i < RING_SIZE; i++) slots[i] = 1 + ((i + round) % 100);
      return timeMs(() => ring.writeU32Slots(RING_SIZE, slots));
    }));
    const single = median(Array.from({ length: 5 }, () => timeMs(() => {
      for (let i = 0; i < RING_SIZE; i++) {
        ring.update(keys.subarray(i * U32_BYTES, (i + 1) * U32_BYTES), values.subarray(i * U32_BYTES, (i + 1) * U32_BYTES));
      }
    })));
    return [
      `Programming one whole ring (${RING_SIZE} slots) into the ring map, median of 5.`,
      '',
      '| method | ms | µs per slot |',
      '| --- | ---: | ---: |',
      `| bpf_map_update_batch, one call | ${batch.toFixed(2)} | ${((batch * 1000) / RING_SIZE).toFixed(3)} |`,
      `| bpf_map_update_elem, one call per slot | ${single.toFixed(2)} | ${((single * 1000) / RING_SIZE).toFixed(3)} |`,
      `| stores into the mmap()ed map (what the dataplane does) | ${mmapped.toFixed(2)} | ${((mmapped * 1000) / RING_SIZE).toFixed(3)} |`,
      '',
      `Batch is ${(single / batch).toFixed(1)}x faster than one call per slot; mmap ${(batch / mmapped).toFixed(0)}x faster than batch.`,
    ].join('\n');
  } finally {
    lb.object.close();
  }
}
