/** Attaching XDP programs to interfaces (netlink attachments: they outlive the process). */
import koffi from 'koffi';
import { XdpAttachOpts, c, check, ifIndex } from './libbpf.js';

/** From linux/if_link.h. */
const XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0;
const XDP_FLAGS_SKB_MODE = 1 << 1;
const XDP_FLAGS_DRV_MODE = 1 << 2;
const XDP_FLAGS_REPLACE = 1 << 4;

export type XdpMode = 'native' | 'generic';

const modeFlags = (mode: XdpMode): number => (mode === 'native' ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);

export interface AttachOptions {
  mode: XdpMode;
  /** Replace exactly this program (compare-and-swap); absent: fail if one is attached. */
  replaceFd?: number;
}

export function attachXdp(ifname: string, progFd: number, opts: AttachOptions): void {
  const ifindex = ifIndex(ifname);
  let flags = modeFlags(opts.mode);
  let attachOpts = null;
  if (opts.replaceFd !== undefined) {
    flags |= XDP_FLAGS_REPLACE;
    attachOpts = { sz: koffi.sizeof(XdpAttachOpts), old_prog_fd: opts.replaceFd };
  } else {
    flags |= XDP_FLAGS_UPDATE_IF_NOEXIST;
  }
  check(`bpf_xdp_attach(${ifname}, ${opts.mode})`, c.xdpAttach(ifindex, progFd, flags, attachOpts) as number);
}

export function detachXdp(ifname: string, mode: XdpMode): void {
  check(`bpf_xdp_detach(${ifname}, ${mode})`, c.xdpDetach(ifIndex(ifname), modeFlags(mode), null) as number);
}

/** The id of the program attached in that mode, or 0. */
export function attachedXdpId(ifname: string, mode: XdpMode): number {
  const out = [0];
  check(`bpf_xdp_query_id(${ifname})`, c.xdpQueryId(ifIndex(ifname), modeFlags(mode), out) as number);
  return out[0] ?? 0;
}
