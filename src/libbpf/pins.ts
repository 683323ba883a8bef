/** Pinning a program, and finding the program attached to a NIC. */
import { existsSync, rmSync } from 'node:fs';
import { c, check } from './libbpf.js';
import { attachedXdpId, type XdpMode } from './xdp.js';

export function pinProgram(fd: number, path: string): void {
  if (existsSync(path)) rmSync(path); // a pin cannot be overwritten; the program lives on while attached
  check(`bpf_obj_pin(${path})`, c.objPin(fd, path) as number);
}

/** The mode and id of the XDP program on a NIC, if any. */
export function attachedProgram(nic: string): { mode: XdpMode; id: number } | null {
  for (const mode of ['native', 'generic'] as const) {
    const id = attachedXdpId(nic, mode);
    if (id) return { mode, id };
  }
  return null;
}

/**
 * An fd for the program pinned at path (close it with closeFd). Opening a pin
 * takes CAP_BPF and the pin file's permissions; opening a program by its id
 * (bpf_prog_get_fd_by_id) would take CAP_SYS_ADMIN.
 */
export function pinnedProgramFd(path: string): number {
  return check(`bpf_obj_get(${path})`, c.objGet(path) as number);
}

/** The id of a pinned program, or 0 when nothing is pinned there. */
export function pinnedProgramId(path: string): number {
  if (!existsSync(path)) return 0;
  const fd = pinnedProgramFd(path);
  try {
    return programId(fd);
  } finally {
    c.closeFd(fd);
  }
}

/** struct bpf_prog_info is large; its id is the u32 at offset 4. */
const BPF_PROG_INFO_SIZE = 256;
const BPF_PROG_INFO_ID_OFFSET = 4;

export function programId(fd: number): number {
  const info = Buffer.alloc(BPF_PROG_INFO_SIZE);
  const len = [info.length];
  check('bpf_obj_get_info_by_fd', c.objGetInfoByFd(fd, info, len) as number);
  return info.readUInt32LE(BPF_PROG_INFO_ID_OFFSET);
}

export function closeFd(fd: number): void {
  c.closeFd(fd);
}
