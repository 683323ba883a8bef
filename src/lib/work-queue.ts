/**
 * A de-duplicating work queue with a few workers: a key queued many times
 * while it waits is reconciled once; one key is never reconciled by two
 * workers at once (queued again meanwhile, it runs once more after); a failed
 * key is retried with backoff; a reconcile that wants another look later
 * (a drain that expires) says so in what it returns.
 */
import { errorFields } from './api-error.js';
import { componentLog } from './log.js';

const log = componentLog('work-queue');

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 60_000;
/** Reconciles in flight: each is mostly waiting on one API write, so a few overlap well. */
export const DEFAULT_WORKERS = 4;

/** What a reconcile returns: nothing, or when to reconcile the key again (it succeeded, but something expires). */
export type Requeue = { requeueAfterMs: number } | undefined | void;

export type Reconcile = (key: string) => Promise<Requeue>;

export interface WorkQueueHooks {
  /** Called after each reconcile with its duration and outcome. */
  done?(seconds: number, ok: boolean): void;
}

export class WorkQueue {
  private readonly queued = new Set<string>();
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; dueAt: number }>();
  private readonly failures = new Map<string, number>();
  private readonly processing = new Set<string>();
  private waiters: (() => void)[] = [];
  private running = false;
  private stopped = false;
  private loops: Promise<void>[] = [];

  constructor(
    readonly name: string,
    private readonly reconcile: Reconcile,
    private readonly hooks: WorkQueueHooks = {},
    private readonly workers = DEFAULT_WORKERS,
  ) {}

  get depth(): number {
    return this.queued.size;
  }

  /** Starts the workers; keys added before are reconciled now. */
  start(): void {
    this.running = true;
    this.loops = Array.from({ length: this.workers }, () => this.work());
  }

  private wakeAll(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const wake of w) wake();
  }

  /** The next queued key no worker holds. */
  private take(): string | undefined {
    for (const key of this.queued) {
      if (this.processing.has(key)) continue;
      this.queued.delete(key);
      return key;
    }
    return undefined;
  }

  /** Stops after the reconciles in progress; later adds are ignored. */
  async stop(): Promise<void> {
    this.running = false;
    this.stopped = true;
    this.wakeAll();
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    await Promise.all(this.loops);
  }

  add(key: string): void {
    if (this.stopped) return;
    this.queued.add(key);
    this.wakeAll();
  }

  /**
   * Queues a key after a delay. A request due earlier than the one waiting
   * replaces it; a later one is covered by it (as client-go's delaying queue
   * does), so a steady stream of requests cannot postpone the key forever.
   */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    const dueAt = Date.now() + delayMs;
    const waiting = this.timers.get(key);
    if (waiting && waiting.dueAt <= dueAt) return;
    clearTimeout(waiting?.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    this.timers.set(key, { timer, dueAt });
  }

  private async work(): Promise<void> {
    while (this.running) {
      const key = this.take();
      if (key === undefined) {
        await new Promise<void>((r) => this.waiters.push(r));
        continue;
      }
      this.processing.add(key);
      const started = process.hrtime.bigint();
      let ok = true;
      try {
        const wish = await this.reconcile(key);
        this.failures.delete(key);
        if (wish) this.addAfter(key, wish.requeueAfterMs);
      } catch (err) {
        ok = false;
        const n = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, n);
        const delayMs = Math.min(RETRY_MIN_MS * 2 ** (n - 1), RETRY_MAX_MS);
        log.error({ queue: this.name, key, ...errorFields(err), retryMs: delayMs }, 'reconcile failed; retrying');
        this.addAfter(key, delayMs);
      }
      this.processing.delete(key);
      this.hooks.done?.(Number(process.hrtime.bigint() - started) / 1e9, ok);
      if (this.queued.has(key)) this.wakeAll(); // queued again while it ran
    }
  }
}
