/**
 * The backend programs (bpf/backend.bpf.c) per packet, both directions,
 * beside tc floors measured in the same run (bench/bpf/backend-floors.bpf.c).
 *
 * Method as for the balancer's packet paths (bench/dataplane.ts): many
 * BPF_PROG_TEST_RUN runs of repeat=1, each on the original frame (with
 * repeat>1 the to-pod program would decapsulate its own output), timed by the
 * kernel; every timed run is checked against the reason counters. The runs
 * happen in a namespace standing in for the node (test/support's), as
 * packets received on a pod's veth: the from-pod program routes each reply
 * with the namespace's routes (a test run redirects nothing).
 */
import { fileURLToPath } from 'node:url';
import { IPPROTO_TCP, type BackendReason } from '../src/bpf/consts.js';
import { BpfObject } from '../src/libbpf/bpf-object.js';
import { loadBackend } from '../src/bpf/programs.js';
import { testRun } from '../src/libbpf/test-run.js';
import { readBackendReasons } from '../src/agent/dataplane/counters.js';
import { parseIp } from '../src/lib/ip.js';
import { addPodService } from '../test/support/backend.js';
import { createBackendNodeNetns, NODE } from '../test/support/backend-node-netns.js';
import { buildPacket, encapsulate } from '../test/support/packets.js';
import { median } from './stats.js';
import { type TimedCase, timeRounds } from './test-run-rounds.js';

const FLOORS_OBJECT = fileURLToPath(new URL('../../bench/bpf/build/backend-floors.bpf.o', import.meta.url));
const ROUNDS = Number(process.env.XDPLB_BENCH_ROUNDS ?? 7);
const RUNS_PER_ROUND = Number(process.env.XDPLB_BENCH_RUNS ?? 20_000);
const PAYLOAD = Buffer.alloc(64, 0x61);

type Floor = 'next' | 'flow' | 'lookupsDecap';

interface Case extends TimedCase<BackendReason> {
  /** The floor doing the same map work (and decap) as this path. */
  floor?: Floor;
}

const POD = { v4: '198.18.1.10', v6: '2001:db8:1::10' };
const CLIENT = { v4: '198.18.100.1', v6: '2001:db8:100::1' };
const VIP = { v4: '198.19.0.10', v6: '2001:db8:19::10' };
const BALANCER = { v4: '198.18.0.1', v6: '2001:db8::1' };
const TARGET_PORT = 8080;

export function backendPaths(): string {
  const b = loadBackend();
  const floors = BpfObject.load(FLOORS_OBJECT, [{ name: 'floor_svcs', perCpu: false }, { name: 'floor_flows', perCpu: false }]);
  const { ns, runOpts } = createBackendNodeNetns(`xdplb-bench-bk-${process.pid}`);
  try {
    for (const f of ['v4', 'v6'] as const) {
      addPodService(b.maps, { vip: parseIp(VIP[f]), vipPort: 80, proto: IPPROTO_TCP, pod: parseIp(POD[f]), targetPort: TARGET_PORT });
    }
    floors.map('floor_svcs').update(Buffer.alloc(40), Buffer.alloc(20));
    floors.map('floor_flows').update(Buffer.alloc(40), Buffer.alloc(20));
    const request = (f: 'v4' | 'v6', src = CLIENT[f], sport = 40000) =>
      encapsulate(buildPacket({ src, dst: VIP[f], proto: 'tcp', sport, dport: 80, ack: true, payload: PAYLOAD }), BALANCER[f], POD[f]);
    const reply = (f: 'v4' | 'v6', dst = CLIENT[f]) =>
      buildPacket({ src: POD[f], dst, proto: 'tcp', sport: TARGET_PORT, dport: 40000, ack: true, payload: PAYLOAD });
    const one = (p: Buffer) => () => [p];
    // A different client network per round: every packet is a flow the table has not seen.
    const newFlows = (round: number) => Array.from({ length: RUNS_PER_ROUND }, (_, i) =>
      request('v4', `198.18.${110 + round}.${i & 255}`, 1024 + (i >> 8)));
    const cases: Case[] = [
      { name: 'floor: TCX_NEXT only', fd: floors.programFd('floor_tc_next'), packets: one(request('v4')), samples: [] },
      { name: 'floor: flow table lookup', fd: floors.programFd('floor_tc_flow'), packets: one(reply('v4')), samples: [] },
      { name: 'floor: service + flow lookups + remove IPv4 header', fd: floors.programFd('floor_tc_lookups_decap'),
        packets: one(request('v4')), samples: [] },
      { name: 'floor: service + flow lookups + remove IPv6 header', fd: floors.programFd('floor_tc_lookups_decap'),
        packets: one(request('v6')), samples: [] },
      { name: 'to pod: IPv4 in IPv4, flow recorded', fd: b.toPodFd, packets: one(request('v4')), reason: 'TO_POD_V4_IN_V4',
        floor: 'lookupsDecap', samples: [] },
      { name: 'to pod: IPv6 in IPv6, flow recorded', fd: b.toPodFd, packets: one(request('v6')), reason: 'TO_POD_V6_IN_V6',
        floor: 'lookupsDecap', samples: [] },
      { name: 'to pod: IPv4 in IPv4, new flow (entry inserted)', fd: b.toPodFd, packets: newFlows, reason: 'TO_POD_V4_IN_V4',
        floor: 'lookupsDecap', samples: [] },
      { name: 'from pod: IPv4 reply rewritten, routed, redirected', fd: b.fromPodFd, packets: one(reply('v4')), reason: 'REPLY_REWRITTEN', floor: 'flow',
        samples: [] },
      { name: 'from pod: IPv6 reply rewritten, routed, redirected', fd: b.fromPodFd, packets: one(reply('v6')), reason: 'REPLY_REWRITTEN', floor: 'flow',
        samples: [] },
      { name: 'from pod: IPv4 answer to a probe, passed (no flow)', fd: b.fromPodFd, packets: one(reply('v4', NODE.v4)),
        reason: 'PASS_NO_FLOW', floor: 'flow', samples: [] },
    ];
    ns.enter(); // this thread's test runs look routes up there
    try {
      for (const k of cases) testRun(k.fd, k.packets(-1)[0]!, runOpts); // records the flows the reply cases answer
      timeRounds(cases, ROUNDS, RUNS_PER_ROUND, () => readBackendReasons(b.maps), runOpts);
    } finally {
      ns.leave();
    }
    const med = new Map(cases.map((k) => [k.name, median(k.samples)]));
    const next = med.get('floor: TCX_NEXT only')!;
    const floorOf = (k: Case): number => k.floor === 'flow' ? med.get('floor: flow table lookup')!
      : med.get(`floor: service + flow lookups + remove ${k.name.includes('IPv6 in IPv6') ? 'IPv6' : 'IPv4'} header`)!;
    const rows = cases.map((k) => {
      const m = med.get(k.name)!;
      const vsNext = k.name === 'floor: TCX_NEXT only' ? '' : `${(m / next).toFixed(2)}x`;
      const vsWork = k.floor ? `${(m / floorOf(k)).toFixed(2)}x` : '';
      return `| ${k.name} | ${m} | ${Math.min(...k.samples)}–${Math.max(...k.samples)} | ${vsNext} | ${vsWork} |`;
    });
    return [
      `Backend program paths: ${ROUNDS} rounds x ${RUNS_PER_ROUND} runs of repeat=1 per case, rounds interleaved across cases; the kernel's duration of each run; median per round, then median of rounds; TCP, ${PAYLOAD.length}-byte payload.`,
      '',
      '| path | median ns/packet | range of round medians | vs TCX_NEXT floor | vs same-work floor |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows,
    ].join('\n');
  } finally {
    b.object.close();
    floors.close();
    ns.remove();
  }
}
