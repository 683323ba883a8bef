/**
 * Packets per second through one balancer node of the lab, beside the same
 * path with a trivial XDP_TX program in the balancer's place, in one run.
 *
 * The generator (bench/bpf/pktgen.bpf.c, live frames on the router's leg)
 * sends UDP to a VIP over 1024 flows into lb1's eth0; lb1 encapsulates and
 * sends back to the router leg, where an XDP_DROP program sinks the frames
 * the same way for both runs. The generator outruns the veth (its ring
 * overflows and drops), so the figure is frames the program on lb1's NIC
 * handled per second: for the balancer its reason counters, which must all be
 * tx_encap (or the run is void); for the floor, a counting XDP_TX.
 */
import { fileURLToPath } from 'node:url';
import { median } from './stats.js';
import { Lab, labVips, VIP4 } from '../test/lab/lab.js';
import { watchTrace, XDPLB_CLI } from '../test/support/trace-process.js';
import { sample, sum } from '../test/support/prometheus.js';

const HELPER = fileURLToPath(new URL('./lab-helper.js', import.meta.url));
const AGENT = fileURLToPath(new URL('../src/agent/main.js', import.meta.url));
const ROUNDS = Number(process.env.XDPLB_BENCH_PPS_ROUNDS ?? 5);
const FRAMES = Number(process.env.XDPLB_BENCH_PPS_FRAMES ?? 2_000_000);
/** Host traffic (ARP, ND) that may reach the node during a run. */
const BACKGROUND_PASSES = 100;

interface Gen {
  frames: number;
  ms: number;
}

export async function labPps(): Promise<string> {
  const lab = await Lab.up({ tag: 'pps' });
  try {
    const [lb1] = lab.balancers;
    lab.writeVips(labVips(lab));
    await lab.startAgent(lb1!);
    const mac = (JSON.parse(lab.ip(lb1!.ns, '-j', 'link', 'show', 'dev', 'eth0')) as { address: string }[])[0]!.address;
    await lab.runNode(lab.router, HELPER, ['swap', lb1!.name, 'floor_drop', `${lab.pinRoot}/sink`]);
    const gen = async () => JSON.parse(await lab.runNode(lab.router, HELPER, ['gen', lb1!.name, String(FRAMES), mac])) as Gen;
    const counts = async () => {
      const m = await lab.metrics(lb1!);
      return {
        tx: sample(m, 'xdplb_packets_total', { verdict: 'tx', reason: 'tx_encap' }),
        drop: sum(m, 'xdplb_packets_total', { verdict: 'drop' }),
        pass: sum(m, 'xdplb_packets_total', { verdict: 'pass' }),
      };
    };

    const ours: number[] = [];
    const traced: number[] = [];
    let lost = 0;
    let records = 0;
    let rateLimited = 0;
    /** One generator run, checked to have timed the balancer's encapsulation path. */
    const balancerRun = async () => {
      const before = await counts();
      const g = await gen();
      const after = await counts();
      const handled = after.tx - before.tx;
      // The host's own ARP/ND may pass by; a drop means we time the wrong path.
      const other = after.drop - before.drop + (after.pass - before.pass > BACKGROUND_PASSES ? after.pass - before.pass : 0);
      if (other) throw new Error(`balancer run: ${other} frames were dropped or passed: not the path we mean to time`);
      lost += Math.max(0, g.frames - handled);
      return handled / (g.ms / 1000);
    };
    // Interleaved: a run without tracing, then one with an xdplb trace session open on the loaded VIP.
    for (let r = 0; r < ROUNDS; r++) {
      ours.push(await balancerRun());
      const trace = await watchTrace(lab.spawnNode(lb1!.ns, XDPLB_CLI, ['trace', '--vip', `${VIP4}:53/UDP`, '--json']));
      traced.push(await balancerRun());
      const { out, err } = await trace.stop();
      records += out.split('\n').filter(Boolean).length;
      rateLimited += Number(/(\d+) over the rate limit/.exec(err)?.[1] ?? 0);
    }
    await lab.stopAgent(lb1!);
    await lab.runNode(lb1!.ns, AGENT, ['cleanup', '--nic', 'eth0', '--pin-dir', lb1!.pinDir]);
    const floorPins = `${lab.pinRoot}/floor`;
    await lab.runNode(lb1!.ns, HELPER, ['swap', 'eth0', 'floor_tx_counted', floorPins]);
    const seen = async () => (JSON.parse(await lab.runNode(lb1!.ns, HELPER, ['seen', floorPins])) as { seen: number }).seen;
    const floor: number[] = [];
    let floorLost = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const before = await seen();
      const g = await gen();
      const handled = (await seen()) - before;
      floorLost += Math.max(0, g.frames - handled); // host ARP/ND may add a frame or two
      floor.push(handled / (g.ms / 1000));
    }
    const m = median(ours);
    const f = median(floor);
    const mpps = (x: number) => (x / 1e6).toFixed(3);
    return [
      `Packets per second through one balancer node of the lab (veth, native XDP), ${ROUNDS} runs of ${FRAMES} frames each, medians.`,
      '',
      '| program on the balancer NIC | Mpps | range |',
      '| --- | ---: | ---: |',
      `| xdplb balancer (UDP to a VIP, 1024 flows, IPv4 in IPv4) | ${mpps(m)} | ${mpps(Math.min(...ours))}–${mpps(Math.max(...ours))} |`,
      `| floor: XDP_TX only | ${mpps(f)} | ${mpps(Math.min(...floor))}–${mpps(Math.max(...floor))} |`,
      `| xdplb balancer with \`xdplb trace --vip ${VIP4}:53/UDP\` open (default rate) | ${mpps(median(traced))} | ${mpps(Math.min(...traced))}–${mpps(Math.max(...traced))} |`,
      '',
      `With a trace session on the loaded VIP the balancer runs at ${((median(traced) / m) * 100).toFixed(0)}% of its untraced rate; ` +
        `the session recorded ${records} packets in ${ROUNDS} runs and counted ${rateLimited} more over the rate limit. ` +
        `The balancer reaches ${((m / f) * 100).toFixed(0)}% of the floor. Frames the veth dropped before any program saw them: ${((lost / (2 * ROUNDS * FRAMES)) * 100).toFixed(1)}% (balancer runs), ${((floorLost / (ROUNDS * FRAMES)) * 100).toFixed(1)}% (floor runs).`,
    ].join('\n');
  } finally {
    await lab.down();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  labPps().then((t) => console.log(t), (err: unknown) => {
    console.error((err as Error).message);
    process.exit(1);
  });
}
