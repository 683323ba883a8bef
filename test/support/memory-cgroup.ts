/**
 * A memory cgroup with a limit, as a pod's resources.limits.memory gives its
 * container: Node sizes its heap from it (process.constrainedMemory()), so a
 * process measured inside one behaves as it would in its pod.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const V1_ROOT = '/sys/fs/cgroup/memory';
const V2_ROOT = '/sys/fs/cgroup';

export class MemoryCgroup {
  private constructor(readonly dir: string, private readonly procs: string,
    /** What a process inside reads for the bytes charged to it (memory.current, v1: memory.usage_in_bytes). */
    readonly usageFile: string) {}

  /** Creates it (cgroup v2, or the v1 memory hierarchy where v2 has no memory controller). */
  static create(name: string, limitBytes: number): MemoryCgroup {
    if (existsSync(join(V2_ROOT, 'cgroup.subtree_control')) && readFileSync(join(V2_ROOT, 'cgroup.subtree_control'), 'utf8').includes('memory')) {
      const dir = join(V2_ROOT, name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'memory.max'), String(limitBytes));
      return new MemoryCgroup(dir, join(dir, 'cgroup.procs'), join(dir, 'memory.current'));
    }
    if (existsSync(join(V1_ROOT, 'memory.limit_in_bytes'))) {
      const dir = join(V1_ROOT, name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitBytes));
      return new MemoryCgroup(dir, join(dir, 'cgroup.procs'), join(dir, 'memory.usage_in_bytes'));
    }
    throw new Error('no memory cgroup controller (neither cgroup v2 with memory nor the v1 memory hierarchy)');
  }

  /** A command line that joins the cgroup before it execs `argv` (same pid). */
  wrap(argv: string[]): [string, string[]] {
    return ['sh', ['-c', 'echo $$ > "$0" && exec "$@"', this.procs, ...argv]];
  }

  /** Removes it; its processes must have exited. */
  remove(): void {
    if (existsSync(this.dir)) rmdirSync(this.dir);
  }
}

/** "512Mi", "1Gi", "300M", "1000000": a Kubernetes memory quantity in bytes. */
export function memoryQuantityBytes(q: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|K|M|G)?$/.exec(q.trim());
  if (!m) throw new Error(`"${q}" is not a memory quantity this parser knows (integer with Ki/Mi/Gi/K/M/G)`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, K: 1e3, M: 1e6, G: 1e9 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}
