/** Small helpers shared by the benchmarks. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function timeMs(fn: () => void): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

export function machine(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? '?';
  const libbpf = (() => {
    try {
      return execFileSync('dpkg-query', ['-W', '-f=${Version}', 'libbpf1'], { encoding: 'utf8' });
    } catch {
      return '?';
    }
  })();
  return `${cpu}, ${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; Linux ${os.release()}; Node ${process.version}; libbpf ${libbpf}`;
}

/** The collector, exposed without a command-line flag; heap figures are taken after a full collection. */
export function collector(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/** Heap bytes still held after build() returns, while its result is kept. */
export function retainedHeap(gc: () => void, build: () => unknown): { bytes: number; kept: unknown } {
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept = build();
  gc();
  return { bytes: process.memoryUsage().heapUsed - before, kept };
}
