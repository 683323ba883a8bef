/**
 * Where encapsulated packets go: the NIC of the default route, the gateway's
 * MAC (resolved when the neighbour table lacks it), the NIC's own MAC, outer
 * source addresses and MTU. Followed by polling, so a changed gateway MAC or
 * route is picked up.
 */
import { createSocket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import { componentLog } from '../../lib/log.js';
import type { EncapConfig } from '../../bpf/structs.js';
import { defaultRoute, globalAddresses, link, linkIfExists, neighbourMac } from './iproute.js';
import { type EncapSetting, withLastGood } from './last-good.js';

const log = componentLog('next-hop');

/** The discard port: a datagram to it makes the kernel resolve the gateway, and nothing answers. */
const DISCARD_PORT = 9;
const RESOLVE_TIMEOUT_MS = 3000;
const RESOLVE_POLL_MS = 100;

export interface NextHopOptions {
  /** NIC to use; default: the device of the IPv4 (else IPv6) default route. */
  nic?: string;
  /** Fixed next hop MAC: no discovery. */
  nextHopMac?: string;
  srcV4?: string;
  srcV6?: string;
}

export interface NextHop extends EncapConfig {
  nic: string;
  /** The NIC's index: a new one means the NIC was re-created and the program must go on again. */
  ifindex: number;
  gateway: string | null;
}

export async function defaultNic(): Promise<string> {
  const r = (await defaultRoute(4)) ?? (await defaultRoute(6));
  if (!r?.dev) throw new Error('no default route to take the NIC from: pass --nic');
  return r.dev;
}

function poke(gateway: string): Promise<void> {
  return new Promise((resolveDone) => {
    const sock = createSocket(isIPv4(gateway) ? 'udp4' : 'udp6');
    sock.on('error', () => {
      sock.close();
      resolveDone();
    });
    sock.send(Buffer.alloc(0), DISCARD_PORT, gateway, () => {
      sock.close();
      resolveDone();
    });
  });
}

async function resolveMac(gateway: string, dev: string): Promise<string | null> {
  let mac = await neighbourMac(gateway, dev);
  if (mac) return mac;
  await poke(gateway);
  const deadline = Date.now() + RESOLVE_TIMEOUT_MS;
  while (!mac && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, RESOLVE_POLL_MS));
    mac = await neighbourMac(gateway, dev);
  }
  return mac;
}

/** One discovery; throws with what is missing and how to fix it. */
export async function discoverNextHop(opts: NextHopOptions): Promise<NextHop> {
  const nic = opts.nic ?? (await defaultNic());
  const l = await link(nic);
  const addrs = await globalAddresses(nic);
  let gateway: string | null = null;
  let nextHopMac = opts.nextHopMac;
  if (!nextHopMac) {
    for (const family of [4, 6] as const) {
      const r = await defaultRoute(family);
      if (r?.gateway && (!r.dev || r.dev === nic)) {
        gateway = r.gateway;
        break;
      }
    }
    if (!gateway) throw new Error(`no default route with a gateway on ${nic}: pass --next-hop-mac`);
    const mac = await resolveMac(gateway, nic);
    if (!mac) throw new Error(`gateway ${gateway} on ${nic} did not resolve to a MAC within ${RESOLVE_TIMEOUT_MS} ms`);
    nextHopMac = mac;
  }
  return {
    nic,
    ifindex: l.ifindex,
    gateway,
    nextHopMac,
    srcMac: l.address,
    srcV4: opts.srcV4 ?? addrs.v4[0],
    srcV6: opts.srcV6 ?? addrs.v6[0],
    maxPktSize: l.mtu,
  };
}

const same = (a: NextHop, b: NextHop) => JSON.stringify(a) === JSON.stringify(b);

/** How often the next hop is re-discovered unless the agent is told otherwise. */
export const NEXT_HOP_POLL_MS = 2000;

/** What one poll found. */
export interface NextHopState {
  /** What to program: the last good values of what is missing (see last-good.ts). */
  nextHop: NextHop;
  /** Settings lost since they were last seen, kept from before. */
  stale: readonly EncapSetting[];
  /** False while no link has the NIC's name (deleted, perhaps to be re-created). */
  nicPresent: boolean;
  /** Why discovery failed, when it did. */
  problem?: string;
}

/**
 * Re-discovers every interval and hands each poll's state to the agent (one
 * loop for next hop, addresses and the NIC's presence: polling `ip` every 2 s
 * costs little, and `ip monitor` would be one more child process to keep
 * alive and still need this poll for the gateway's MAC). Logs each loss once,
 * and each recovery once.
 */
export class NextHopWatcher {
  private timer: NodeJS.Timeout | null = null;
  private state: NextHopState;
  /** A poll waits up to RESOLVE_TIMEOUT_MS for a MAC: longer than an interval, so polls must not overlap. */
  private polling = false;

  constructor(
    initial: NextHop,
    private readonly opts: NextHopOptions,
    /** Called after every poll; `changed`: the state differs from the previous poll's. */
    private readonly onPoll: (state: NextHopState, changed: boolean) => void,
    private readonly intervalMs = NEXT_HOP_POLL_MS,
  ) {
    this.state = { nextHop: initial, stale: [], nicPresent: true };
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async check(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const next = await this.observe();
      const previous = this.state;
      const changed = !same(next.nextHop, previous.nextHop) || next.stale.join() !== previous.stale.join() || next.nicPresent !== previous.nicPresent;
      if (changed) logChanges(previous, next);
      this.state = next;
      this.onPoll(next, changed);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot read the NIC\'s state; keeping the last one');
    } finally {
      this.polling = false;
    }
  }

  private async observe(): Promise<NextHopState> {
    const last = this.state.nextHop;
    // A missing NIC has nothing to discover: keep everything for when it returns.
    const nicNow = await linkIfExists(last.nic);
    if (!nicNow) return { nextHop: last, stale: this.state.stale, nicPresent: false };
    try {
      return { ...withLastGood(last, await discoverNextHop({ ...this.opts, nic: last.nic })), nicPresent: true };
    } catch (err) {
      // The link itself is known: a NIC re-created without its gateway yet still gets the program back, with its own MAC.
      const kept = withLastGood(last, null);
      const nextHop = { ...kept.nextHop, ifindex: nicNow.ifindex, srcMac: nicNow.address, maxPktSize: nicNow.mtu };
      return { nextHop, stale: kept.stale, nicPresent: true, problem: (err as Error).message };
    }
  }
}

function logChanges(previous: NextHopState, next: NextHopState): void {
  const nic = next.nextHop.nic;
  if (previous.nicPresent && !next.nicPresent) {
    log.error({ nic }, `${nic} is gone: its XDP program went with it; the agent puts it back when ${nic} returns (readiness fails until then)`);
    return;
  }
  if (!previous.nicPresent && next.nicPresent) log.info({ nic, ifindex: next.nextHop.ifindex }, `${nic} is back`);
  for (const setting of next.stale) {
    if (!previous.stale.includes(setting)) {
      log.warn({ nic, setting, kept: keptValue(next.nextHop, setting), problem: next.problem },
        `${describe(setting)} lost: encapsulating with the last good value until it returns`);
    }
  }
  for (const setting of previous.stale) {
    if (!next.stale.includes(setting)) log.info({ nic, setting, now: keptValue(next.nextHop, setting) }, `${describe(setting)} is back`);
  }
  if (!same(previous.nextHop, next.nextHop)) log.info({ from: previous.nextHop, to: next.nextHop }, 'next hop changed');
}

function describe(setting: EncapSetting): string {
  return { source_v4: 'the NIC\'s IPv4 source address', source_v6: 'the NIC\'s IPv6 source address', next_hop: 'the next hop (gateway route or MAC)' }[setting];
}

function keptValue(n: NextHop, setting: EncapSetting): string | undefined {
  return { source_v4: n.srcV4, source_v6: n.srcV6, next_hop: n.nextHopMac }[setting];
}
