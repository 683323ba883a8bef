/**
 * A BPF_MAP_TYPE_RINGBUF reader through libbpf. Records are copied out in
 * consume(), synchronously on the JS thread: the caller polls, so no libbpf
 * thread ever calls back into JavaScript.
 */
import koffi from 'koffi';
import { c, check, checkPtr, RingSampleFn, type RingBufferPtr } from './libbpf.js';

export class RingBufferReader {
  private rb: RingBufferPtr | null;
  private readonly callback: bigint;
  private batch: Buffer[] = [];

  constructor(readonly name: string, mapFd: number) {
    this.callback = koffi.register((_ctx: unknown, data: unknown, size: number | bigint) => {
      // Copy now: the view is the kernel's ring memory, reused once consume
      // returns and unmapped by close(). (Buffer.from(ArrayBuffer) would alias it.)
      this.batch.push(Buffer.from(new Uint8Array(koffi.view(data, Number(size)) as ArrayBuffer)));
      return 0;
    }, koffi.pointer(RingSampleFn));
    try {
      this.rb = checkPtr(`ring_buffer__new(${name})`, c.ringBufferNew(mapFd, this.callback, null, null) as RingBufferPtr | null);
    } catch (err) {
      koffi.unregister(this.callback);
      throw err;
    }
  }

  /** Every record written since the last call, oldest first (copies). */
  consume(): Buffer[] {
    if (!this.rb) throw new Error(`ring buffer ${this.name} is closed`);
    this.batch = [];
    check(`ring_buffer__consume(${this.name})`, c.ringBufferConsume(this.rb) as number);
    return this.batch;
  }

  close(): void {
    if (!this.rb) return;
    c.ringBufferFree(this.rb);
    this.rb = null;
    koffi.unregister(this.callback);
  }
}
