/**
 * A list-watch cache of one kind of Kubernetes object that stays up: a failed
 * list or watch is retried with backoff, and 410 Gone relists. `start()`
 * resolves only once a list has succeeded, so a caller never mistakes "not
 * synced yet" for "there are none" (an agent would empty its maps).
 */
import { ADD, DELETE, type KubeConfig, type KubernetesListObject, type KubernetesObject, ListWatch, UPDATE, Watch } from '@kubernetes/client-node';
import { errorFields } from './api-error.js';
import { componentLog } from './log.js';

const log = componentLog('watch');

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

export interface WatchedCacheOptions<T> {
  labelSelector?: string;
  fieldSelector?: string;
  /**
   * Drops what the owner never reads, in place, before an object is kept:
   * with 100k pods, managedFields and container specs are most of the memory.
   */
  trim?: (obj: T) => void;
  /** List in pages of this many (one consistent snapshot), so a large list is never one huge response. */
  pageSize?: number;
}

/** One page request of a list: the API's limit and continue parameters. */
export interface ListPage {
  limit?: number;
  _continue?: string;
}

/** A trim for objects whose managedFields (large, never read by us) are all there is to drop. */
export function trimManagedFields(obj: KubernetesObject): void {
  if (obj.metadata) delete obj.metadata.managedFields;
}

export class WatchedCache<T extends KubernetesObject> {
  private readonly lw: ListWatch<T>;
  private running = false;
  private synced = false;
  private onSynced: (() => void) | null = null;
  private retryMs = RETRY_MIN_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Lists done (the first, and each relist after an error or 410 Gone). */
  lists = 0;
  errors = 0;

  constructor(
    kc: KubeConfig,
    readonly path: string,
    list: (page: ListPage) => Promise<KubernetesListObject<T>>,
    onChange: (obj: T, verb: 'add' | 'update' | 'delete') => void,
    opts: WatchedCacheOptions<T> = {},
  ) {
    const trim = opts.trim ?? (() => undefined);
    // Typed clients name the token _continue; custom objects come back as raw JSON, where it is continue.
    const continueOf = (l: KubernetesListObject<T>) => l.metadata?._continue ?? (l.metadata as { continue?: string } | undefined)?.continue;
    const listAll = async (): Promise<KubernetesListObject<T>> => {
      const first = await list({ limit: opts.pageSize });
      first.items.forEach(trim);
      let next = continueOf(first);
      while (next) {
        const page = await list({ limit: opts.pageSize, _continue: next });
        page.items.forEach(trim);
        first.items.push(...page.items);
        next = continueOf(page);
      }
      return first;
    };
    const listed = async () => {
      const result = await listAll();
      this.lists++;
      this.synced = true;
      this.retryMs = RETRY_MIN_MS;
      this.onSynced?.();
      return result;
    };
    this.lw = new ListWatch<T>(path, new Watch(kc), listed, false, opts.labelSelector, opts.fieldSelector);
    // ListWatch hands callbacks the object it keeps: trimming it here trims the cache.
    this.lw.on(ADD, (o) => {
      trim(o);
      onChange(o, 'add');
    });
    this.lw.on(UPDATE, (o) => {
      trim(o);
      onChange(o, 'update');
    });
    this.lw.on(DELETE, (o) => onChange(o, 'delete'));
    this.lw.on('error', (err: unknown) => this.failed(err));
  }

  /** Starts watching; resolves after the first successful list. */
  async start(): Promise<void> {
    this.running = true;
    const synced = new Promise<void>((resolve) => {
      if (this.synced) resolve();
      else this.onSynced = resolve;
    });
    await this.lw.start().catch((err: unknown) => this.failed(err));
    await synced;
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.retryTimer);
    await this.lw.stop();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.lw.list(namespace);
  }

  /** The cache keeps its objects while it reconnects: a restart relists and reports only what changed. */
  private failed(err: unknown): void {
    if (!this.running) return; // stop() aborts the watch
    this.errors++;
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    log.warn({ path: this.path, ...errorFields(err), retryMs: delay }, 'list/watch failed; retrying');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.running) void this.lw.start().catch((e: unknown) => this.failed(e));
    }, delay);
  }
}
