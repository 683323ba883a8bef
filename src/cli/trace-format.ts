/** One readable line per traced packet, for people at a terminal. */
import type { TraceEvent } from '../api/trace.js';

const endpoint = (addr: string, port: number, family: number) =>
  family === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;

export function formatTraceEvent(e: TraceEvent): string {
  const time = e.time.slice(11, 26); // HH:MM:SS.micros
  const flow = !e.family
    ? 'non-IP frame'
    : e.sport || e.dport
      ? `${e.proto} ${endpoint(e.src, e.sport, e.family)} > ${endpoint(e.dst, e.dport, e.family)}`
      : `${e.proto} ${e.src} > ${e.dst}`;
  const target = e.vip === null ? 'no vip' : `vip ${e.vip}${e.real ? ` real ${e.real}` : ''}`;
  const path = e.path === 'none' ? '' : ` ${e.path}`;
  const size = e.verdict === 'tx' ? `${e.frameLen} -> ${e.outLen} bytes` : `${e.frameLen} bytes`;
  return `${time} cpu${e.cpu} ${flow}  ${target}${path}  ${e.verdict.toUpperCase()} ${e.reason}  ${size}`;
}
