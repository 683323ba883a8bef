/**
 * Sending whole Ethernet frames out of a NIC: an AF_PACKET socket through
 * koffi (libc's socket, sendto, close). For the gratuitous ARP and unsolicited
 * neighbor advertisements of L2 mode (src/agent/announce/l2-frames.ts), which
 * no socket of the IP stack can send. The socket only sends (protocol 0: the
 * kernel queues nothing on it) and belongs to the network namespace of the
 * thread that opens it.
 */
import koffi from 'koffi';
import { AF_PACKET, errnoName, errnos as errno, SOCK_CLOEXEC, SOCK_RAW, socketCalls as c } from './libc-socket.js';

/** Protocol 0: a socket that receives nothing (sending names the protocol per frame). */
const RECEIVE_NOTHING = 0;

/** struct sockaddr_ll (linux/if_packet.h); family and ifindex in host order, protocol in network order. */
const SockaddrLl = { family: 0, protocol: 2, ifindex: 4, size: 20 } as const;
/** Where a frame's ethertype is: after the destination and source MACs. */
const ETHERTYPE_OFFSET = 12;
const ETH_HLEN = 14;

export class PacketSocketError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
    what: string,
  ) {
    super(`${call} failed: ${errnoName(errno)} (${errno}): ${what}`);
    this.name = 'PacketSocketError';
  }
}

function openHint(code: number): string {
  if (code === errno.EPERM || code === errno.EACCES) {
    return 'sending raw frames needs CAP_NET_RAW: run as root or add NET_RAW to the container\'s capabilities';
  }
  if (code === errno.EAFNOSUPPORT) return 'the kernel has no AF_PACKET support (CONFIG_PACKET)';
  return 'the kernel refused a packet socket';
}

function sendHint(code: number, nic: string, len: number): string {
  if (code === errno.ENETDOWN) return `${nic} is down: bring it up ("ip link set ${nic} up")`;
  if (code === errno.ENXIO || code === errno.ENODEV) return `${nic} no longer exists: it was removed or re-created; open a new PacketSocket`;
  if (code === errno.EMSGSIZE) return `the ${len}-byte frame is larger than ${nic}'s MTU allows`;
  if (code === errno.ENOBUFS || code === errno.EAGAIN) return `${nic}'s transmit queue is full: try again`;
  return `sending a ${len}-byte frame out of ${nic}`;
}

/** A send-only raw socket on one NIC. */
export class PacketSocket {
  private fd: number;
  private readonly addr: Buffer;

  /** Opens it on `nic` of the calling thread's network namespace. */
  constructor(readonly nic: string) {
    const ifindex = c.ifNameToIndex(nic) as number;
    if (!ifindex) throw new Error(`network interface "${nic}" does not exist (check the NIC name with "ip link")`);
    this.fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, RECEIVE_NOTHING) as number;
    if (this.fd < 0) {
      const code = koffi.errno();
      throw new PacketSocketError('socket(AF_PACKET, SOCK_RAW)', code, openHint(code));
    }
    this.addr = Buffer.alloc(SockaddrLl.size);
    this.addr.writeUInt16LE(AF_PACKET, SockaddrLl.family);
    this.addr.writeInt32LE(ifindex, SockaddrLl.ifindex);
  }

  /** Sends one whole Ethernet frame (destination MAC first) as it is. */
  send(frame: Buffer): void {
    if (this.fd < 0) throw new Error(`the packet socket on ${this.nic} is closed`);
    if (frame.length < ETH_HLEN) throw new Error(`a ${frame.length}-byte frame has no Ethernet header (${ETH_HLEN} bytes)`);
    frame.copy(this.addr, SockaddrLl.protocol, ETHERTYPE_OFFSET, ETHERTYPE_OFFSET + 2);
    const sent = Number(c.sendto(this.fd, frame, frame.length, 0, this.addr, this.addr.length));
    if (sent < 0) {
      const code = koffi.errno();
      throw new PacketSocketError(`sendto(${this.nic})`, code, sendHint(code, this.nic, frame.length));
    }
    if (sent !== frame.length) throw new Error(`sendto(${this.nic}) sent ${sent} of ${frame.length} bytes`);
  }

  close(): void {
    if (this.fd < 0) return;
    c.close(this.fd);
    this.fd = -1;
  }
}

/** Sends frames out of `nic` in order through a socket opened for them. */
export function sendFrames(nic: string, frames: readonly Buffer[]): void {
  const socket = new PacketSocket(nic);
  try {
    for (const f of frames) socket.send(f);
  } finally {
    socket.close();
  }
}
