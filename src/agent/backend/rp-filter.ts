/**
 * Reverse-path filtering on a pod's host veth. A reply the from-pod program
 * rewrote enters the node on that veth with the VIP as its source; strict
 * rp_filter (1) drops it, since the route back to the VIP does not go through
 * the veth. Loose (2) only asks for some route to the VIP (the default route).
 * The kernel uses max(all, interface), so the veth's own 2 is enough whatever
 * `all` is, and nothing else on the node changes (bpf/BACKEND.md).
 *
 * Read and written through /proc/sys synchronously: the file resolves to the
 * network namespace of the calling thread, which is the agent's main thread
 * (libuv's pool threads may sit in another namespace in tests that setns).
 */
import { readFileSync, writeFileSync } from 'node:fs';

export const RP_FILTER_LOOSE = 2;

/**
 * Where the node's net sysctls are. In a container that is not privileged
 * /proc/sys is read-only, and the runtime refuses a mount inside /proc, so the
 * DaemonSet mounts the node's /proc/sys/net elsewhere (deploy/backend.yaml,
 * as Cilium does) and names it here; with the host network it shows the
 * node's namespace.
 */
export const PROC_SYS_NET_ENV = 'XDPLB_PROC_SYS_NET';
const procSysNet = (): string => process.env[PROC_SYS_NET_ENV] || '/proc/sys/net';
const rpFilterPath = (ifname: string): string => `${procSysNet()}/ipv4/conf/${ifname}/rp_filter`;
const DEFAULT_CONF = 'default';

export function rpFilter(ifname: string): number {
  return Number(readFileSync(rpFilterPath(ifname), 'utf8').trim());
}

/** Sets loose mode when the interface has another; returns the value it had (null: it was loose already). */
export function makeRpFilterLoose(ifname: string): number | null {
  const was = rpFilter(ifname);
  if (was === RP_FILTER_LOOSE) return null;
  try {
    writeFileSync(rpFilterPath(ifname), String(RP_FILTER_LOOSE));
  } catch (err) {
    throw new Error(`cannot set net.ipv4.conf.${ifname}.rp_filter=${RP_FILTER_LOOSE} (needed so the pod's rewritten replies are not dropped): ${(err as Error).message}`);
  }
  return was;
}

/**
 * Puts back what a new interface gets (net.ipv4.conf.default.rp_filter):
 * what the value was before the agent set it is not kept across restarts,
 * and a CNI that sets its own will set it again on the pod's next veth.
 */
export function restoreRpFilter(ifname: string): void {
  writeFileSync(rpFilterPath(ifname), String(rpFilter(DEFAULT_CONF)));
}
