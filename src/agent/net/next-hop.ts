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
import { defaultRoute, globalAddresses, link, neighbourMac } from './iproute.js';

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

/** Re-discovers periodically and reports changes; a failed discovery keeps the last good one. */
export class NextHopWatcher {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private current: NextHop,
    private readonly opts: NextHopOptions,
    private readonly onChange: (next: NextHop) => void,
    private readonly intervalMs = NEXT_HOP_POLL_MS,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async check(): Promise<void> {
    try {
      const next = await discoverNextHop({ ...this.opts, nic: this.current.nic });
      if (same(next, this.current)) return;
      log.info({ from: this.current, to: next }, 'next hop changed');
      this.current = next;
      this.onChange(next);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'next hop discovery failed; keeping the last one');
    }
  }
}
