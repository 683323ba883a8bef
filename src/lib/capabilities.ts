/**
 * The process's effective capabilities, from /proc/self/status, and which of
 * those a task needs are missing. The agent checks before it touches the
 * kernel, so a container without them fails with their names rather than
 * with an EPERM (or the verifier's EACCES) from deep inside libbpf.
 */
import { readFileSync } from 'node:fs';

/** Bits of linux/capability.h. */
export const CAPABILITY_BITS = {
  NET_BIND_SERVICE: 10,
  NET_ADMIN: 12,
  NET_RAW: 13,
  SYS_ADMIN: 21,
  PERFMON: 38,
  BPF: 39,
} as const;
export type Capability = keyof typeof CAPABILITY_BITS;

/**
 * Before Linux 5.8 (and in runtimes that do not know them) CAP_BPF and
 * CAP_PERFMON did not exist and CAP_SYS_ADMIN held what they grant; the kernel
 * still accepts it in their place (bpf_capable(), perfmon_capable()).
 */
const IMPLIED_BY_SYS_ADMIN: readonly Capability[] = ['BPF', 'PERFMON'];

/** What the balancer agent needs to load its program, create and pin its maps, and attach to the NIC (README, "Security"). */
export const AGENT_CAPABILITIES: readonly Capability[] = ['BPF', 'NET_ADMIN', 'PERFMON'];

/** The CapEff mask of a /proc/<pid>/status text. */
export function effectiveCapabilities(status: string): bigint {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (!hex) throw new Error('no CapEff line in the process status');
  return BigInt(`0x${hex}`);
}

export function ownEffectiveCapabilities(): bigint {
  return effectiveCapabilities(readFileSync('/proc/self/status', 'utf8'));
}

const has = (mask: bigint, cap: Capability) => ((mask >> BigInt(CAPABILITY_BITS[cap])) & 1n) === 1n;

/** The capabilities of `needed` that `mask` lacks, CAP_SYS_ADMIN standing in for CAP_BPF and CAP_PERFMON. */
export function missingCapabilities(mask: bigint, needed: readonly Capability[]): Capability[] {
  return needed.filter((cap) => !has(mask, cap) && !(IMPLIED_BY_SYS_ADMIN.includes(cap) && has(mask, 'SYS_ADMIN')));
}
