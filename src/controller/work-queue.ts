/**
 * A de-duplicating work queue with one worker: a key queued many times while
 * it waits is reconciled once; a failed key is retried with backoff.
 */
import { componentLog } from '../lib/log.js';

const log = componentLog('work-queue');

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 60_000;

export interface WorkQueueHooks {
  /** Called after each reconcile with its duration and outcome. */
  done?(seconds: number, ok: boolean): void;
}

export class WorkQueue {
  private readonly queued = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly failures = new Map<string, number>();
  private wake: (() => void) | null = null;
  private running = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly reconcile: (key: string) => Promise<void>,
    private readonly hooks: WorkQueueHooks = {},
  ) {}

  get depth(): number {
    return this.queued.size;
  }

  start(): void {
    this.running = true;
    this.loop = this.work();
  }

  /** Stops after the reconcile in progress. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await this.loop;
  }

  add(key: string): void {
    this.queued.add(key);
    this.wake?.();
  }

  /** Queues a key after a delay (a drain that expires, a retry); a newer request replaces the older. */
  addAfter(key: string, seconds: number): void {
    clearTimeout(this.timers.get(key));
    this.timers.set(key, setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, seconds * 1000));
  }

  private async work(): Promise<void> {
    while (this.running) {
      const next = this.queued.values().next();
      if (next.done) {
        await new Promise<void>((r) => (this.wake = r));
        this.wake = null;
        continue;
      }
      const key = next.value;
      this.queued.delete(key);
      const started = process.hrtime.bigint();
      let ok = true;
      try {
        await this.reconcile(key);
        this.failures.delete(key);
      } catch (err) {
        ok = false;
        const n = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, n);
        const delayMs = Math.min(RETRY_MIN_MS * 2 ** (n - 1), RETRY_MAX_MS);
        log.error({ queue: this.name, key, err: String(err), retryMs: delayMs }, 'reconcile failed; retrying');
        if (this.running) this.addAfter(key, delayMs / 1000);
      }
      this.hooks.done?.(Number(process.hrtime.bigint() - started) / 1e9, ok);
    }
  }
}
