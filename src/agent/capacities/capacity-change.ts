/**
 * A capacities change under traffic. The pinned maps of the old layout
 * cannot be adopted (libbpf refuses a pinned map of another size), and the
 * attached program runs on them. So the new agent:
 *
 *   1. loads the object with fresh maps pinned in a staging directory beside
 *      the pin directory (<pin-dir>.staging) and, as a cold start does,
 *      programs the desired state into them (Agent.run: reconcile);
 *   2. pins the new program in the staging directory, copies the old
 *      connection table into the new one (real ids translated);
 *   3. swaps the attached program for the new one in one step (XDP attach
 *      with the old program as the expected one);
 *   4. copies the entries the old program made since step 2 (never over an
 *      entry the new program made); moves the staged pins over the old ones
 *      (rename(2), which replaces atomically), the program's last; removes
 *      the staging directory. The old program and maps are freed by the
 *      kernel when their last pin and user are gone.
 *
 * Until step 3 the old program and maps are only read. The states a crash
 * can leave, and what the next start does (recover()):
 *   - no staging directory: nothing to do (a pin directory of either layout);
 *   - a staging directory whose program is not attached (none pinned yet,
 *     or pinned but not swapped in): steps 1-2 were under way; the old
 *     program never stopped. The staging directory is removed, and the
 *     change starts again;
 *   - a staging directory whose program is the attached one: step 3 was done,
 *     step 4 not, or not all of it. The remaining pins are moved (their
 *     maps are the live ones) and the staging directory removed. Entries the
 *     old program made between steps 2 and 3 were not copied: those flows
 *     re-hash (the same real unless their VIP's backends changed).
 * Any failure before the swap removes the staging directory and leaves the
 * old program and maps as they were; the agent exits saying so.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { componentLog } from '../../lib/log.js';
import { BALANCER_PROGRAM } from '../../bpf/consts.js';
import { BALANCER_MAPS, type MapCapacities } from '../../bpf/maps.js';
import {
  describeCapacityChange,
  kernelCapacities,
  type LayoutChange,
  pinnedCapacities,
  pinnedLayoutChanges,
  resolveCapacities,
} from '../../bpf/pinned-layout.js';
import { type BalancerCapacity, type LoadedBalancer, loadBalancer } from '../../bpf/programs.js';
import { openPinnedMap } from '../../libbpf/map-info.js';
import { attachedProgram, closeFd, pinnedProgramId, pinProgram, programId } from '../../libbpf/pins.js';
import type { AgentMetrics } from '../metrics.js';
import { type ConnectionMaps, copyConnections, copyGapConnections, type CopyResult, emptyCopy, type SeenKeys } from './connections.js';

const log = componentLog('capacities');

/** The program's pin, beside the maps' (as the agent's XdpProgram names it). */
export const PROGRAM_PIN = `${BALANCER_PROGRAM}_prog`;
/** bpffs refuses names with a dot; a balancer's name is a DNS label, with no underscore: no balancer's pin directory is a staging one. */
const STAGING_SUFFIX = '_staging';

/** Where the new maps are built: a sibling of the pin directory. */
export const stagingDirOf = (pinDir: string): string => `${pinDir}${STAGING_SUFFIX}`;

/** What the connection table copy did, over both passes. */
export interface ConnectionsMoved {
  /** Entries written into the new table (both passes). */
  copied: number;
  /** Of those, made by the old program during the swap (the second pass). */
  copiedAfterSwap: number;
  /** Dropped because their real is not in the new maps. */
  droppedRealGone: number;
  /** Dropped because the new table is full. */
  droppedTableFull: number;
  /** Dropped because the old maps' layout cannot be read by this version. */
  droppedUnreadable: number;
  /** Made by the old program during the swap, but the new program had made its own entry for the flow since: that one stays. */
  newerKept: number;
}

export interface CapacityChangeResult {
  /** The capacities of the old maps (reals: slots, as MapCapacities counts them). */
  from: Partial<MapCapacities>;
  to: MapCapacities;
  changes: LayoutChange[];
  connections: ConnectionsMoved;
  /** The old and the new program's ids. */
  replaced: number | null;
  program: number;
}

/** What recover() found and did. */
export type Recovery = 'none' | 'removed-staging' | 'finished-move';

const pinPath = (dir: string, name: string) => join(dir, name);

/** Removes a staging directory and its pins; their maps go when nothing uses them. */
function removeStagingDir(pinDir: string): void {
  rmSync(stagingDirOf(pinDir), { recursive: true, force: true });
}

/** Whether the program pinned in the staging directory is the live one: on the NIC, or already pinned as the balancer's. */
function stagedProgramLive(pinDir: string, nic: string): boolean {
  const staged = pinnedProgramId(pinPath(stagingDirOf(pinDir), PROGRAM_PIN));
  if (!staged) return false;
  if (pinnedProgramId(pinPath(pinDir, PROGRAM_PIN)) === staged) return true;
  try {
    return attachedProgram(nic)?.id === staged;
  } catch {
    return false; // the NIC is gone: nothing runs there
  }
}

/** Moves every staged pin over the pin directory's, the program's last, and removes the staging directory. */
function moveStagedPins(pinDir: string): number {
  const staging = stagingDirOf(pinDir);
  mkdirSync(pinDir, { recursive: true });
  const names = readdirSync(staging).sort((a, b) => Number(a === PROGRAM_PIN) - Number(b === PROGRAM_PIN));
  for (const name of names) renameSync(pinPath(staging, name), pinPath(pinDir, name));
  rmdirSync(staging);
  return names.length;
}

/** One set of pins again: the staged ones moved in if their program is the live one, else removed. */
function settle(pinDir: string, nic: string): Recovery {
  if (!existsSync(stagingDirOf(pinDir))) return 'none';
  if (stagedProgramLive(pinDir, nic)) {
    moveStagedPins(pinDir);
    return 'finished-move';
  }
  removeStagingDir(pinDir);
  return 'removed-staging';
}

/**
 * Brings a pin directory a crashed capacities change left back to one
 * consistent set of pins (see the states above). Run before anything loads.
 */
export function recover(pinDir: string, nic: string): Recovery {
  const state = settle(pinDir, nic);
  const where = { pinDir, staging: stagingDirOf(pinDir) };
  if (state === 'finished-move') {
    log.warn(where, 'an earlier capacities change stopped after its program was swapped in: moved its remaining pins into place');
  } else if (state === 'removed-staging') {
    log.warn(where, 'an earlier capacities change stopped before its program was swapped in: removed its staging directory (the running program and maps were not changed)');
  }
  return state;
}

/** The balancer's connection table and reals pinned in dir (close with closeMaps). */
function openConnectionMaps(dir: string): ConnectionMaps {
  const connTable = openPinnedMap(pinPath(dir, BALANCER_MAPS.connTable.name));
  try {
    return { connTable, reals: openPinnedMap(pinPath(dir, BALANCER_MAPS.reals.name)) };
  } catch (err) {
    closeFd(connTable.fd);
    throw err;
  }
}

const closeMaps = (m: ConnectionMaps) => [m.connTable, m.reals].forEach((x) => closeFd(x.fd));

/** What to do about it, in the agent's error when a change fails before the swap. */
const KEPT = 'The running program and its maps were not changed (they keep the old capacities and every connection)';

export interface CapacityChangeOptions {
  pinDir: string;
  nic: string;
  capacity?: BalancerCapacity;
}

/**
 * One capacities change, from open() to the swap. prepare() recovers what a
 * crashed change left and returns null when the pinned maps fit (adopt them
 * as usual).
 */
export class CapacityChange {
  private seen: SeenKeys | null = null;
  private first: CopyResult | null = null;
  private readonly started = process.hrtime.bigint();

  private constructor(
    private readonly opts: CapacityChangeOptions,
    readonly changes: LayoutChange[],
    readonly from: Partial<MapCapacities>,
    readonly to: MapCapacities,
  ) {}

  static prepare(opts: CapacityChangeOptions): CapacityChange | null {
    recover(opts.pinDir, opts.nic);
    const changes = pinnedLayoutChanges(opts.pinDir, BALANCER_MAPS, opts.capacity ?? {});
    if (changes.length === 0) return null;
    const change = new CapacityChange(opts, changes, pinnedCapacities(opts.pinDir), kernelCapacities(resolveCapacities(opts.capacity)));
    log.info({ pinDir: opts.pinDir, staging: change.staging, changes }, `the pinned maps do not fit the capacities asked or this version's map layout (${change.describe()}): building new maps beside them`);
    return change;
  }

  get staging(): string {
    return stagingDirOf(this.opts.pinDir);
  }

  /** "vips 512 -> 16, ..." or, for another layout at equal capacities, the maps and fields. */
  describe(): string {
    return describeCapacityChange(this.from, this.to) ||
      this.changes.map((c) => `${c.map} ${c.field} ${c.pinned} -> ${c.wanted}`).join(', ');
  }

  /** Step 1: the object with fresh maps pinned in the staging directory (empty: a cold start programs them). */
  loadNew(): LoadedBalancer {
    removeStagingDir(this.opts.pinDir); // prepare() recovered; anything here now is no one's
    try {
      return loadBalancer({ pinDir: this.staging, capacity: this.opts.capacity });
    } catch (err) {
      removeStagingDir(this.opts.pinDir);
      throw new Error(`capacities change (${this.describe()}): cannot create the new maps beside the running ones (both sets exist during the change: ` +
        `free kernel memory or choose smaller capacities): ${(err as Error).message}. ${KEPT}.`, { cause: err });
    }
  }

  /**
   * A failure before the swap: the staging directory goes (unless its
   * program is already the live one: then the pins move, see recover()).
   * Returns the error to exit with.
   */
  abandon(err: unknown): Error {
    const state = settle(this.opts.pinDir, this.opts.nic);
    const message = (err as Error)?.message ?? String(err);
    if (state === 'finished-move') return err instanceof Error ? err : new Error(message);
    return new Error(`capacities change (${this.describe()}) failed before the new program was swapped in: ${message}. ${KEPT}; ` +
      'fix the cause and restart the agent, or give it the old capacities again', { cause: err });
  }

  /** Step 2: the new program pinned beside its maps, then the old connection table copied into the new one. */
  async beforeSwap(lb: LoadedBalancer): Promise<void> {
    pinProgram(lb.progFd, pinPath(this.staging, PROGRAM_PIN));
    const old = openConnectionMaps(this.opts.pinDir);
    try {
      const { result, seen } = await copyConnections(old, { connTable: lb.maps.connTable, reals: lb.maps.reals });
      this.first = result;
      this.seen = seen;
    } finally {
      closeMaps(old);
    }
  }

  /** Step 4, once the new program is attached: the gap's entries, the pins moved, the staging directory gone. */
  async afterSwap(lb: LoadedBalancer, replaced: number | null): Promise<CapacityChangeResult> {
    let gap = emptyCopy();
    try {
      const old = openConnectionMaps(this.opts.pinDir);
      try {
        gap = await copyGapConnections(old, { connTable: lb.maps.connTable, reals: lb.maps.reals }, this.seen!);
      } finally {
        closeMaps(old);
      }
    } catch (err) {
      // The new program runs on its maps already: the pins must follow it whatever this copy did.
      log.warn({ err: (err as Error).message }, 'connections made during the swap not copied: they re-hash');
    }
    moveStagedPins(this.opts.pinDir);
    const first = this.first!;
    return {
      from: this.from,
      to: this.to,
      changes: this.changes,
      connections: {
        copied: first.copied + gap.copied,
        copiedAfterSwap: gap.copied,
        droppedRealGone: first.realGone + gap.realGone,
        droppedTableFull: first.tableFull,
        droppedUnreadable: first.unreadable,
        newerKept: gap.newer,
      },
      replaced,
      program: programId(lb.progFd),
    };
  }

  /** The program on the NIC now: the one the swap replaces. */
  private attachedId(): number | null {
    try {
      return attachedProgram(this.opts.nic)?.id ?? null;
    } catch {
      return null;
    }
  }

  /**
   * Steps 2 to 4 around `attach`, which swaps the program in (atomically
   * replacing the one pinned in the pin directory). Logs one line saying what
   * changed, and counts the connections in the metrics.
   */
  async swap(lb: LoadedBalancer, attach: () => void, metrics?: AgentMetrics): Promise<CapacityChangeResult> {
    const replaced = this.attachedId();
    try {
      await this.beforeSwap(lb);
      attach();
    } catch (err) {
      throw this.abandon(err);
    }
    const result = await this.afterSwap(lb, replaced);
    const c = result.connections;
    metrics?.countMovedConnections({ copied: c.copied, real_gone: c.droppedRealGone, table_full: c.droppedTableFull, unreadable: c.droppedUnreadable });
    const dropped = c.droppedRealGone + c.droppedTableFull + c.droppedUnreadable;
    log.info({
      ...result,
      ms: Number((process.hrtime.bigint() - this.started) / 1_000_000n),
    }, `map layout changed (${this.describe()}): program ${result.replaced ?? '(none)'} replaced by ${result.program} on new maps; ` +
      `${c.copied} connections copied (${c.copiedAfterSwap} of them made during the swap), ${dropped} dropped ` +
      `(real gone ${c.droppedRealGone}, table full ${c.droppedTableFull}, unreadable ${c.droppedUnreadable})`);
    return result;
  }
}
