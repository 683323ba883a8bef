/**
 * Gates for tests that need the machine: root and a BPF-capable kernel: in CI they must run
 * (a missing capability fails the test); elsewhere they skip with the reason.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

function missingKernelSupport(): string | null {
  if (process.getuid?.() !== 0) return 'not running as root';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'the kernel has no BTF (/sys/kernel/btf/vmlinux)';
  return null;
}

/** Returns true when the test may go on; skips (or throws in CI) otherwise. */
export function requireKernel(t: TestContext): boolean {
  const missing = missingKernelSupport();
  if (!missing) return true;
  if (inCI) throw new Error(`this test needs root and BPF, and CI must run it: ${missing}`);
  t.skip(`needs root and a BPF-capable kernel: ${missing}`);
  return false;
}

/** Mounts bpffs at /sys/fs/bpf when it is not mounted (pinning needs it). */
export function ensureBpffs(): void {
  const mounts = execFileSync('cat', ['/proc/mounts'], { encoding: 'utf8' });
  if (!/ \/sys\/fs\/bpf bpf /.test(mounts)) execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
}
