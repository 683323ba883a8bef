/** A running `xdplb trace`, started by a test: waits for its session, then stops or awaits it. */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The CLI in dist/. */
export const XDPLB_CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
/**
 * Starting means reading the agent's endpoint from the API server, a TLS
 * connection, and the agent's TokenReview and SubjectAccessReview: on a loaded
 * 2-core machine running kind that took over 15 s once.
 */
const TRACE_READY_TIMEOUT_MS = 60_000;

export interface TraceRun {
  code: number | null;
  out: string;
  err: string;
}

export interface RunningTrace {
  /** What it has printed on stdout so far. */
  output(): string;
  /** Interrupts it as a user's ^C would. */
  stop(): Promise<TraceRun>;
  /** Waits for it to end by itself (--count, --duration, an error). */
  done(): Promise<TraceRun>;
}

/** Resolves once the agent has opened the session (the CLI says "tracing on"); rejects if it exits first. */
export async function watchTrace(child: ChildProcess): Promise<RunningTrace> {
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', r));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // not left running after the test
      reject(new Error(`xdplb trace did not start within ${TRACE_READY_TIMEOUT_MS} ms: ${err}`));
    }, TRACE_READY_TIMEOUT_MS);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('tracing on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`xdplb trace exited ${code} before tracing: ${err}`));
    });
  });
  return {
    output: () => out,
    stop: async () => {
      child.kill('SIGINT');
      return { code: await exited, out, err };
    },
    done: async () => ({ code: await exited, out, err }),
  };
}
