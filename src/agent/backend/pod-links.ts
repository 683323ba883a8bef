/**
 * The backend programs' tcx links on pods' host veths, one pair per pod,
 * each link pinned in the pin directory as `tcx_<veth>_<direction>`. The pin
 * holds the attachment while no agent runs, so a restart or upgrade changes
 * nothing on the pods' paths; the next agent finds the links by their pins.
 * The pins are the whole state: every sync reads them again, so nothing this
 * process remembers can drift from the kernel.
 *
 * A pinned link whose interface went away stays as an empty object (ifindex
 * 0); a veth re-created under the same name is another interface (another
 * ifindex) without our programs. Both show as a pinned ifindex that differs
 * from the interface's: the old link is dropped and a new one attached.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { componentLog } from '../../lib/log.js';
import { TcxLink, type TcxDirection } from '../../libbpf/tcx.js';
import type { BackendObject } from './backend-object.js';
import type { PodInterface } from './pod-interfaces.js';
import { makeRpFilterLoose, RP_FILTER_LOOSE, restoreRpFilter } from './rp-filter.js';

const log = componentLog('backend-links');

/**
 * Attach from-pod (ingress) before to-pod (egress): once a tunnel packet is
 * translated toward the pod, its reply must find the rewrite in place.
 * Detach in the opposite order, for the same reason.
 */
const ATTACH_ORDER: readonly TcxDirection[] = ['ingress', 'egress'];
const DETACH_ORDER: readonly TcxDirection[] = ['egress', 'ingress'];

const LINK_PIN_PREFIX = 'tcx_';
const LINK_PIN = /^tcx_(.+)_(ingress|egress)$/;

export const linkPin = (pinDir: string, ifname: string, direction: TcxDirection): string =>
  join(pinDir, `${LINK_PIN_PREFIX}${ifname}_${direction}`);

/** The interfaces that have a link pinned in pinDir, by the pins' names. */
export function pinnedLinkInterfaces(pinDir: string): string[] {
  if (!existsSync(pinDir)) return [];
  const names = readdirSync(pinDir).flatMap((n) => LINK_PIN.exec(n)?.[1] ?? []);
  return [...new Set(names)].sort();
}

export interface LinkChange {
  /** Veths that got the programs (new pods, or re-created veths). */
  attached: string[];
  /** Veths whose links were moved to this agent's programs in place (an agent of another build ran them). */
  updated: string[];
  /** Veths that lost them (gone, or no pod of a served backend any more). */
  detached: string[];
  failed: { ifname: string; action: 'attach' | 'detach'; err: string }[];
}

export class PodLinks {
  constructor(private readonly pinDir: string, private readonly programs: BackendObject) {}

  /** Attaches to every one of these veths (once; again where re-created) and detaches from every other pinned one. */
  sync(wanted: readonly PodInterface[]): LinkChange {
    const change: LinkChange = { attached: [], updated: [], detached: [], failed: [] };
    const names = new Set(wanted.map((i) => i.ifname));
    for (const ifname of pinnedLinkInterfaces(this.pinDir)) {
      if (names.has(ifname)) continue;
      try {
        detachPinned(this.pinDir, ifname);
        change.detached.push(ifname);
      } catch (err) {
        change.failed.push({ ifname, action: 'detach', err: (err as Error).message });
      }
    }
    for (const iface of wanted) {
      try {
        const did = this.ensure(iface);
        if (did) change[did].push(iface.ifname);
      } catch (err) {
        change.failed.push({ ifname: iface.ifname, action: 'attach', err: (err as Error).message });
      }
    }
    return change;
  }

  /** Puts both programs on the veth unless they are there; says what it did. */
  private ensure(iface: PodInterface): 'attached' | 'updated' | null {
    let did: 'attached' | 'updated' | null = null;
    let replaced = false;
    for (const direction of ATTACH_ORDER) {
      const r = ensurePinnedLink(linkPin(this.pinDir, iface.ifname, direction), iface, direction, this.programs.progFd[direction],
        this.programs.progId[direction]);
      replaced ||= r.replaced;
      if (r.did === 'attached') did = 'attached';
      else if (r.did === 'updated') did ??= 'updated';
    }
    const rpFilterWas = makeRpFilterLoose(iface.ifname);
    if (did === 'attached') {
      log.info({ ifname: iface.ifname, ifindex: iface.ifindex, pod: iface.addresses.map((a) => a.text), recreated: replaced },
        replaced ? 'backend programs back on the re-created pod veth' : 'backend programs attached to the pod veth');
    } else if (did === 'updated') {
      log.info({ ifname: iface.ifname, ifindex: iface.ifindex }, 'backend links on the pod veth now run this agent\'s programs');
    }
    if (rpFilterWas !== null && did === null) {
      // Only a veth that already had the programs: something set rp_filter again since (a CNI configuring the veth).
      log.warn({ ifname: iface.ifname, was: rpFilterWas }, `rp_filter was changed on a pod veth: set back to ${RP_FILTER_LOOSE} (loose)`);
    }
    return did;
  }
}

/** An interface as the links need it: a re-created one has another index. */
export interface LinkTarget {
  ifname: string;
  ifindex: number;
}

/**
 * Makes the link pinned at path run progFd on the interface: kept where it
 * does, moved to progFd in place where it runs another program (an agent of
 * another build), attached anew where there is none or it is on a gone or
 * re-created interface (that one is detached and unpinned). Says what it did.
 */
export function ensurePinnedLink(path: string, iface: LinkTarget, direction: TcxDirection, progFd: number, progId: number,
  opts: { first?: boolean } = {}): { did: 'attached' | 'updated' | null; replaced: boolean } {
  const pinned = TcxLink.fromPin(path, iface.ifname);
  let replaced = false;
  if (pinned) {
    try {
      const info = pinned.info();
      if (info.ifindex === iface.ifindex) {
        if (info.progId === progId) return { did: null, replaced };
        pinned.update(progFd);
        return { did: 'updated', replaced };
      }
      // The interface the link was on is gone (ifindex 0) or was re-created: that link holds nothing any more.
      pinned.detach();
      rmSync(path);
      replaced = true;
    } finally {
      pinned.close();
    }
  }
  const link = TcxLink.attach(iface.ifname, direction, progFd, opts);
  try {
    link.pin(path);
  } finally {
    link.close(); // the pin holds it
  }
  return { did: 'attached', replaced };
}

/** Detaches the link pinned at path and removes the pin; whether its interface was still there. False when nothing is pinned. */
export function detachPinnedLink(path: string, ifname: string): boolean {
  const link = TcxLink.fromPin(path, ifname);
  if (!link) return false;
  let present: boolean;
  try {
    present = link.info().ifindex !== 0;
    link.detach();
  } finally {
    link.close();
  }
  rmSync(path);
  return present;
}

/**
 * Takes both programs off a veth (to-pod first) and removes their pins;
 * where the veth is still there, its rp_filter goes back to the default.
 */
export function detachPinned(pinDir: string, ifname: string): void {
  let present = false;
  for (const direction of DETACH_ORDER) present = detachPinnedLink(linkPin(pinDir, ifname, direction), ifname) || present;
  if (present) {
    try {
      restoreRpFilter(ifname);
    } catch (err) {
      log.debug({ ifname, err: (err as Error).message }, 'rp_filter not restored (the veth is going)');
    }
  }
  log.info({ ifname, interfacePresent: present }, present ? 'backend programs detached from the pod veth' : 'pod veth gone: its backend links unpinned');
}

/** Detaches from every veth with pinned links and removes those pins (the maps' and programs' pins stay); returns the veths. */
export function detachAllPinned(pinDir: string): string[] {
  const ifnames = pinnedLinkInterfaces(pinDir);
  for (const ifname of ifnames) detachPinned(pinDir, ifname);
  return ifnames;
}
