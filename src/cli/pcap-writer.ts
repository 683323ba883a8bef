/**
 * A classic pcap file (the format tcpdump -w writes) of traced frames: the
 * frame as received and, for transmitted packets, the frame as sent.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { TRACE_SNAPLEN } from '../api/verdicts.js';
import type { TraceEvent } from '../api/trace.js';

const PCAP_MAGIC_MICROS = 0xa1b2c3d4;
const PCAP_VERSION_MAJOR = 2;
const PCAP_VERSION_MINOR = 4;
const LINKTYPE_ETHERNET = 1;
const GLOBAL_HEADER_BYTES = 24;
const RECORD_HEADER_BYTES = 16;
const NS_PER_S = 1_000_000_000n;
const NS_PER_US = 1000n;

export class PcapWriter {
  private fd: number | null;
  frames = 0;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'w');
    const h = Buffer.alloc(GLOBAL_HEADER_BYTES);
    h.writeUInt32LE(PCAP_MAGIC_MICROS, 0);
    h.writeUInt16LE(PCAP_VERSION_MAJOR, 4);
    h.writeUInt16LE(PCAP_VERSION_MINOR, 6);
    h.writeInt32LE(0, 8); // thiszone: timestamps are UTC
    h.writeUInt32LE(0, 12); // sigfigs
    h.writeUInt32LE(TRACE_SNAPLEN, 16);
    h.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    writeSync(this.fd, h);
  }

  private frame(timeNs: bigint, data: Buffer, originalLength: number): void {
    if (this.fd === null) throw new Error(`pcap file ${this.path} is closed`);
    const h = Buffer.alloc(RECORD_HEADER_BYTES);
    h.writeUInt32LE(Number(timeNs / NS_PER_S), 0);
    h.writeUInt32LE(Number((timeNs % NS_PER_S) / NS_PER_US), 4);
    h.writeUInt32LE(data.length, 8);
    h.writeUInt32LE(originalLength, 12);
    writeSync(this.fd, Buffer.concat([h, data]));
    this.frames++;
  }

  /** Writes the received frame, then the transmitted one if there is one. */
  write(e: TraceEvent): void {
    const t = BigInt(e.timeNs);
    const frameIn = Buffer.from(e.frameIn, 'base64');
    if (frameIn.length) this.frame(t, frameIn, e.frameLen);
    const frameOut = Buffer.from(e.frameOut, 'base64');
    if (frameOut.length) this.frame(t, frameOut, e.outLen);
  }

  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }
}
