/**
 * Real packets toward a pod behind the backend program, shared by the netns
 * tests: an unmodified server started in a pod namespace, a tunnelled SYN
 * sent from a client namespace (built by hand: the machine has no ipip
 * module), and the first reply the client's NIC sees, caught with tcpdump.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PacketSocket } from '../../src/agent/net/packet-socket.js';
import { buildPacket, encapsulate } from './packets.js';
import type { TestNetns } from './netns.js';

/** pcap file header and record header sizes (libpcap's savefile format). */
const PCAP_FILE_HLEN = 24;
const PCAP_RECORD_HLEN = 16;
/** Offset of a record's captured length in its header. */
const PCAP_CAPLEN_OFFSET = 8;
const MS_PER_SECOND = 1000;
/** How long tcpdump waits for the reply: generous, for a loaded 2-core machine. */
export const CAPTURE_TIMEOUT_MS = 30_000;

/** Resolves when the child prints `marker` on stdout or stderr; rejects if it exits first. */
export function waitForOutput(child: ChildProcess, marker: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (d: Buffer) => {
      seen += d.toString();
      if (seen.includes(marker)) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before "${marker}": ${seen}`)));
  });
}

export function waitForExit(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

/** The frames of a pcap file (Ethernet link type). */
export function pcapFrames(file: string): Buffer[] {
  const data = readFileSync(file);
  const frames: Buffer[] = [];
  for (let off = PCAP_FILE_HLEN; off + PCAP_RECORD_HLEN <= data.length;) {
    const caplen = data.readUInt32LE(off + PCAP_CAPLEN_OFFSET);
    frames.push(data.subarray(off + PCAP_RECORD_HLEN, off + PCAP_RECORD_HLEN + caplen));
    off += PCAP_RECORD_HLEN + caplen;
  }
  return frames;
}

/** An unmodified TCP server on these ports, both families, that accepts and closes; prints "listening" once all listen. */
export function podServerScript(ports: readonly number[]): string {
  return `
const net = require('net');
let up = 0;
for (const port of ${JSON.stringify(ports)}) {
  net.createServer((s) => s.destroy()).listen({ port, host: '::', ipv6Only: false }, () => { if (++up === ${ports.length}) console.log('listening'); });
}`;
}

/** Starts the server in the pod's namespace and resolves once it listens (kill it with .kill()). */
export async function startPodServer(podNs: string, ports: readonly number[]): Promise<ChildProcess> {
  const server = spawn('ip', ['netns', 'exec', podNs, process.execPath, '-e', podServerScript(ports)], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await waitForOutput(server, 'listening', `the server in ${podNs}`);
  } catch (err) {
    server.kill();
    throw err;
  }
  return server;
}

export interface TunnelledSyn {
  client: TestNetns;
  /** The client's NIC, where the SYN leaves and the reply is caught. */
  nic: string;
  /** Where the capture file goes. */
  dir: string;
  srcMac: string;
  dstMac: string;
  /** The inner flow: client address and port to VIP:port. */
  src: string;
  sport: number;
  vip: string;
  vipPort: number;
  /** The outer header: the balancer's address (here the client's) to the pod's. */
  outerSrc: string;
  outerDst: string;
}

/**
 * Starts tcpdump on the client's NIC for `count` frames matching the filter,
 * calls send, and returns the frames caught (asserting that all came within
 * CAPTURE_TIMEOUT_MS).
 */
export async function captureWhile(client: TestNetns, nic: string, file: string, filter: string, send: () => void, count = 1): Promise<Buffer[]> {
  const capture = spawn('ip', ['netns', 'exec', client.name, 'timeout', String(CAPTURE_TIMEOUT_MS / MS_PER_SECOND), 'tcpdump', '-i', nic,
    '-n', '-U', '--immediate-mode', '-c', String(count), '-w', file, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    await waitForOutput(capture, 'listening on', 'tcpdump');
    send();
    assert.equal(await waitForExit(capture), 0, `tcpdump caught ${count} frame(s) of "${filter}" within ${CAPTURE_TIMEOUT_MS} ms`);
  } finally {
    capture.kill();
  }
  const frames = pcapFrames(file);
  assert.equal(frames.length, count);
  return frames;
}

/** Sends frames from the client's NIC as they are (the client builds the outer header itself). */
export function sendFrames(client: TestNetns, nic: string, frames: readonly Buffer[]): void {
  const socket = client.within(() => new PacketSocket(nic));
  try {
    for (const f of frames) socket.send(f);
  } finally {
    socket.close();
  }
}

/**
 * Sends a tunnelled SYN from the client and returns the first TCP segment
 * from the VIP's port to the SYN's source port that the client's NIC sees.
 */
export async function tunnelledSynReply(s: TunnelledSyn): Promise<Buffer> {
  const syn = buildPacket({ src: s.src, dst: s.vip, proto: 'tcp', sport: s.sport, dport: s.vipPort, syn: true, srcMac: s.srcMac, dstMac: s.dstMac });
  const [frame] = await captureWhile(s.client, s.nic, join(s.dir, `${s.sport}.pcap`), `tcp and src port ${s.vipPort} and dst port ${s.sport}`,
    () => sendFrames(s.client, s.nic, [encapsulate(syn, s.outerSrc, s.outerDst)]));
  return frame!;
}
