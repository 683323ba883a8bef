/**
 * The libc socket calls the agent makes through koffi (Node has no raw,
 * packet or netlink sockets), and the flags they share, declared once: the
 * packet socket of L2 mode and the health probes, the probes' receiving
 * socket and the rtnetlink change socket use them. Calls that pass a struct
 * of their own (setsockopt with a filter program) stay with their module.
 */
import koffi from 'koffi';

export const libc = koffi.load('libc.so.6');

export const socketCalls = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  bind: libc.func('int bind(int fd, const uint8_t *addr, uint32_t addrlen)'),
  sendto: libc.func('intptr_t sendto(int fd, const uint8_t *buf, size_t len, int flags, const uint8_t *addr, uint32_t addrlen)'),
  recv: libc.func('intptr_t recv(int fd, uint8_t *buf, size_t len, int flags)'),
  close: libc.func('int close(int fd)'),
  ifNameToIndex: libc.func('unsigned int if_nametoindex(const char *name)'),
};

/** linux/socket.h, linux/net.h, asm/fcntl.h. */
export const AF_PACKET = 17;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const MSG_DONTWAIT = 0x40;

/** Errno values by name, for the platform koffi runs on. */
export const errnos = koffi.os.errno as Record<string, number>;
export const errnoName = (n: number): string => Object.keys(errnos).find((k) => errnos[k] === n) ?? `errno ${n}`;
