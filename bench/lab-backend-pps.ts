/**
 * Packets per second a lab worker node hands to a pod, with the backend
 * program on the pod's veth and without it, alternated in one run.
 *
 * The generator (bench/bpf/pktgen.bpf.c, live frames on the router's leg
 * toward worker w1) sends what a balancer sends a backend: UDP from the client
 * to a VIP:53 over 1024 flows, inside an outer IPv4 header to the pod's
 * address. w1's kernel routes it to the pod's veth (an XDP_PASS on w1's eth0
 * lets veth take XDP_TX frames); in the pod a counting XDP_DROP on eth0 is the
 * sink (w1 has a static neighbor entry for the pod, which cannot answer ARP). With the program, the veth's tcx egress decapsulates, translates
 * VIP:53 to pod:8080 and records the flow on the way; without it, the same
 * frames reach the pod as they came. The figure is frames the sink saw per
 * second of generation: live frames are sent and forwarded on the generating
 * CPU, so the run takes as long as the whole path from the router's leg to
 * the pod, and the ratio is what the program adds to that path. A run with the
 * program must show every frame the sink saw as decapsulated
 * (to_pod_v4_in_v4), or it timed the wrong path.
 */
import { fileURLToPath } from 'node:url';
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
    const served = [{ vip: POD_VIP4, vipPort: GEN_VIP_PORT, protocol: 'UDP' as const, podAddress: pod.v4, targetPort: POD_PORT }];
    const workerMac = (JSON.parse(lab.ip(w1.ns, '-j', 'link', 'show', 'dev', 'eth0')) as { address: string }[])[0]!.address;
    const seen = async () => (JSON.parse(await lab.runNode(pod.ns, HELPER, ['seen', sinkPins])) as { seen: number }).seen;
    const decapsulated = async () => sample(await lab.backendMetrics(w1), 'xdplb_backend_packets_total', { verdict: 'delivered', reason: 'to_pod_v4_in_v4' });
    const veths = async () => sample(await lab.backendMetrics(w1), 'xdplb_backend_veths');
    /** One generator run: frames the pod's sink saw per second, and how many of them the program decapsulated. */
    const run = async () => {
      const [s0, d0] = [await seen(), await decapsulated()];
      const g = JSON.parse(await lab.runNode(lab.router, HELPER, ['gen', w1.name, String(FRAMES), workerMac, POD_VIP4, BALANCER_V4, pod.v4])) as Gen;
      const [s1, d1] = [await seen(), await decapsulated()];
      return { pps: (s1 - s0) / (g.ms / 1000), received: s1 - s0, decapsulated: d1 - d0, sent: g.frames };
    };
    const withProgram: number[] = [];
    const without: number[] = [];
    let sent = 0;
    let received = 0;
    for (let r = 0; r < ROUNDS; r++) {
      await lab.applyBackends(w1, served);
      if ((await veths()) !== 1) throw new Error('the backend program is not on the pod\'s veth');
      const a = await run();
      // The sink also sees the host's own ARP/ND now and then; anything more undecapsulated means the wrong path.
      if (a.received - a.decapsulated > 2) throw new Error(`${a.received - a.decapsulated} of ${a.received} frames reached the pod without the program`);
      withProgram.push(a.pps);
      await lab.applyBackends(w1, []);
      if ((await veths()) !== 0) throw new Error('the backend program is still on the pod\'s veth');
      const b = await run();
      if (b.decapsulated !== 0) throw new Error('a run without the program counted decapsulations');
      without.push(b.pps);
      sent += a.sent + b.sent;
      received += a.received + b.received;
    }
    const kpps = (x: number) => (x / 1e3).toFixed(0);
    const row = (name: string, xs: number[]) => `| ${name} | ${kpps(median(xs))} | ${kpps(Math.min(...xs))}–${kpps(Math.max(...xs))} |`;
    return [
      `Packets per second a lab worker hands to a pod (veth, kernel forwarding), ${ROUNDS} alternated runs of ${FRAMES} frames each, medians.`,
      '',
      '| on the pod\'s veth | kpps | range |',
      '| --- | ---: | ---: |',
      row(`backend program (IPv4 in IPv4 to the pod, UDP to ${POD_VIP4}:${GEN_VIP_PORT} -> pod:${POD_PORT}, 1024 flows)`, withProgram),
      row('nothing: the same frames forwarded as they came', without),
      '',
      `With the program the worker delivers ${((median(withProgram) / median(without)) * 100).toFixed(0)}% of the packets per second it forwards without it. `
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
