/**
 * Node addressing: the from-NIC program's tcx links on the node's NICs (the
 * devices that carry the node addresses the balancers tunnel to), ingress,
 * each pinned in the pin directory as `nic_<device>_ingress` and found by its
 * pin as the pod veths' links are (pod-links.ts). Put at the front of the
 * device's chain: a CNI program there that ends the chain (TCX_PASS) would
 * otherwise keep the tunnel packets from it; everything that is not for a
 * node entry goes on to the next program untouched. Attached only while the
 * node holds Node addressing entries, so a node that serves none has nothing
 * on its NIC.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { componentLog } from '../../lib/log.js';
import type { BackendObject } from './backend-object.js';
import { detachPinnedLink, ensurePinnedLink, type LinkTarget } from './pod-links.js';

const log = componentLog('backend-nic');

const NIC_PIN = /^nic_(.+)_ingress$/;
export const nicLinkPin = (pinDir: string, ifname: string): string => join(pinDir, `nic_${ifname}_ingress`);

/** The devices that have a NIC link pinned in pinDir. */
export function pinnedNics(pinDir: string): string[] {
  if (!existsSync(pinDir)) return [];
  return readdirSync(pinDir).flatMap((n) => NIC_PIN.exec(n)?.[1] ?? []).sort();
}

export interface NicChange {
  attached: string[];
  updated: string[];
  detached: string[];
  failed: { ifname: string; action: 'attach' | 'detach'; err: string }[];
}

/** Takes the program off a NIC and removes its pin. */
export function detachNic(pinDir: string, ifname: string): void {
  const present = detachPinnedLink(nicLinkPin(pinDir, ifname), ifname);
  log.info({ ifname, interfacePresent: present }, 'Node addressing program detached from the NIC');
}

/** Detaches from every NIC with a pinned link and removes those pins; returns the devices. */
export function detachAllNics(pinDir: string): string[] {
  const nics = pinnedNics(pinDir);
  for (const ifname of nics) detachNic(pinDir, ifname);
  return nics;
}

export class NicLinks {
  constructor(private readonly pinDir: string, private readonly programs: BackendObject) {}

  /** Attaches to every one of these devices (once; again where re-created) and detaches from every other pinned one. */
  sync(wanted: readonly LinkTarget[]): NicChange {
    const change: NicChange = { attached: [], updated: [], detached: [], failed: [] };
    const names = new Set(wanted.map((i) => i.ifname));
    for (const ifname of pinnedNics(this.pinDir)) {
      if (names.has(ifname)) continue;
      try {
        detachNic(this.pinDir, ifname);
        change.detached.push(ifname);
      } catch (err) {
        change.failed.push({ ifname, action: 'detach', err: (err as Error).message });
      }
    }
    for (const nic of wanted) {
      try {
        const { did } = ensurePinnedLink(nicLinkPin(this.pinDir, nic.ifname), nic, 'ingress', this.programs.nicFd, this.programs.nicId, { first: true });
        if (did) {
          change[did].push(nic.ifname);
          log.info({ ifname: nic.ifname, ifindex: nic.ifindex }, did === 'attached' ? 'Node addressing program attached to the NIC'
            : 'the NIC\'s link now runs this agent\'s program');
        }
      } catch (err) {
        change.failed.push({ ifname: nic.ifname, action: 'attach', err: (err as Error).message });
      }
    }
    return change;
  }
}
