/**
 * BPF_PROG_TEST_RUN: run an XDP program, or a tc (SCHED_CLS) one on an skb
 * built from the frame, without a NIC. The verdict is the program's return
 * value, signed (tc's TC_ACT_UNSPEC / tcx's TCX_NEXT is -1).
 */
import { TestRunOpts, c, check } from './libbpf.js';
import koffi from 'koffi';

/** XDP actions (enum xdp_action). */
export const XdpAction = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;
export type XdpActionName = keyof typeof XdpAction;
export const actionName = (n: number): XdpActionName | `UNKNOWN(${number})` =>
  (Object.keys(XdpAction) as XdpActionName[]).find((k) => XdpAction[k] === n) ?? `UNKNOWN(${n})`;

/** tc verdicts (linux/pkt_cls.h) and tcx's (enum tcx_action_base) that equal them. */
export const TcAction = { NEXT: -1, OK: 0, SHOT: 2, REDIRECT: 7 } as const;

/**
 * BPF_F_TEST_XDP_LIVE_FRAMES: each repetition starts from the original frame
 * and is really sent. A run interrupted and run again (EINTR, below) has sent
 * some frames twice: a caller counting them counts in its program.
 */
export const BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1;

/** Room for the largest encapsulation plus the frame itself. */
const OUTPUT_SLACK = 256;
const EINTR = 4;
/**
 * The kernel stops a run with EINTR when the thread has a signal or task work
 * pending, and libuv's io_uring (Node's file system calls) queues task work
 * whenever a completion arrives: a long run started just after a file read is
 * cut short. The work runs on the way back to user space, so a new run goes
 * through; a few tries bound a real signal storm.
 */
const INTERRUPTED_RUN_TRIES = 5;

export interface TestRunResult {
  /** The program's return value: an XdpAction or a TcAction. */
  action: number;
  output: Buffer;
  /** Mean ns per repetition, as the kernel measured it. */
  durationNs: number;
}

export interface TestRunOptions {
  repeat?: number;
  flags?: number;
  /** struct xdp_md, or struct __sk_buff for tc, for the run (e.g. ingress_ifindex for live frames). */
  ctx?: Buffer;
  batchSize?: number;
}

export function testRun(progFd: number, packet: Buffer, opts: TestRunOptions = {}): TestRunResult {
  const live = ((opts.flags ?? 0) & BPF_F_TEST_XDP_LIVE_FRAMES) !== 0;
  const out = live ? null : Buffer.alloc(packet.length + OUTPUT_SLACK);
  const o = {
    sz: koffi.sizeof(TestRunOpts),
    data_in: packet,
    data_out: out,
    data_size_in: packet.length,
    data_size_out: out?.length ?? 0,
    ctx_in: opts.ctx ?? null,
    ctx_out: null,
    ctx_size_in: opts.ctx?.length ?? 0,
    ctx_size_out: 0,
    retval: 0,
    repeat: opts.repeat ?? 1,
    duration: 0,
    flags: opts.flags ?? 0,
    cpu: 0,
    batch_size: opts.batchSize ?? 0,
  };
  for (let attempt = 1; ; attempt++) {
    const rc = c.testRun(progFd, o) as number;
    if (rc !== -EINTR || attempt === INTERRUPTED_RUN_TRIES) {
      check('bpf_prog_test_run_opts', rc);
      break;
    }
  }
  return {
    action: o.retval | 0, // retval is a u32 in the opts; tc's verdicts are signed
    output: out ? out.subarray(0, o.data_size_out) : Buffer.alloc(0),
    durationNs: o.duration,
  };
}
