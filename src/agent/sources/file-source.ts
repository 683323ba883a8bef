/**
 * The standalone agent's source: watches the VIP file. A valid change is
 * programmed (and handed to any listener); an invalid one is logged with the
 * file, path and reason, and the running state stays.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { componentLog } from '../../lib/log.js';
import type { VipSpec } from '../dataplane/desired-state.js';
import type { Programmer, VipSource } from './source.js';
import { ConfigError, parseStandaloneConfig, type StandaloneVip, toVipSpecs } from './standalone-config.js';

const log = componentLog('file-source');

/** Editors write in bursts (truncate, write, rename): wait for quiet. */
const DEBOUNCE_MS = 150;
/** A safety net for filesystems without change events (and missed renames). */
const POLL_MS = 2000;

export interface FileSourceEvents {
  /** A valid new content. */
  onVips?: (vips: StandaloneVip[]) => void;
  /** An invalid content was rejected; the previous state stays. */
  onRejected?: (err: Error) => void;
}

export class FileSource implements VipSource {
  readonly mode = 'standalone';
  private readonly path: string;
  private watcher: FSWatcher | null = null;
  private poll: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private lastText: string | null = null;
  private lastStamp = '';
  private reading: Promise<void> = Promise.resolve();
  /** The last valid content, and the one initial() handed out. */
  private latest: StandaloneVip[] = [];
  private planned: StandaloneVip[] | null = null;
  private programmer: Programmer | null = null;

  constructor(
    private readonly given: string,
    private readonly events: FileSourceEvents = {},
  ) {
    this.path = resolve(given);
  }

  /** Reads the file once (throwing if it is invalid: a start with a bad file is an error) and starts watching. */
  async start(): Promise<StandaloneVip[]> {
    const text = await readFile(this.path, 'utf8');
    const vips = parseStandaloneConfig(text, this.path);
    this.latest = vips;
    this.lastText = text;
    this.lastStamp = await this.stamp();
    // Watch the directory: editors and ConfigMap updates replace the file by rename.
    this.watcher = watch(dirname(this.path), (_event, name) => {
      if (!name || name === basename(this.path) || name.startsWith('..')) this.schedule();
    });
    this.watcher.on('error', (err) => log.warn({ err, file: this.path }, 'file watch failed; polling only'));
    this.poll = setInterval(() => {
      void this.stamp().then((s) => {
        if (s !== this.lastStamp) this.schedule();
      });
    }, POLL_MS);
    this.poll.unref();
    return vips;
  }

  /** The file as read last: a valid file is all programmed, or refused whole. */
  initial(): Promise<VipSpec[]> {
    this.planned = this.latest;
    return Promise.resolve(toVipSpecs(this.latest));
  }

  /** From now on each valid change is programmed; one that came after initial() is programmed now. */
  follow(programmer: Programmer): Promise<void> {
    this.programmer = programmer;
    if (this.latest !== this.planned) this.program(this.latest);
    return Promise.resolve();
  }

  describe(): Record<string, unknown> {
    return { config: this.given };
  }

  stop(): void {
    this.watcher?.close();
    if (this.poll) clearInterval(this.poll);
    if (this.debounce) clearTimeout(this.debounce);
  }

  /** Resolves when any read in progress has been handled (tests use it). */
  settled(): Promise<void> {
    return this.reading;
  }

  private async stamp(): Promise<string> {
    try {
      const s = await stat(this.path);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }

  private schedule(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.reading = this.reading.then(() => this.reload());
    }, DEBOUNCE_MS);
  }

  private program(vips: StandaloneVip[]): void {
    this.programmer?.setVips(toVipSpecs(vips)).catch(() => undefined); // refused: the agent logs it and keeps the running state
  }

  private async reload(): Promise<void> {
    this.lastStamp = await this.stamp();
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      log.error({ file: this.path, reason: e.message }, 'cannot read the VIP file; keeping the running state');
      this.events.onRejected?.(e);
      return;
    }
    if (text === this.lastText) return;
    try {
      const vips = parseStandaloneConfig(text, this.path);
      this.lastText = text;
      this.latest = vips;
      this.events.onVips?.(vips);
      this.program(vips);
    } catch (err) {
      if (err instanceof ConfigError) {
        for (const p of err.problems) {
          log.error({ file: this.path, path: p.path, reason: p.reason }, 'rejected the VIP file; keeping the running state');
        }
      } else {
        log.error({ file: this.path, err }, 'rejected the VIP file; keeping the running state');
      }
      this.lastText = text; // do not report the same bad content again
      this.events.onRejected?.(err as Error);
    }
  }
}
