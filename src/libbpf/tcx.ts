/**
 * Attaching tc programs with tcx (Linux 6.6): a BPF link on an interface's
 * ingress or egress. The link lives as long as its fd: closing it, or the
 * process ending, detaches the program; so does the interface going away.
 * libbpf 1.1 has no bpf_program__attach_tcx, but its bpf_link_create passes
 * any attach type through to BPF_LINK_CREATE.
 */
import { c, check, ifIndex } from './libbpf.js';

/** enum bpf_attach_type (linux/bpf.h of Linux 6.6; newer than the build's headers). */
const BPF_TCX_INGRESS = 46;
const BPF_TCX_EGRESS = 47;

/** Packets the interface receives (ingress) or transmits (egress). */
export type TcxDirection = 'ingress' | 'egress';

export class TcxLink {
  private fd: number;

  private constructor(readonly ifname: string, readonly direction: TcxDirection, fd: number) {
    this.fd = fd;
  }

  /** Appends the program to the interface's tcx chain of that direction (in the calling thread's namespace). */
  static attach(ifname: string, direction: TcxDirection, progFd: number): TcxLink {
    const type = direction === 'ingress' ? BPF_TCX_INGRESS : BPF_TCX_EGRESS;
    const fd = check(`bpf_link_create(${ifname}, tcx ${direction})`, c.linkCreate(progFd, ifIndex(ifname), type, null) as number,
      'tcx needs Linux 6.6 or later and a tc (SCHED_CLS) program');
    return new TcxLink(ifname, direction, fd);
  }

  /** Detaches the program. */
  close(): void {
    if (this.fd < 0) return;
    c.closeFd(this.fd);
    this.fd = -1;
  }
}
