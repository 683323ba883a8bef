/**
 * Attaching tc programs with tcx (Linux 6.6): a BPF link on an interface's
 * ingress or egress. The link lives as long as its fd or a pin of it: closing
 * the last of them detaches the program. An interface that goes away takes
 * the attachment with it, but a pinned link stays as an empty object (its
 * ifindex reads 0) until its pin is removed.
 * libbpf 1.1 has no bpf_program__attach_tcx, but its bpf_link_create passes
 * any attach type through to BPF_LINK_CREATE.
 */
import { existsSync, rmSync } from 'node:fs';
import { c, check, ifIndex } from './libbpf.js';

/** enum bpf_attach_type (linux/bpf.h of Linux 6.6; newer than the build's headers). */
const BPF_TCX_INGRESS = 46;
const BPF_TCX_EGRESS = 47;
/** enum bpf_link_type: BPF_LINK_TYPE_TCX. */
const BPF_LINK_TYPE_TCX = 11;

/**
 * struct bpf_link_info: type, id and prog_id (u32 at 0, 4, 8), then a union
 * aligned to 8 whose tcx member is { u32 ifindex; u32 attach_type; }. The
 * buffer is larger than the struct; the kernel fills what it knows.
 */
const BPF_LINK_INFO_SIZE = 128;
const LINK_INFO = { type: 0, id: 4, progId: 8, tcxIfindex: 16, tcxAttachType: 20 } as const;

/**
 * struct bpf_link_create_opts as libbpf 1.1 reads it: size_t sz, then __u32
 * flags (the rest, zero, is not sent: sz says where it ends). BPF_F_BEFORE
 * with no relative program (Linux 6.6's mprog flags) puts a program at the
 * front of the interface's chain.
 */
const LINK_CREATE_OPTS = { size: 16, sz: 0, flags: 8 } as const;
const BPF_F_BEFORE = 1 << 3;

/** Packets the interface receives (ingress) or transmits (egress). */
export type TcxDirection = 'ingress' | 'egress';

const attachTypeOf = (direction: TcxDirection): number => (direction === 'ingress' ? BPF_TCX_INGRESS : BPF_TCX_EGRESS);

/** What the kernel says of a tcx link. */
export interface TcxLinkInfo {
  id: number;
  /** The program the link runs. */
  progId: number;
  /** The interface it is on; 0 once that interface is gone (the link is then empty). */
  ifindex: number;
  direction: TcxDirection;
}

export class TcxLink {
  private fd: number;

  private constructor(readonly ifname: string, readonly direction: TcxDirection, fd: number) {
    this.fd = fd;
  }

  /**
   * Appends the program to the interface's tcx chain of that direction (in
   * the calling thread's namespace); with `first`, puts it before every
   * program already there (one that ends the chain with a final verdict,
   * as a CNI's may, would otherwise keep packets from it).
   */
  static attach(ifname: string, direction: TcxDirection, progFd: number, opts: { first?: boolean } = {}): TcxLink {
    let createOpts: Buffer | null = null;
    if (opts.first) {
      createOpts = Buffer.alloc(LINK_CREATE_OPTS.size);
      createOpts.writeBigUInt64LE(BigInt(LINK_CREATE_OPTS.size), LINK_CREATE_OPTS.sz);
      createOpts.writeUInt32LE(BPF_F_BEFORE, LINK_CREATE_OPTS.flags);
    }
    const fd = check(`bpf_link_create(${ifname}, tcx ${direction})`, c.linkCreate(progFd, ifIndex(ifname), attachTypeOf(direction), createOpts) as number,
      'tcx needs Linux 6.6 or later and a tc (SCHED_CLS) program');
    return new TcxLink(ifname, direction, fd);
  }

  /** The link pinned at path (attached to `ifname` when it was pinned); null when nothing is pinned there. */
  static fromPin(path: string, ifname: string): TcxLink | null {
    if (!existsSync(path)) return null;
    const fd = check(`bpf_obj_get(${path})`, c.objGet(path) as number);
    const info = readInfo(fd, path);
    if (info.type !== BPF_LINK_TYPE_TCX) {
      c.closeFd(fd);
      throw new Error(`${path} is a BPF link of type ${info.type}, not tcx (${BPF_LINK_TYPE_TCX}): not ours; remove it by hand (rm ${path})`);
    }
    return new TcxLink(ifname, info.direction, fd);
  }

  info(): TcxLinkInfo {
    const { type: _type, ...rest } = readInfo(this.fd, `${this.ifname} tcx ${this.direction}`);
    return rest;
  }

  /** Pins the link at path (a pin holds the attachment after this process ends); an older pin there is replaced. */
  pin(path: string): void {
    if (existsSync(path)) rmSync(path);
    check(`bpf_obj_pin(${path})`, c.objPin(this.fd, path) as number);
  }

  /** Swaps the link's program in one step (an upgraded agent's program over the same maps). */
  update(progFd: number): void {
    check(`bpf_link_update(${this.ifname} tcx ${this.direction})`, c.linkUpdate(this.fd, progFd, null) as number);
  }

  /** Takes the program off the interface now, whoever else holds the link (a pin); close() still releases the fd. */
  detach(): void {
    // On a link whose interface is gone the kernel has nothing to take off and returns 0.
    check(`bpf_link_detach(${this.ifname} tcx ${this.direction})`, c.linkDetach(this.fd) as number);
  }

  /** Releases this fd: the program comes off unless a pin holds the link. */
  close(): void {
    if (this.fd < 0) return;
    c.closeFd(this.fd);
    this.fd = -1;
  }
}

function readInfo(fd: number, what: string): TcxLinkInfo & { type: number } {
  const info = Buffer.alloc(BPF_LINK_INFO_SIZE);
  const len = [info.length];
  check(`bpf_obj_get_info_by_fd(${what})`, c.objGetInfoByFd(fd, info, len) as number);
  return {
    type: info.readUInt32LE(LINK_INFO.type),
    id: info.readUInt32LE(LINK_INFO.id),
    progId: info.readUInt32LE(LINK_INFO.progId),
    ifindex: info.readUInt32LE(LINK_INFO.tcxIfindex),
    direction: info.readUInt32LE(LINK_INFO.tcxAttachType) === BPF_TCX_INGRESS ? 'ingress' : 'egress',
  };
}
