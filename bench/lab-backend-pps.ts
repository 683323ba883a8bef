/**
 * Packets per second a lab worker node hands to a pod, with the backend
 * program on the pod's veth and without it, alternated in one run.
 *
 * The generator (bench/bpf/pktgen.bpf.c, live frames on the router's leg
 * toward worker w1) sends what a balancer sends a backend: UDP from the client
 * to a VIP:53 over 1024 flows, inside an outer IPv4 header to the pod's
 * address. w1's kernel routes it to the pod's veth (an XDP_PASS on w1's eth0
 * lets veth take XDP_TX frames); in the pod a counting XDP_DROP on eth0 is the
 * sink (w1 has a static neighbor entry for the pod, which cannot answer ARP).
 * Node addressing's rounds send the same frames to w1's own address: the
 * program on w1's NIC picks the pod, decapsulates, translates and redirects
 * them to the pod's veth past w1's forwarding path. With the program, the veth's tcx egress decapsulates, translates
 * VIP:53 to pod:8080 and records the flow on the way; without it, the same
 * frames reach the pod as they came. The figure is frames the sink saw per
 * second of generation: live frames are sent and forwarded on the generating
 * CPU, so the run takes as long as the whole path from the router's leg to
 * the pod, and the ratio is what the program adds to that path. A run with the
 * program must show every frame the sink saw as decapsulated
 * (to_pod_v4_in_v4), or it timed the wrong path.
 */
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { median } from './stats.js';
import { Lab, POD_PORT } from '../test/lab/lab.js';
import { POD_VIP4 } from '../test/lab/pod-vips.js';
import { sample } from '../test/support/prometheus.js';

const HELPER = fileURLToPath(new URL('./lab-helper.js', import.meta.url));
const ROUNDS = Number(process.env.XDPLB_BENCH_PPS_ROUNDS ?? 5);
const FRAMES = Number(process.env.XDPLB_BENCH_PPS_FRAMES ?? 2_000_000);
/** The balancer node whose address the generated frames carry as outer source. */
const BALANCER_V4 = '198.18.21.2';
const GEN_VIP_PORT = 53;
/** Generous: a few full passes of the backend agent. */
const DETACH_WAIT_MS = 30_000;
const POLL_MS = 200;

interface Gen {
  frames: number;
  ms: number;
}

export async function labBackendPps(): Promise<string> {
  const lab = await Lab.up({ tag: 'bpps', reals: 0, pods: [1, 0], routing: 'static' });
  try {
    const w1 = lab.workers[0]!;
    const pod = w1.pods[0]!;
    const sinkPins = `${lab.pinRoot}/sink`;
    await lab.runNode(w1.ns, HELPER, ['swap', 'eth0', 'floor_pass', `${lab.pinRoot}/w1-pass`]);
    await lab.runNode(pod.ns, HELPER, ['swap', 'eth0', 'floor_drop_counted', sinkPins]);
    // The sink drops ARP too: the node learns the pod's MAC from a static entry instead.
    const podMac = (JSON.parse(lab.ip(pod.ns, '-j', 'link', 'show', 'dev', 'eth0')) as { address: string }[])[0]!.address;
    lab.ip(w1.ns, 'neigh', 'replace', pod.v4, 'lladdr', podMac, 'dev', pod.veth, 'nud', 'permanent');
    await lab.startBackendAgent(w1, { args: ['--drain-seconds', '0'] });
    const viaPod = [{ vip: POD_VIP4, vipPort: GEN_VIP_PORT, protocol: 'UDP' as const, podAddress: pod.v4, targetPort: POD_PORT }];
    const viaNode = viaPod.map((x) => ({ ...x, nodeAddress: w1.v4 }));
    const workerMac = (JSON.parse(lab.ip(w1.ns, '-j', 'link', 'show', 'dev', 'eth0')) as { address: string }[])[0]!.address;
    const seen = async () => (JSON.parse(await lab.runNode(pod.ns, HELPER, ['seen', sinkPins])) as { seen: number }).seen;
    const decapsulated = async (reason: string) => sample(await lab.backendMetrics(w1), 'xdplb_backend_packets_total', { verdict: 'delivered', reason });
    const attached = async () => { const m = await lab.backendMetrics(w1); return { veths: sample(m, 'xdplb_backend_veths'), nics: sample(m, 'xdplb_backend_nics') }; };
    /** One generator run to `outerDst`: frames the pod's sink saw per second, and how many of them `reason` counted. */
    const run = async (outerDst: string, reason: string) => {
      const [s0, d0] = [await seen(), await decapsulated(reason)];
      const g = JSON.parse(await lab.runNode(lab.router, HELPER, ['gen', w1.name, String(FRAMES), workerMac, POD_VIP4, BALANCER_V4, outerDst])) as Gen;
      const [s1, d1] = [await seen(), await decapsulated(reason)];
      return { pps: (s1 - s0) / (g.ms / 1000), received: s1 - s0, decapsulated: d1 - d0, sent: g.frames };
    };
    // The sink also sees the host's own ARP/ND now and then; anything more not counted by the program means the wrong path.
    const checked = (r: Awaited<ReturnType<typeof run>>, what: string) => {
      if (r.received - r.decapsulated > 2) throw new Error(`${what}: ${r.received - r.decapsulated} of ${r.received} frames reached the pod without the program`);
      return r;
    };
    const withProgram: number[] = [];
    const viaNic: number[] = [];
    const without: number[] = [];
    let sent = 0;
    let received = 0;
    for (let r = 0; r < ROUNDS; r++) {
      await lab.applyBackends(w1, viaPod);
      if ((await attached()).veths !== 1) throw new Error('the backend program is not on the pod\'s veth');
      const a = checked(await run(pod.v4, 'to_pod_v4_in_v4'), 'Pod addressing');
      withProgram.push(a.pps);
      await lab.applyBackends(w1, viaNode);
      if ((await attached()).nics !== 1) throw new Error('the NIC program is not on w1\'s eth0');
      const n = checked(await run(w1.v4, 'node_to_pod_v4_in_v4'), 'Node addressing');
      viaNic.push(n.pps);
      await lab.applyBackends(w1, []);
      // What a pass stops needing is detached by the next pass (at most BACKEND_POLL_MS later).
      const deadline = Date.now() + DETACH_WAIT_MS;
      for (let none = await attached(); none.veths !== 0 || none.nics !== 0; none = await attached()) {
        if (Date.now() > deadline) throw new Error(`a backend program is still attached after ${DETACH_WAIT_MS} ms: ${JSON.stringify(none)}`);
        await sleep(POLL_MS);
      }
      const b = await run(pod.v4, 'to_pod_v4_in_v4');
      if (b.decapsulated !== 0) throw new Error('a run without the program counted decapsulations');
      without.push(b.pps);
      sent += a.sent + n.sent + b.sent;
      received += a.received + n.received + b.received;
    }
    const kpps = (x: number) => (x / 1e3).toFixed(0);
    const row = (name: string, xs: number[]) => `| ${name} | ${kpps(median(xs))} | ${kpps(Math.min(...xs))}–${kpps(Math.max(...xs))} |`;
    return [
      `Packets per second a lab worker hands to a pod (veth, kernel forwarding), ${ROUNDS} alternated runs of ${FRAMES} frames each, medians.`,
      '',
      '| what delivers the tunnel packets | kpps | range |',
      '| --- | ---: | ---: |',
      row(`Pod addressing: the program on the pod's veth (IPv4 in IPv4 to the pod, UDP to ${POD_VIP4}:${GEN_VIP_PORT} -> pod:${POD_PORT}, 1024 flows)`, withProgram),
      row('Node addressing: the program on the node\'s NIC (IPv4 in IPv4 to w1\'s address; it picks the pod and redirects to its veth)', viaNic),
      row('nothing: the same frames to the pod\'s address, forwarded as they came', without),
      '',
      `With the program the worker delivers ${((median(withProgram) / median(without)) * 100).toFixed(0)}% (Pod addressing) and `
        + `${((median(viaNic) / median(without)) * 100).toFixed(0)}% (Node addressing) of the packets per second it forwards without it. `
        + `Frames the generator sent that never reached the pod (a veth ring overflowing): ${(((sent - received) / sent) * 100).toFixed(1)}%.`,
    ].join('\n');
  } finally {
    await lab.down();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  labBackendPps().then((t) => console.log(t), (err: unknown) => {
    console.error((err as Error).message);
    process.exit(1);
  });
}
