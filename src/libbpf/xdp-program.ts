/**
 * One XDP program's life on a NIC, for an owner that pins it: attach, or
 * atomically replace the owner's earlier program (known by the id pinned at
 * the program's pin), never a program of someone else; detach only the
 * owner's program; remove the owner's pins. Attachment and pins outlive the
 * process, so the next run of the owner adopts them without a gap.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { attachedProgram, closeFd, pinnedProgramFd, pinnedProgramId, pinProgram, programId } from './pins.js';
import { attachXdp, detachXdp, type XdpMode } from './xdp.js';

/** A mode, or 'auto': the mode of the program replaced, else the first auto mode that attaches. */
export type XdpModeRequest = 'auto' | XdpMode;

/** Native runs in the driver before an skb exists; generic works on every NIC. */
export const AUTO_MODES: readonly XdpMode[] = ['native', 'generic'];

/** Who attaches the program, named in refusals so they say what to do. */
export interface XdpOwner {
  /** As the user knows it: "xdplb". */
  name: string;
  /** The command that detaches the owner's program and removes its pins. */
  detachCommand: string;
}

export interface XdpProgramOptions {
  nic: string;
  /** The owner's bpffs directory: the program's pin beside its maps' pins. */
  pinDir: string;
  /** The program's pin in pinDir. */
  pinName: string;
  owner: XdpOwner;
}

export interface Attachment {
  mode: XdpMode;
  /** The id of the owner's earlier program, replaced atomically; null when the NIC had none. */
  replaced: number | null;
  /** The auto modes that failed before `mode` attached, with the error of each. */
  failed: { mode: XdpMode; err: string }[];
  /** Set when the owner's program was in another mode: the NIC ran no program for gapMicros. */
  modeChange?: { from: XdpMode; gapMicros: number };
}

const NS_PER_MICRO = 1000n;

export interface Detachment {
  detached: boolean;
  /** The id of a program of someone else, left attached; null when there was none. */
  foreign: number | null;
}

export class XdpProgram {
  readonly nic: string;
  readonly pinPath: string;

  constructor(private readonly opts: XdpProgramOptions) {
    this.nic = opts.nic;
    this.pinPath = join(opts.pinDir, opts.pinName);
  }

  /**
   * Throws what attach() would refuse (a foreign program) without changing
   * anything, so a caller can refuse before it loads and pins. Returns the
   * owner's attached program.
   */
  assertAttachable(): { mode: XdpMode; id: number } | null {
    const { nic, owner } = this.opts;
    const current = attachedProgram(nic);
    if (!current) return null;
    if (current.id !== pinnedProgramId(this.pinPath)) {
      const off = current.mode === 'generic' ? 'xdpgeneric off' : 'xdp off';
      throw new Error(
        `another XDP program (id ${current.id}) is attached to ${nic} in ${current.mode} mode: ${owner.name} will not replace a program it did not attach. Detach it (ip link set dev ${nic} ${off}) or choose another NIC`,
      );
    }
    return current;
  }

  /**
   * Attaches the program, or swaps it for the owner's earlier one in one step
   * (compare-and-swap on the old program, in its mode), then pins it there.
   * Asked for another mode than the owner's program has, it changes modes:
   * the kernel keeps one mode per NIC, so the old program is detached and the
   * new one attached right after (the gap, in microseconds, is returned); if
   * the new mode fails, the program goes back on in the old mode and the
   * error is thrown.
   */
  attach(progFd: number, mode: XdpModeRequest, autoModes: readonly XdpMode[] = AUTO_MODES): Attachment {
    const current = this.assertAttachable();
    let attachment: Attachment;
    if (current && mode !== 'auto' && mode !== current.mode) {
      attachment = this.changeMode(progFd, current, mode);
    } else if (current) {
      // The old program from its pin, not by id: that would take CAP_SYS_ADMIN.
      const oldFd = pinnedProgramFd(this.pinPath);
      try {
        // Pinned anew since assertAttachable()? The replace would fail; say why instead.
        if (programId(oldFd) !== current.id) throw new Error(`the program pinned at ${this.pinPath} changed while ${this.opts.owner.name} attached: try again`);
        attachXdp(this.nic, progFd, { mode: current.mode, replaceFd: oldFd });
      } finally {
        closeFd(oldFd);
      }
      attachment = { mode: current.mode, replaced: current.id, failed: [] };
    } else {
      attachment = this.attachFirst(progFd, mode === 'auto' ? autoModes : [mode]);
    }
    // Unpinned, the program would look foreign to the next run.
    mkdirSync(this.opts.pinDir, { recursive: true });
    pinProgram(progFd, this.pinPath);
    return attachment;
  }

  /** Detaches the program if it is the owner's; a foreign program stays attached. */
  detach(): Detachment {
    const current = attachedProgram(this.nic);
    if (!current) return { detached: false, foreign: null };
    if (current.id !== pinnedProgramId(this.pinPath)) return { detached: false, foreign: current.id };
    detachXdp(this.nic, current.mode);
    return { detached: true, foreign: null };
  }

  /** detach(), then removes the pin directory: the program's pin and the maps'. */
  remove(): Detachment {
    const result = this.detach();
    removePinDir(this.opts.pinDir);
    return result;
  }

  private changeMode(progFd: number, current: { mode: XdpMode; id: number }, mode: XdpMode): Attachment {
    const started = process.hrtime.bigint();
    detachXdp(this.nic, current.mode);
    try {
      attachXdp(this.nic, progFd, { mode });
    } catch (err) {
      attachXdp(this.nic, progFd, { mode: current.mode });
      mkdirSync(this.opts.pinDir, { recursive: true });
      pinProgram(progFd, this.pinPath);
      throw new Error(`${mode} XDP did not attach to ${this.nic} (${(err as Error).message}): the program is back on in ${current.mode} mode`);
    }
    const gapMicros = Number((process.hrtime.bigint() - started) / NS_PER_MICRO);
    return { mode, replaced: current.id, failed: [], modeChange: { from: current.mode, gapMicros } };
  }

  /** Tries the modes in order; the last one's error is thrown when none attaches. */
  private attachFirst(progFd: number, modes: readonly XdpMode[]): Attachment {
    const failed: Attachment['failed'] = [];
    for (const [i, mode] of modes.entries()) {
      try {
        attachXdp(this.nic, progFd, { mode });
        return { mode, replaced: null, failed };
      } catch (err) {
        if (i === modes.length - 1) throw err;
        failed.push({ mode, err: (err as Error).message });
      }
    }
    throw new Error('no XDP mode to attach in');
  }
}

/**
 * Removes every pin in a pin directory, and the directory; a subdirectory is
 * not ours to remove, so it throws. Then the parents that attach() created with
 * it go too, while empty, up to the filesystem's mount point (/sys/fs/bpf
 * itself stays): an uninstall leaves nothing behind.
 */
export function removePinDir(pinDir: string): void {
  if (!existsSync(pinDir)) return;
  for (const name of readdirSync(pinDir)) rmSync(join(pinDir, name));
  rmdirSync(pinDir);
  for (let dir = dirname(pinDir); dir !== dirname(dir) && statSync(dir).dev === statSync(dirname(dir)).dev; dir = dirname(dir)) {
    try {
      rmdirSync(dir);
    } catch {
      return; // not empty (another balancer's pins), or not ours to remove
    }
  }
}
