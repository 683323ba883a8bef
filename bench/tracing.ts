/**
 * What tracing costs the balancer program, ns per packet through
 * BPF_PROG_TEST_RUN (same method as the packet paths in dataplane.ts: runs of
 * repeat=1 timed by the kernel, rounds interleaved across cases), against
 * tracing off measured in the same run.
 */
import { fileURLToPath } from 'node:url';
import { u32Key } from '../src/bpf/structs.js';
import type { Reason } from '../src/bpf/consts.js';
import { type LoadedBalancer, loadBalancer } from '../src/bpf/programs.js';
import { RingBufferReader } from '../src/libbpf/ring-buffer.js';
import { testRun } from '../src/libbpf/test-run.js';
import { encodeTraceConfig, type TraceMatch, type TraceRule } from '../src/bpf/trace-structs.js';
import { readReasons, readTraceCounters } from '../src/agent/dataplane/counters.js';
import { Dataplane } from '../src/agent/dataplane/dataplane.js';
import { parseIp } from '../src/lib/ip.js';
import { ENCAP } from '../test/support/balancer-harness.js';
import { buildPacket } from '../test/support/packets.js';
import { median } from './stats.js';

const ROUNDS = Number(process.env.XDPLB_BENCH_ROUNDS ?? 7);
const RUNS_PER_ROUND = Number(process.env.XDPLB_BENCH_RUNS ?? 20_000);
/** Drain the ring this often: it holds ~6800 full records. */
const DRAIN_EVERY = 4000;
const PAYLOAD = Buffer.alloc(64, 0x61);
const UNLIMITED = 0xffffffff;
const NO_TRACE_OBJECT = fileURLToPath(new URL('../../bench/bpf/build/balancer-notrace.bpf.o', import.meta.url));

type Counter = 'EMITTED' | 'RATE_LIMITED' | 'none';

interface Case {
  name: string;
  lb: LoadedBalancer;
  packet: Buffer;
  reason: Reason;
  rules: TraceRule[];
  /** The trace counter every run must move (none: no counter moves). */
  counts: Counter;
  samples: number[];
}

export function tracingCost(): string {
  const lb = loadBalancer();
  const noTrace = loadBalancer({}, NO_TRACE_OBJECT);
  const ring = new RingBufferReader('trace_ring', lb.maps.traceRing.fd);
  try {
    const vips = [
      { address: '198.19.0.10', port: 80, protocol: 'TCP' as const, reals: [1, 2, 3, 4].map((i) => ({ address: `198.18.1.${i}`, weight: 1 })) },
      { address: '198.19.0.10', port: 53, protocol: 'UDP' as const, reals: [1, 2].map((i) => ({ address: `198.18.1.${i}`, weight: 1 })) },
    ];
    const dp = new Dataplane(lb.maps);
    dp.apply({ encap: ENCAP, vips });
    new Dataplane(noTrace.maps).apply({ encap: ENCAP, vips });
    const web = dp.vipNum('198.19.0.10:80/TCP')!;
    const dns = dp.vipNum('198.19.0.10:53/UDP')!;
    const client = '198.18.100.1';
    const hit = buildPacket({ src: client, dst: '198.19.0.10', proto: 'tcp', sport: 40000, dport: 80, ack: true, payload: PAYLOAD });
    const notVip = buildPacket({ src: client, dst: '198.19.0.99', proto: 'tcp', sport: 40000, dport: 80, ack: true, payload: PAYLOAD });
    const otherClient = { family: 4 as const, bytes: parseIp('198.18.200.0').bytes, prefixLength: 24 };
    const c = (name: string, packet: Buffer, reason: Reason, matches: TraceMatch[], counts: Counter, cpuRate = UNLIMITED, prog = lb): Case =>
      ({ name, lb: prog, packet, reason, rules: matches.map((m) => ({ ...m, cpuRate })), counts, samples: [] });
    const cases: Case[] = [
      c('VIP packet (LRU hit), tracing compiled out', hit, 'TX_ENCAP', [], 'none', 0, noTrace),
      c('VIP packet (LRU hit), tracing off', hit, 'TX_ENCAP', [], 'none'),
      c('VIP packet, tracing on for another VIP', hit, 'TX_ENCAP', [{ vipNum: dns }], 'none'),
      c('VIP packet, tracing on for another client prefix (8 rules)', hit, 'TX_ENCAP',
        Array.from({ length: 8 }, () => ({ client: otherClient })), 'none'),
      c('VIP packet, tracing on for this VIP: record written', hit, 'TX_ENCAP', [{ vipNum: web }], 'EMITTED'),
      c('VIP packet, tracing on for this VIP: over the rate limit', hit, 'TX_ENCAP', [{ vipNum: web }], 'RATE_LIMITED', 0),
      c('non-VIP packet (XDP_PASS), tracing compiled out', notVip, 'PASS_NOT_VIP', [], 'none', 0, noTrace),
      c('non-VIP packet (XDP_PASS), tracing off', notVip, 'PASS_NOT_VIP', [], 'none'),
      c('non-VIP packet, tracing on for a VIP', notVip, 'PASS_NOT_VIP', [{ vipNum: web }], 'none'),
    ];
    for (const p of [lb, noTrace]) testRun(p.progFd, hit); // the flow is in the connection table from here on
    const durations = new Array<number>(RUNS_PER_ROUND);
    for (let r = 0; r < ROUNDS; r++) {
      for (const k of cases) {
        const m = k.lb.maps;
        for (let i = 0; i < k.rules.length; i++) m.traceBudget.update(u32Key(i), Buffer.alloc(m.traceBudget.lookupSize));
        m.traceCtl.update(u32Key(0), encodeTraceConfig(k.rules));
        ring.consume();
        const before = readReasons(m)[k.reason];
        const traceBefore = readTraceCounters(m);
        for (let i = 0; i < RUNS_PER_ROUND; i++) {
          durations[i] = testRun(k.lb.progFd, k.packet).durationNs;
          if (i % DRAIN_EVERY === DRAIN_EVERY - 1) ring.consume(); // outside the timed run
        }
        const counted = readReasons(m)[k.reason] - before;
        const traceAfter = readTraceCounters(m);
        const moved = (['EMITTED', 'RATE_LIMITED', 'RING_FULL'] as const).filter((n) => traceAfter[n] !== traceBefore[n]);
        const expected = k.counts === 'none' ? [] : [k.counts];
        if (counted !== BigInt(RUNS_PER_ROUND) || moved.join() !== expected.join() ||
            (k.counts !== 'none' && traceAfter[k.counts] - traceBefore[k.counts] !== BigInt(RUNS_PER_ROUND))) {
          throw new Error(`${k.name}: ${counted} runs counted ${k.reason}, trace counters moved: ${moved.join(', ') || 'none'}; ` +
            'the benchmark is not timing the path it names');
        }
        k.samples.push(median(durations));
      }
    }
    lb.maps.traceCtl.update(u32Key(0), encodeTraceConfig([]));
    const base = (k: Case) => median(cases.find((x) => x.lb === noTrace && x.packet === k.packet)!.samples);
    const rows = cases.map((k) => {
      const m = median(k.samples);
      return `| ${k.name} | ${m} | ${Math.min(...k.samples)}–${Math.max(...k.samples)} | ${(m / base(k)).toFixed(2)}x |`;
    });
    return [
      `Tracing cost: ${ROUNDS} rounds x ${RUNS_PER_ROUND} runs of repeat=1 per case, rounds interleaved; median per round, then median of rounds; ${PAYLOAD.length}-byte payload. Every run is checked: its reason counted, and exactly the named trace counter moved (records written, or rate-limited).`,
      '',
      '| packet, tracing state | median ns/packet | range of round medians | vs tracing compiled out (same packet) |',
      '| --- | ---: | ---: | ---: |',
      ...rows,
    ].join('\n');
  } finally {
    ring.close();
    lb.object.close();
    noTrace.object.close();
  }
}
