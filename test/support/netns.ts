/**
 * A throwaway network namespace that this test process enters, so XDP attaches
 * by interface name land on the test's own veths and deleting the namespace
 * removes every interface and attachment the test made.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import koffi from 'koffi';

/** From linux/sched.h. */
const CLONE_NEWNET = 0x40000000;

const setns = koffi.load('libc.so.6').func('int setns(int fd, int nstype)');

function setNetns(fd: number, what: string): void {
  if ((setns(fd, CLONE_NEWNET) as number) !== 0) throw new Error(`setns into ${what} failed: errno ${koffi.errno()}`);
}

export class TestNetns {
  private home: number | null = null;

  constructor(readonly name: string) {
    execFileSync('ip', ['netns', 'add', name], { stdio: 'pipe' });
  }

  /** Runs `ip` inside the namespace. */
  ip(...args: string[]): void {
    execFileSync('ip', ['-n', this.name, ...args], { stdio: 'pipe' });
  }

  /** Moves this thread (koffi calls and libbpf run on it) into the namespace. */
  enter(): void {
    // setns changes the calling thread only; the main thread is where libbpf runs.
    this.home ??= openSync('/proc/thread-self/ns/net', 'r');
    const fd = openSync(`/run/netns/${this.name}`, 'r');
    try {
      setNetns(fd, this.name);
    } finally {
      closeSync(fd);
    }
  }

  /** Returns this thread to the namespace it was in before enter(). */
  leave(): void {
    if (this.home === null) return;
    setNetns(this.home, 'the original namespace');
    closeSync(this.home);
    this.home = null;
  }

  /** Runs fn inside the namespace and comes back, also when it throws. */
  within<T>(fn: () => T): T {
    this.enter();
    try {
      return fn();
    } finally {
      this.leave();
    }
  }

  /** Returns to the original namespace and deletes this one, with what is in it. */
  remove(): void {
    this.leave();
    execFileSync('ip', ['netns', 'del', this.name], { stdio: 'pipe' });
  }
}

/** Removes each of these namespaces that exists; one already gone is no error (cleanups run after failures too). */
export function removeNetns(...namespaces: (TestNetns | null)[]): void {
  for (const ns of namespaces) {
    try {
      ns?.remove();
    } catch {
      /* already gone */
    }
  }
}
