/** The clock of bpf_ktime_get_ns and bpf_ktime_get_coarse_ns, from user space. */

const NS_PER_SEC = 1_000_000_000n;

/** Whole seconds of CLOCK_MONOTONIC: what the program stamps into atime_s (its coarse clock differs by a tick at most). */
export const monotonicSeconds = (): number => Number(process.hrtime.bigint() / NS_PER_SEC);
