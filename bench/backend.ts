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
 * with the namespace's routes (a test run redirects nothing). Node
 * addressing's program (xdplb_backend_from_nic) runs there too, as on packets
 * received on the node's NIC (its uplink), one local pod per VIP.
 */
import { fileURLToPath } from 'node:url';
import { FAMILY_V4, FAMILY_V6, IPPROTO_TCP, type BackendReason } from '../src/bpf/consts.js';
import { BACKEND_MAPS, typedMap } from '../src/bpf/maps.js';
import { BpfObject } from '../src/libbpf/bpf-object.js';
import { loadBackend } from '../src/bpf/programs.js';
import { TcAction, testRun } from '../src/libbpf/test-run.js';
import { readBackendReasons } from '../src/agent/dataplane/counters.js';
import { parseIp } from '../src/lib/ip.js';
import { addPodService } from '../test/support/backend.js';
import { createBackendNodeNetns, NODE, UPLINK } from '../test/support/backend-node-netns.js';
import { buildPacket, encapsulate } from '../test/support/packets.js';
import { median } from './stats.js';
import { type TimedCase, timeRounds } from './test-run-rounds.js';

const FLOORS_OBJECT = fileURLToPath(new URL('../../bench/bpf/build/backend-floors.bpf.o', import.meta.url));
const ROUNDS = Number(process.env.XDPLB_BENCH_ROUNDS ?? 7);
const RUNS_PER_ROUND = Number(process.env.XDPLB_BENCH_RUNS ?? 20_000);
const PAYLOAD = Buffer.alloc(64, 0x61);

interface Case extends TimedCase<BackendReason> {
  /** The name of the floor doing the same map work (and decap) as this path. */
  floor?: string;
  /** The verdict its first run must return (the floors': that they did all their work). */
  verdict?: number;
}

const POD = { v4: '198.18.1.10', v6: '2001:db8:1::10' };
const CLIENT = { v4: '198.18.100.1', v6: '2001:db8:100::1' };
const VIP = { v4: '198.19.0.10', v6: '2001:db8:19::10' };
const BALANCER = { v4: '198.18.0.1', v6: '2001:db8::1' };
const TARGET_PORT = 8080;
type V = 'v4' | 'v6';
/** Node addressing: the tunnel kinds, each to its own VIP served by the one local pod. */
const NODE_KINDS = [
  { name: 'IPv4 in IPv4', inner: 'v4', outer: 'v4', vip: '198.19.0.20', reason: 'NODE_TO_POD_V4_IN_V4' },
  { name: 'IPv6 in IPv6', inner: 'v6', outer: 'v6', vip: '2001:db8:19::20', reason: 'NODE_TO_POD_V6_IN_V6' },
  { name: 'IPv4 in IPv6', inner: 'v4', outer: 'v6', vip: '198.19.0.22', reason: 'NODE_TO_POD_V4_IN_V6' },
] as const satisfies readonly { name: string; inner: V; outer: V; vip: string; reason: BackendReason }[];
/** struct backend_svc_key's vip_family, the one field the floors' keys set. */
const SVC_KEY_LEN = 40;
const SVC_KEY_VIP_FAMILY = 35;
const ENDPOINT_LEN = 20;
const NODE_SVC_LEN = 1036;
const ADDR_LEN = 20;

export function backendPaths(): string {
  const b = loadBackend();
  const floors = BpfObject.load(FLOORS_OBJECT, ['floor_svcs', 'floor_flows', 'floor_node_svcs', 'floor_node_flows']
    .map((name) => ({ name, perCpu: false })));
  const { ns, runOpts, nicRunOpts } = createBackendNodeNetns(`xdplb-bench-bk-${process.pid}`);
  try {
    for (const f of ['v4', 'v6'] as const) {
      addPodService(b.maps, { vip: parseIp(VIP[f]), vipPort: 80, proto: IPPROTO_TCP, pod: parseIp(POD[f]), targetPort: TARGET_PORT });
    }
    for (const k of NODE_KINDS) {
      addPodService(b.maps, { vip: parseIp(k.vip), vipPort: 80, proto: IPPROTO_TCP, pod: parseIp(POD[k.inner]), targetPort: TARGET_PORT });
      typedMap(BACKEND_MAPS.nodeServices, b.maps.nodeServices).set({ tunnelDst: parseIp(UPLINK[k.outer]), vip: parseIp(k.vip), vipPort: 80, proto: IPPROTO_TCP },
        { family: k.inner === 'v4' ? FAMILY_V4 : FAMILY_V6, slots: [parseIp(POD[k.inner])], hashNoSrcPort: false });
    }
    floors.map('floor_svcs').update(Buffer.alloc(SVC_KEY_LEN), Buffer.alloc(ENDPOINT_LEN));
    floors.map('floor_flows').update(Buffer.alloc(40), Buffer.alloc(20));
    // The node floors' entries, by the VIP's family: the pod (the real program's) that their route lookup finds behind the pods' veth.
    for (const [family, pod] of [[FAMILY_V4, POD.v4], [FAMILY_V6, POD.v6]] as const) {
      const key = Buffer.alloc(SVC_KEY_LEN);
      key[SVC_KEY_VIP_FAMILY] = family;
      const endpoint = Buffer.alloc(ENDPOINT_LEN);
      parseIp(pod).bytes.copy(endpoint, 0);
      endpoint.writeUInt16BE(TARGET_PORT, 16);
      endpoint[18] = IPPROTO_TCP;
      endpoint[19] = family;
      floors.map('floor_svcs').update(key, endpoint);
      floors.map('floor_node_svcs').update(key, Buffer.alloc(NODE_SVC_LEN));
    }
    floors.map('floor_node_flows').update(Buffer.alloc(40), Buffer.alloc(ADDR_LEN));
    const request = (f: 'v4' | 'v6', src = CLIENT[f], sport = 40000) =>
      encapsulate(buildPacket({ src, dst: VIP[f], proto: 'tcp', sport, dport: 80, ack: true, payload: PAYLOAD }), BALANCER[f], POD[f]);
    const reply = (f: 'v4' | 'v6', dst = CLIENT[f]) =>
      buildPacket({ src: POD[f], dst, proto: 'tcp', sport: TARGET_PORT, dport: 40000, ack: true, payload: PAYLOAD });
    const one = (p: Buffer) => () => [p];
    // A different client network per round: every packet is a flow the table has not seen.
    const newFlows = (round: number) => Array.from({ length: RUNS_PER_ROUND }, (_, i) =>
      request('v4', `198.18.${110 + round}.${i & 255}`, 1024 + (i >> 8)));
    // Node addressing: a client's packet to the VIP tunnelled to the node's address; a new flow is a SYN of a tuple not seen before.
    // The known flows: a client port of each kind's own (the pod's reply flow would otherwise be rewritten by each kind in turn).
    const toNode = (k: typeof NODE_KINDS[number], client: string = CLIENT[k.inner], syn = false) =>
      encapsulate(buildPacket({ src: client, dst: k.vip, proto: 'tcp', sport: 41000 + NODE_KINDS.indexOf(k), dport: 80, syn, ack: !syn, payload: PAYLOAD }),
        BALANCER[k.outer], UPLINK[k.outer]);
    const newNodeFlows = (k: typeof NODE_KINDS[number], n: number) => (round: number) => Array.from({ length: RUNS_PER_ROUND }, (_, i) =>
      toNode(k, k.inner === 'v4' ? `10.${n * 32 + round + 1}.${i >> 8}.${i & 255}` : `2001:db8:${(0x1000 + n * 32 + round + 1).toString(16)}::${i.toString(16)}`, true));
    const nodeFloor = (k: typeof NODE_KINDS[number], route: boolean) =>
      `floor: node lookups + remove ${k.name} header${route ? ' + route + redirect' : ''}`;
    const nic = { runOpts: nicRunOpts };
    const nodeCases: Case[] = NODE_KINDS.flatMap((k, n) => [
      { name: nodeFloor(k, false), fd: floors.programFd('floor_tc_node_decap'), packets: one(toNode(k)), verdict: TcAction.NEXT, ...nic, samples: [] },
      { name: nodeFloor(k, true), fd: floors.programFd('floor_tc_node_decap_route'), packets: one(toNode(k)), verdict: TcAction.REDIRECT, ...nic,
        samples: [] },
      { name: `node NIC: ${k.name}, known flow (sticky LRU hit)`, fd: b.fromNicFd, packets: one(toNode(k)), reason: k.reason,
        verdict: TcAction.REDIRECT, floor: nodeFloor(k, true), ...nic, samples: [] },
      { name: `node NIC: ${k.name}, new flow (SYN, entries inserted)`, fd: b.fromNicFd, packets: newNodeFlows(k, n), reason: k.reason,
        verdict: TcAction.REDIRECT, floor: nodeFloor(k, true), ...nic, samples: [] },
    ]);
    const cases: Case[] = [
      { name: 'floor: TCX_NEXT only', fd: floors.programFd('floor_tc_next'), packets: one(request('v4')), samples: [] },
      { name: 'floor: flow table lookup', fd: floors.programFd('floor_tc_flow'), packets: one(reply('v4')), samples: [] },
      { name: 'floor: service + flow lookups + remove IPv4 header', fd: floors.programFd('floor_tc_lookups_decap'),
        packets: one(request('v4')), samples: [] },
      { name: 'floor: service + flow lookups + remove IPv6 header', fd: floors.programFd('floor_tc_lookups_decap'),
        packets: one(request('v6')), samples: [] },
      { name: 'to pod: IPv4 in IPv4, flow recorded', fd: b.toPodFd, packets: one(request('v4')), reason: 'TO_POD_V4_IN_V4',
        floor: 'floor: service + flow lookups + remove IPv4 header', samples: [] },
      { name: 'to pod: IPv6 in IPv6, flow recorded', fd: b.toPodFd, packets: one(request('v6')), reason: 'TO_POD_V6_IN_V6',
        floor: 'floor: service + flow lookups + remove IPv6 header', samples: [] },
      { name: 'to pod: IPv4 in IPv4, new flow (entry inserted)', fd: b.toPodFd, packets: newFlows, reason: 'TO_POD_V4_IN_V4',
        floor: 'floor: service + flow lookups + remove IPv4 header', samples: [] },
      { name: 'from pod: IPv4 reply rewritten, routed, redirected', fd: b.fromPodFd, packets: one(reply('v4')), reason: 'REPLY_REWRITTEN', floor: 'floor: flow table lookup',
        samples: [] },
      { name: 'from pod: IPv6 reply rewritten, routed, redirected', fd: b.fromPodFd, packets: one(reply('v6')), reason: 'REPLY_REWRITTEN', floor: 'floor: flow table lookup',
        samples: [] },
      { name: 'from pod: IPv4 answer to a probe, passed (no flow)', fd: b.fromPodFd, packets: one(reply('v4', NODE.v4)),
        reason: 'PASS_NO_FLOW', floor: 'floor: flow table lookup', samples: [] },
      ...nodeCases,
    ];
    ns.enter(); // this thread's test runs look routes up there
    try {
      for (const k of cases) { // records the flows the reply and known-flow cases answer
        const { action } = testRun(k.fd, k.packets(-1)[0]!, k.runOpts ?? runOpts);
        if (k.verdict !== undefined && action !== k.verdict) throw new Error(`${k.name}: verdict ${action}, not ${k.verdict}: not the path it names`);
      }
      timeRounds(cases, ROUNDS, RUNS_PER_ROUND, () => readBackendReasons(b.maps), runOpts);
    } finally {
      ns.leave();
    }
    const med = new Map(cases.map((k) => [k.name, median(k.samples)]));
    const next = med.get('floor: TCX_NEXT only')!;
    const floorOf = (k: Case): number => med.get(k.floor!)!;
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
