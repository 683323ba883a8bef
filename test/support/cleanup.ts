/**
 * Cleanup that runs when the process ends for any reason: a normal exit, or
 * an interrupt (SIGINT, SIGTERM, SIGHUP), after which the process exits with
 * the signal's status. Node runs no 'exit' handlers on a signal by itself.
 */
const tasks = new Set<() => void>();
const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
let installed = false;

function runAll(): void {
  for (const t of [...tasks]) {
    tasks.delete(t);
    try {
      t();
    } catch {
      /* keep cleaning up the rest */
    }
  }
}

/** Registers a synchronous cleanup; returns a function that unregisters it. */
export function onExitOrSignal(task: () => void): () => void {
  if (!installed) {
    installed = true;
    process.on('exit', runAll);
    for (const [name, num] of Object.entries(SIGNALS)) {
      process.on(name, () => {
        runAll();
        process.exit(128 + num);
      });
    }
  }
  tasks.add(task);
  return () => tasks.delete(task);
}
