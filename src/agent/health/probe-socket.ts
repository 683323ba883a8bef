/**
 * The prober's sockets, through koffi (Node has no raw sockets):
 *
 * - sending: the packet socket of L2 mode (net/packet-socket.ts), whole
 *   Ethernet frames out of the balancer NIC to the next hop, as the XDP
 *   program's XDP_TX sends them;
 * - receiving: one AF_PACKET datagram socket (IP packets without their link
 *   header, every interface) with a classic BPF filter that keeps only TCP to
 *   the probe port range, so the kernel queues nothing else for it. A packet
 *   socket sees the real's answer before netfilter: an INPUT rule dropping
 *   INVALID conntrack state (an answer to a SYN the node's stack never sent)
 *   does not hide it. Non-blocking: the prober drains it on its tick.
 *
 * The node's own stack also sees each answer and, having no socket for it,
 * answers a SYN-ACK with a RST of its own toward the VIP (routed like any
 * packet to the VIP); the prober sends its own RST through the tunnel anyway,
 * so the real frees the half-open connection whatever the node's stack does.
 * Both sockets belong to the network namespace of the thread that opens them.
 */
import koffi from 'koffi';
import { PacketSocket } from '../net/packet-socket.js';
import { AF_PACKET, libc, MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, socketCalls } from '../net/libc-socket.js';

const SockFilter = koffi.struct('xdplb_sock_filter', { code: 'uint16_t', jt: 'uint8_t', jf: 'uint8_t', k: 'uint32_t' });
const SockFprog = koffi.struct('xdplb_sock_fprog', { len: 'uint16_t', filter: koffi.pointer(SockFilter) });
const c = {
  ...socketCalls,
  setsockoptFilter: libc.func('int setsockopt(int fd, int level, int optname, const xdplb_sock_fprog *optval, uint32_t optlen)'),
  setsockoptInt: libc.func('int setsockopt(int fd, int level, int optname, const int *optval, uint32_t optlen)'),
};

/** linux/if_packet.h, linux/filter.h, asm/socket.h. */
/** htons(ETH_P_ALL): every protocol; the filter picks. */
const ETH_P_ALL_BE = 0x0300;
const SOL_SOCKET = 1;
const SO_ATTACH_FILTER = 26;
const SO_RCVBUF = 8;
const SOL_PACKET = 263;
const PACKET_IGNORE_OUTGOING = 23;
/** Enough of a packet for its IP and TCP headers (IPv6 40 + TCP with options 60). */
const SNAP_LEN = 128;
/** Room for the answers of a few thousand probes between two drains. */
const RECEIVE_BUFFER = 4 << 20;

/** Classic BPF opcodes (linux/bpf_common.h). */
const BPF = {
  LD_H_ABS: 0x28, LD_B_ABS: 0x30, LD_H_IND: 0x48, LDX_B_MSH: 0xb1,
  JEQ_K: 0x15, JGE_K: 0x35, JGT_K: 0x25, JSET_K: 0x45, RET_K: 0x06,
} as const;
/** SKF_AD_OFF + SKF_AD_PROTOCOL: the packet's ethertype (skb->protocol), in host order. */
const SKF_AD_PROTOCOL = 0xfffff000;
const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const PROTO_TCP = 6;
const IPV4_FRAG_OFFSET_MASK = 0x1fff;
/** Offsets from the IP header: IPv4 protocol and flags/fragment, IPv6 next header and TCP's destination port behind it. */
const IPV4_PROTO = 9;
const IPV4_FRAG = 6;
const IPV6_NEXT_HEADER = 6;
const IPV6_TCP_DPORT = 42;
const TCP_DPORT = 2;

type Insn = { code: number; jt?: string | number; jf?: string | number; k?: number; label?: string };

/** Resolves labelled jumps into offsets. */
function assemble(prog: Insn[]): { code: number; jt: number; jf: number; k: number }[] {
  const at = new Map(prog.flatMap((p, i) => (p.label ? [[p.label, i] as const] : [])));
  const off = (i: number, target: string | number | undefined) => {
    if (target === undefined) return 0;
    if (typeof target === 'number') return target;
    const t = at.get(target);
    if (t === undefined || t <= i) throw new Error(`bad jump to ${target}`);
    return t - i - 1;
  };
  return prog.map((p, i) => ({ code: p.code, jt: off(i, p.jt), jf: off(i, p.jf), k: (p.k ?? 0) >>> 0 }));
}

/** The filter: TCP over IPv4 (not a later fragment) or IPv6 (TCP right after the header), destination port in [lo, hi]. */
export function probeFilter(lo: number, hi: number) {
  return assemble([
    { code: BPF.LD_H_ABS, k: SKF_AD_PROTOCOL },
    { code: BPF.JEQ_K, k: ETH_P_IP, jt: 'v4', jf: 0 },
    { code: BPF.JEQ_K, k: ETH_P_IPV6, jt: 'v6', jf: 'drop' },
    { label: 'v4', code: BPF.LD_B_ABS, k: IPV4_PROTO },
    { code: BPF.JEQ_K, k: PROTO_TCP, jt: 0, jf: 'drop' },
    { code: BPF.LD_H_ABS, k: IPV4_FRAG },
    { code: BPF.JSET_K, k: IPV4_FRAG_OFFSET_MASK, jt: 'drop', jf: 0 },
    { code: BPF.LDX_B_MSH, k: 0 },
    { code: BPF.LD_H_IND, k: TCP_DPORT, jt: 0, jf: 0 },
    { code: BPF.JGE_K, k: lo, jt: 'high', jf: 'drop' },
    { label: 'v6', code: BPF.LD_B_ABS, k: IPV6_NEXT_HEADER },
    { code: BPF.JEQ_K, k: PROTO_TCP, jt: 0, jf: 'drop' },
    { code: BPF.LD_H_ABS, k: IPV6_TCP_DPORT },
    { code: BPF.JGE_K, k: lo, jt: 0, jf: 'drop' },
    { label: 'high', code: BPF.JGT_K, k: hi, jt: 'drop', jf: 0 },
    { code: BPF.RET_K, k: SNAP_LEN },
    { label: 'drop', code: BPF.RET_K, k: 0 },
  ]);
}

/** What the prober needs of its sockets (a test gives it a fake). */
export interface ProbeIo {
  send(frame: Buffer): void;
  /** Every packet queued since the last call (IP packets, no link header). */
  receive(): Buffer[];
  close(): void;
}

function fail(call: string): never {
  const code = koffi.errno();
  const hint = code === 1 || code === 13 ? ': raw sockets need CAP_NET_RAW' : '';
  throw new Error(`${call} failed: errno ${code}${hint}`);
}

export class ProbeSocket implements ProbeIo {
  private fd: number;
  private readonly sender: PacketSocket;
  private readonly buf = Buffer.alloc(SNAP_LEN);

  /** Opens both sockets in the calling thread's network namespace: frames leave through `nic`; answers to ports lo..hi are received on any interface. */
  constructor(nic: string, ports: { lo: number; hi: number }) {
    this.sender = new PacketSocket(nic);
    this.fd = c.socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, ETH_P_ALL_BE) as number;
    if (this.fd < 0) {
      this.sender.close();
      fail('socket(AF_PACKET, SOCK_DGRAM)');
    }
    try {
      const filter = probeFilter(ports.lo, ports.hi);
      if ((c.setsockoptFilter(this.fd, SOL_SOCKET, SO_ATTACH_FILTER, { len: filter.length, filter }, koffi.sizeof(SockFprog)) as number) < 0) fail('SO_ATTACH_FILTER');
      // Best effort: an older kernel without it hands us our own SYNs too, which the filter keeps and the prober ignores.
      c.setsockoptInt(this.fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, [1], 4);
      c.setsockoptInt(this.fd, SOL_SOCKET, SO_RCVBUF, [RECEIVE_BUFFER], 4);
      this.receive(); // what arrived before the filter was on
    } catch (err) {
      this.close();
      throw err;
    }
  }

  send(frame: Buffer): void {
    this.sender.send(frame);
  }

  receive(): Buffer[] {
    const out: Buffer[] = [];
    while (this.fd >= 0) {
      const n = Number(c.recv(this.fd, this.buf, this.buf.length, MSG_DONTWAIT));
      if (n < 0) break; // EAGAIN: drained (any other error: tried again at the next tick)
      out.push(Buffer.from(this.buf.subarray(0, n)));
    }
    return out;
  }

  close(): void {
    this.sender.close();
    if (this.fd >= 0) c.close(this.fd);
    this.fd = -1;
  }
}
