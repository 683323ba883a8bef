/**
 * L2 mode on a node: the VIP addresses this node answers ARP / Neighbor
 * Solicitations for (the XDP program answers them from the l2 address map),
 * and the gratuitous ARP / unsolicited Neighbor Advertisements it sends when
 * it takes an address over, so clients and switches move to this node's MAC
 * at once instead of when their neighbor entry expires.
 *
 * An address is answered only while the controller names this node for it
 * (status.l2.node) and the maps hold the VIP. On stop everything is dropped
 * first, before the Lease goes: another node takes over and announces.
 */
import { componentLog } from '../../lib/log.js';
import { type IpAddress, parseIp } from '../../lib/ip.js';
import { L2_F_ANSWER } from '../../bpf/consts.js';

const log = componentLog('l2');

/** Announcements sent per takeover: the first moves the clients; the others cover a lost frame. */
export const ANNOUNCE_REPEATS = 3;
export const ANNOUNCE_INTERVAL_MS = 1000;
/** What the l2 address map holds for an address answered. */
export const L2_ANSWER = L2_F_ANSWER;

/** The l2 address map, as its TypedMap handle offers it. */
export interface L2AddressMap {
  keys(): IpAddress[];
  set(key: IpAddress, value: number): void;
  delete(key: IpAddress): boolean;
}

/** Sends one gratuitous ARP (IPv4) or unsolicited Neighbor Advertisement (IPv6) for an address. */
export type Announce = (address: IpAddress) => void;

export interface L2State {
  answering: string[];
  announcementsSent: number;
  announceErrors: number;
}

export class L2Announcer {
  private answering = new Map<string, IpAddress>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  announcementsSent = 0;
  announceErrors = 0;

  /**
   * `answered`: told the addresses answered after every change (the NIC joins
   * their solicited-node groups), and once at the start for what the map held.
   */
  constructor(private readonly map: L2AddressMap, private readonly announce: Announce,
    private readonly opts: { repeats?: number; intervalMs?: number; answered?: (addresses: IpAddress[]) => void } = {}) {
    // A restarted agent keeps answering what the map holds until it learns what the controller says.
    for (const a of map.keys()) this.answering.set(a.text, a);
    this.opts.answered?.([...this.answering.values()]);
  }

  /** Answers exactly these addresses; announces the new ones. */
  set(addresses: readonly string[]): void {
    if (this.stopped) return;
    const next = new Map(addresses.map((t) => {
      const a = parseIp(t);
      return [a.text, a] as const;
    }));
    for (const [text, a] of this.answering) {
      if (next.has(text)) continue;
      this.map.delete(a);
      log.info({ address: text }, 'L2: no longer answering for this address (another node has it)');
    }
    const taken: IpAddress[] = [];
    for (const [text, a] of next) {
      if (this.answering.has(text)) continue;
      this.map.set(a, L2_ANSWER);
      taken.push(a);
    }
    this.answering = next;
    this.opts.answered?.([...next.values()]);
    if (taken.length > 0) {
      log.info({ addresses: taken.map((a) => a.text) }, 'L2: answering for these addresses now; announcing them');
      this.announceRepeatedly(taken);
    }
  }

  /** Stops answering for every address (before the agent's Lease goes): another node takes them over. */
  withdrawAll(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const a of this.answering.values()) this.map.delete(a);
    if (this.answering.size > 0) log.info({ addresses: [...this.answering.keys()] }, 'L2: stopped answering for every address');
    this.answering.clear();
    this.opts.answered?.([]);
  }

  state(): L2State {
    return { answering: [...this.answering.keys()].sort(), announcementsSent: this.announcementsSent, announceErrors: this.announceErrors };
  }

  private announceRepeatedly(addresses: IpAddress[]): void {
    const repeats = this.opts.repeats ?? ANNOUNCE_REPEATS;
    const interval = this.opts.intervalMs ?? ANNOUNCE_INTERVAL_MS;
    const send = () => {
      for (const a of addresses) {
        if (!this.answering.has(a.text)) continue; // given away meanwhile
        try {
          this.announce(a);
          this.announcementsSent++;
        } catch (err) {
          this.announceErrors++;
          log.warn({ address: a.text, err: (err as Error).message }, 'L2: cannot send the announcement; clients move when their neighbor entry expires');
        }
      }
    };
    send();
    for (let i = 1; i < repeats; i++) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        send();
      }, i * interval);
      t.unref();
      this.timers.add(t);
    }
  }
}
