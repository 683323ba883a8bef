/**
 * Which CPUs this thread may run on, and running on one of them: a BPF map
 * with per-CPU lists (an LRU hash with BPF_F_NO_COMMON_LRU) takes an element
 * from the list of the CPU that inserts it, so filling one from user space
 * means inserting from each CPU in turn.
 */
import koffi from 'koffi';
import { c } from './libbpf.js';

/** cpu_set_t of glibc: 1024 CPUs. */
const CPU_SET_BYTES = 128;
/** pid 0: the calling thread (the main thread, where koffi calls run). */
const THIS_THREAD = 0;

function getMask(): Buffer {
  const mask = Buffer.alloc(CPU_SET_BYTES);
  if ((c.schedGetAffinity(THIS_THREAD, mask.length, mask) as number) !== 0) {
    throw new Error(`sched_getaffinity failed: errno ${koffi.errno()}`);
  }
  return mask;
}

function setMask(mask: Buffer, what: string): void {
  if ((c.schedSetAffinity(THIS_THREAD, mask.length, mask) as number) !== 0) {
    throw new Error(`sched_setaffinity(${what}) failed: errno ${koffi.errno()}`);
  }
}

/** The CPUs this thread may run on, ascending. */
export function allowedCpus(): number[] {
  const mask = getMask();
  const out: number[] = [];
  for (let cpu = 0; cpu < CPU_SET_BYTES * 8; cpu++) if (mask[cpu >> 3]! & (1 << (cpu & 7))) out.push(cpu);
  return out;
}

/**
 * Runs fn with this thread on `cpu` alone (the kernel moves it there before
 * sched_setaffinity returns), then gives the thread its CPUs back. While fn
 * awaits, other work of this thread runs on that CPU too: harmless.
 */
export async function onCpu<T>(cpu: number, fn: () => Promise<T> | T): Promise<T> {
  const saved = getMask();
  const only = Buffer.alloc(CPU_SET_BYTES);
  only[cpu >> 3] = 1 << (cpu & 7);
  setMask(only, `CPU ${cpu}`);
  try {
    return await fn();
  } finally {
    setMask(saved, 'restore');
  }
}
