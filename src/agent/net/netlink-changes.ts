/**
 * Whether links, addresses or routes of the network namespace changed since
 * the last look: an rtnetlink socket (through koffi) subscribed to those
 * multicast groups, drained without blocking. It says only that something
 * changed, not what: the caller reads the whole state again, so a message
 * lost to a full socket buffer (ENOBUFS, counted as a change) or one that
 * arrives out of order costs nothing. The socket belongs to the network
 * namespace of the thread that opens it.
 */
import koffi from 'koffi';
import { errnoName, errnos, MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_RAW, socketCalls as c } from './libc-socket.js';

/** linux/socket.h, linux/netlink.h. */
const AF_NETLINK = 16;
const NETLINK_ROUTE = 0;
/** The rtnetlink groups (RTMGRP_*) of what the callers follow: veths, the node's addresses, host routes to pods. */
export const RtnlGroup = {
  LINK: 0x1,
  IPV4_IFADDR: 0x10,
  IPV4_ROUTE: 0x40,
  IPV6_IFADDR: 0x100,
  IPV6_ROUTE: 0x400,
} as const;
/** struct sockaddr_nl: family (u16), pad (u16), pid (u32, 0: the kernel picks), groups (u32). */
const SockaddrNl = { family: 0, groups: 8, size: 12 } as const;
/** Messages are read only to be counted: one page holds many. */
const READ_BUFFER = 8192;

export class NetlinkChanges {
  private readonly buf = Buffer.alloc(READ_BUFFER);

  private constructor(private fd: number) {}

  /** Opens the socket, subscribed to `groups` (RtnlGroup bits); throws with the errno when the kernel refuses. */
  static open(groups: number): NetlinkChanges {
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE) as number;
    if (fd < 0) throw new Error(`rtnetlink socket: ${errnoName(koffi.errno())}`);
    const addr = Buffer.alloc(SockaddrNl.size);
    addr.writeUInt16LE(AF_NETLINK, SockaddrNl.family);
    addr.writeUInt32LE(groups, SockaddrNl.groups);
    if ((c.bind(fd, addr, addr.length) as number) < 0) {
      const err = koffi.errno();
      c.close(fd);
      throw new Error(`rtnetlink bind to groups 0x${groups.toString(16)}: ${errnoName(err)}`);
    }
    return new NetlinkChanges(fd);
  }

  /** Drains what arrived; true when anything did (or the socket overflowed: something changed, unseen). */
  changed(): boolean {
    let any = false;
    while (this.fd >= 0) {
      const n = Number(c.recv(this.fd, this.buf, this.buf.length, MSG_DONTWAIT));
      if (n >= 0) {
        any = true;
        continue;
      }
      if (koffi.errno() !== errnos.EAGAIN) any = true; // ENOBUFS: messages were dropped
      break;
    }
    return any;
  }

  close(): void {
    if (this.fd >= 0) c.close(this.fd);
    this.fd = -1;
  }
}
