/**
 * Which host interface leads to which local pod. CNIs that give each pod a
 * veth pair (ptp, kindnet, Calico, bridge-less setups generally) install a
 * host route per pod address, `10.244.1.5 dev veth1234 scope link` and its
 * /128 twin, through the pod's host-side veth: that route is what the
 * node's stack uses to deliver to the pod, so it is also what the backend
 * program must sit on. Only veths count: a /32 route through a tunnel or a
 * NIC is not a pod.
 */
import { compareIp, type IpAddress, parseIp } from '../../lib/ip.js';
import { linksOfType, type Link, type RouteEntry, routes } from '../net/iproute.js';

/** The interface kind pods sit behind. */
const POD_LINK_KIND = 'veth';
const HOST_PREFIX = { 4: 32, 6: 128 } as const;
const KERNEL_ROUTE = 'kernel';

export interface PodInterface {
  /** The host-side veth. */
  ifname: string;
  /** A veth re-created under the same name has another index, and none of the old one's attachments. */
  ifindex: number;
  /** The pod's addresses: every host route through this veth, sorted, IPv4 first. */
  addresses: IpAddress[];
}

/** Local pods' interfaces, found by any of their addresses. */
export class PodInterfaces {
  private readonly byAddress = new Map<string, PodInterface>();

  constructor(readonly all: readonly PodInterface[]) {
    for (const i of all) for (const a of i.addresses) this.byAddress.set(a.text, i);
  }

  /** The interface whose host route reaches the address; null when no local pod has it. */
  of(address: IpAddress): PodInterface | null {
    return this.byAddress.get(address.text) ?? null;
  }
}

/** A host route's address ("10.0.0.5" or "10.0.0.5/32"); null for any other route. */
function hostRouteAddress(r: RouteEntry, family: 4 | 6): IpAddress | null {
  if (r.gateway || !r.dev) return null; // through a gateway: not a pod on this node
  // The kernel's own route for an address of the node (an IPv6 /128 on a veth, the ptp plugin's gateway): no pod.
  if (r.protocol === KERNEL_ROUTE) return null;
  const [text, prefix] = r.dst.split('/');
  if (!text || text === 'default' || (prefix !== undefined && Number(prefix) !== HOST_PREFIX[family])) return null;
  try {
    const address = parseIp(text);
    return address.family === family ? address : null;
  } catch {
    return null;
  }
}

/** The pod interfaces that routes and veths of the namespace describe (what `ip -j` printed). */
export function podInterfacesFrom(routesV4: readonly RouteEntry[], routesV6: readonly RouteEntry[], veths: readonly Link[]): PodInterfaces {
  const byName = new Map(veths.map((l) => [l.ifname, { ifname: l.ifname, ifindex: l.ifindex, addresses: [] as IpAddress[] }]));
  for (const [family, list] of [[4, routesV4], [6, routesV6]] as const) {
    for (const r of list) {
      const address = hostRouteAddress(r, family);
      if (address) byName.get(r.dev!)?.addresses.push(address);
    }
  }
  const found = [...byName.values()].filter((i) => i.addresses.length > 0);
  for (const i of found) i.addresses.sort(compareIp);
  return new PodInterfaces(found.sort((a, b) => a.ifname.localeCompare(b.ifname)));
}

/** Reads the namespace's routes and veths now (three `ip -j` calls). */
export async function readPodInterfaces(): Promise<PodInterfaces> {
  const [v4, v6, veths] = await Promise.all([routes(4), routes(6), linksOfType(POD_LINK_KIND)]);
  return podInterfacesFrom(v4, v6, veths);
}
