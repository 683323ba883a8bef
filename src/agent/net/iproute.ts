/**
 * Reading routes, links, addresses and neighbours through `ip -j` (netlink, so
 * it sees the process's network namespace; /sys/class/net would not under
 * `nsenter --net`).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function ipJson<T>(args: string[]): Promise<T> {
  try {
    const { stdout } = await run('ip', ['-j', ...args], { encoding: 'utf8' });
    return (stdout.trim() ? JSON.parse(stdout) : []) as T;
  } catch (err) {
    throw new Error(`"ip -j ${args.join(' ')}" failed: ${(err as Error).message.trim()} (is iproute2 installed?)`);
  }
}

export interface Route {
  gateway?: string;
  dev?: string;
}

export async function defaultRoute(family: 4 | 6): Promise<Route | null> {
  const routes = await ipJson<(Route & { nexthops?: Route[] })[]>([`-${family}`, 'route', 'show', 'default']);
  const r = routes[0];
  if (!r) return null;
  // A multipath default route: the first next hop (all must lead to the same fabric).
  return r.gateway ? r : (r.nexthops?.[0] ?? null);
}

export interface Link {
  /** A NIC deleted and created again under the same name gets a new index (and loses its XDP program). */
  ifindex: number;
  ifname: string;
  address: string;
  mtu: number;
}

export async function link(dev: string): Promise<Link> {
  const l = await linkIfExists(dev);
  if (!l) throw new Error(`network interface "${dev}" does not exist (check with "ip link")`);
  return l;
}

/** What `ip link show dev X` says when there is no X (iproute2's messages are not translated). */
const NO_SUCH_DEVICE = /Device "[^"]*" does not exist/;

/** The link, or null when no link has that name (`ip` failing for another reason still throws). */
export async function linkIfExists(dev: string): Promise<Link | null> {
  try {
    return (await ipJson<Link[]>(['link', 'show', 'dev', dev]))[0] ?? null;
  } catch (err) {
    if (NO_SUCH_DEVICE.test((err as Error).message)) return null;
    throw err;
  }
}

/** Every link of the network namespace. */
export async function allLinks(): Promise<Link[]> {
  return ipJson<Link[]>(['link', 'show']);
}

export async function globalAddresses(dev: string): Promise<{ v4: string[]; v6: string[] }> {
  const out = await ipJson<{ addr_info?: { family: string; local: string; scope: string }[] }[]>(['addr', 'show', 'dev', dev]);
  const info = out[0]?.addr_info ?? [];
  const global = info.filter((a) => a.scope === 'global');
  return {
    v4: global.filter((a) => a.family === 'inet').map((a) => a.local),
    v6: global.filter((a) => a.family === 'inet6').map((a) => a.local),
  };
}

/** Every link with its addresses (`ip -j addr show`). */
export async function linksWithAddresses(): Promise<(Link & { addr_info?: { local?: string }[] })[]> {
  return ipJson(['addr', 'show']);
}

/** Every address configured in this network namespace, on any link, of any scope. */
export async function allAddresses(): Promise<string[]> {
  const out = await ipJson<{ addr_info?: { local?: string }[] }[]>(['addr', 'show']);
  return out.flatMap((l) => (l.addr_info ?? []).flatMap((a) => (a.local ? [a.local] : [])));
}

const USABLE_NEIGH_STATES = new Set(['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT', 'NOARP']);

export async function neighbourMac(address: string, dev: string): Promise<string | null> {
  const out = await ipJson<{ lladdr?: string; state?: string[] }[]>(['neigh', 'show', 'to', address, 'dev', dev]);
  const n = out.find((e) => e.lladdr && (e.state ?? []).some((s) => USABLE_NEIGH_STATES.has(s)));
  return n?.lladdr ?? null;
}

export interface Subnet {
  /** An address of this namespace. */
  local: string;
  prefixlen: number;
}

/** Every global address of this network namespace with its prefix length: the subnets the node is directly on. */
export async function subnets(): Promise<Subnet[]> {
  const out = await ipJson<{ addr_info?: { local?: string; prefixlen?: number; scope?: string }[] }[]>(['addr', 'show']);
  return out.flatMap((l) => (l.addr_info ?? []).flatMap((a) =>
    a.local && a.prefixlen !== undefined && a.scope === 'global' ? [{ local: a.local, prefixlen: a.prefixlen }] : []));
}

/**
 * Adds or removes a link-layer multicast address of a NIC (`ip maddr`): a NIC
 * drops multicast it has not joined, and a Neighbor Solicitation goes to the
 * target's solicited-node group. Kept by the kernel, not by this process, so
 * the XDP program goes on receiving them while the agent restarts. Adding an
 * address already added, or removing one that is not, is not an error.
 */
export async function setLinkMulticast(dev: string, mac: string, present: boolean): Promise<void> {
  try {
    await run('ip', ['maddr', present ? 'add' : 'del', mac, 'dev', dev], { encoding: 'utf8' });
  } catch (err) {
    const text = (err as { stderr?: string }).stderr ?? (err as Error).message;
    if (present ? /File exists/.test(text) : /No such file|Cannot assign/.test(text)) return;
    throw new Error(`"ip maddr ${present ? 'add' : 'del'} ${mac} dev ${dev}" failed: ${text.trim()}`);
  }
}

export interface RouteEntry {
  /** "default", a prefix ("10.0.0.0/24") or, for a host route, a bare address. */
  dst: string;
  dev?: string;
  gateway?: string;
  /** Who made it: "kernel" for the routes of the namespace's own addresses, "boot" or "static" for `ip route add` and CNIs. */
  protocol?: string;
}

/** Every route of the main table of one family. */
export async function routes(family: 4 | 6): Promise<RouteEntry[]> {
  return ipJson<RouteEntry[]>([`-${family}`, 'route', 'show']);
}

/** Every link of one kind (`ip link show type veth`). */
export async function linksOfType(kind: string): Promise<Link[]> {
  return ipJson<Link[]>(['link', 'show', 'type', kind]);
}
