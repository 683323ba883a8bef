/**
 * L2 mode's glue to the node: the l2 address map of the loaded program, the
 * announcement frames sent out the balancer NIC, the NIC's membership of the
 * solicited-node groups of the IPv6 addresses answered, and the metrics.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { BalancerMapSet } from '../../bpf/programs.js';
import { BALANCER_MAPS } from '../../bpf/maps.js';
import { TypedMap } from '../../libbpf/typed-map.js';
import type { IpAddress } from '../../lib/ip.js';
import type { NextHop } from '../net/next-hop.js';
import { solicitedNode, takeoverFrames } from './l2-frames.js';
import { sendFrames } from '../net/packet-socket.js';
import { setLinkMulticast } from '../net/iproute.js';
import { componentLog } from '../../lib/log.js';
import type { L2AddressMap, L2State } from './l2-announcer.js';

export function l2AddressMap(maps: BalancerMapSet): L2AddressMap {
  const schema = BALANCER_MAPS.l2Addrs;
  return new TypedMap(maps.l2Addrs, schema.key, schema.value);
}

const log = componentLog('l2');

/** The takeover frames out the balancer NIC, from its MAC: a gratuitous ARP request and reply (IPv4, as MetalLB sends), or an unsolicited Neighbor Advertisement (IPv6). */
export function announceAddress(nic: NextHop, address: IpAddress): void {
  sendFrames(nic.nic, takeoverFrames(nic.srcMac, address));
}

/**
 * Keeps the NIC a member of the solicited-node groups (their multicast MACs)
 * of exactly the IPv6 addresses answered, among those it added: several
 * addresses may share a group, and groups the NIC had before are not ours.
 */
export class SolicitedNodeGroups {
  private readonly joined = new Set<string>();
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly nic: () => string) {}

  /** Brings the memberships in line with these addresses, after the changes asked before (one at a time). */
  sync(answering: readonly IpAddress[]): Promise<void> {
    this.chain = this.chain.then(() => this.apply(answering));
    return this.chain;
  }

  /** Resolves once every change asked so far is made. */
  idle(): Promise<void> {
    return this.chain;
  }

  private async apply(answering: readonly IpAddress[]): Promise<void> {
    const wanted = new Set(answering.filter((a) => a.family === 6).map((a) => solicitedNode(a).mac));
    for (const mac of wanted) {
      if (this.joined.has(mac)) continue;
      try {
        await setLinkMulticast(this.nic(), mac, true);
        this.joined.add(mac);
      } catch (err) {
        log.warn({ mac, err: (err as Error).message }, 'L2: cannot join the solicited-node group: a NIC that filters multicast will not pass Neighbor Solicitations');
      }
    }
    for (const mac of [...this.joined]) {
      if (wanted.has(mac)) continue;
      await setLinkMulticast(this.nic(), mac, false).catch((err: Error) => log.warn({ mac, err: err.message }, 'L2: cannot leave the solicited-node group'));
      this.joined.delete(mac);
    }
  }
}

export function registerL2Metrics(registry: Registry, state: () => L2State): void {
  new Gauge({
    name: 'xdplb_l2_addresses_answered',
    help: 'VIP addresses this node answers ARP/NDP for (L2 mode): those the controller names it for.',
    registers: [registry],
    collect() {
      this.set(state().answering.length);
    },
  });
  new Counter({
    name: 'xdplb_l2_announcements_total',
    help: 'Gratuitous ARP / unsolicited Neighbor Advertisements sent for addresses this node took over.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(state().announcementsSent);
    },
  });
  new Counter({
    name: 'xdplb_l2_announce_errors_total',
    help: 'Announcements that could not be sent (see the log).',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(state().announceErrors);
    },
  });
}
