/**
 * Timing BPF programs on packets with BPF_PROG_TEST_RUN, shared by the packet
 * path benchmarks (dataplane.ts, backend.ts): many runs of repeat=1, each on
 * the original packet, timed by the kernel (the duration it reports for that
 * one run); rounds interleaved across cases; each round's median kept. Every
 * run of a case that names a reason must count that reason once.
 */
import { testRun, type TestRunOptions } from '../src/libbpf/test-run.js';
import { median } from './stats.js';

export interface TimedCase<R extends string> {
  name: string;
  fd: number;
  /** Run in turn; one packet, or one per run for "new flow" cases. */
  packets: (round: number) => Buffer[];
  /** The reason every run must count. */
  reason?: R;
  /** This case's runs' options, when not those of timeRounds (the backend's: a packet received on the node's NIC). */
  runOpts?: TestRunOptions;
  /** Per round, the median of its runs' durations (ns). */
  samples: number[];
}

/** runOpts: for every run (the backend's: the __sk_buff of a packet received on a pod's veth). */
export function timeRounds<R extends string>(cases: TimedCase<R>[], rounds: number, runsPerRound: number,
  readReasons: () => Readonly<Record<string, bigint>>, runOpts: TestRunOptions = {}): void {
  const durations = new Array<number>(runsPerRound);
  for (let r = 0; r < rounds; r++) {
    for (const k of cases) {
      const packets = k.packets(r);
      const before = readReasons();
      for (let i = 0; i < runsPerRound; i++) durations[i] = testRun(k.fd, packets[i % packets.length]!, k.runOpts ?? runOpts).durationNs;
      if (k.reason) {
        const counted = readReasons()[k.reason]! - before[k.reason]!;
        if (counted !== BigInt(runsPerRound)) {
          throw new Error(`${k.name}: ${counted} of ${runsPerRound} runs counted ${k.reason}: the benchmark is not timing the path it names`);
        }
      }
      k.samples.push(median(durations));
    }
  }
}
