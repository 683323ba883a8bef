/**
 * The trace wire format: the query `xdplb trace` sends to the agent's
 * GET /trace, and what the agent streams back, one JSON object per line. Plain data: names instead of
 * numbers, wall-clock time, frames in base64.
 */
import { parsePositiveInt, parseTraceFilter, type TraceFilter } from './trace-filter.js';
import type { Reason, TracePath, Verdict } from './verdicts.js';

/** The agent's trace endpoint: GET it with a TraceQuery, read TraceLines. */
export const TRACE_ENDPOINT = '/trace';

/** The query of GET /trace as text: filter (see trace-filter.ts), rate, and when to stop. */
export interface TraceQuery {
  vip?: readonly string[];
  client?: string;
  port?: string;
  /** Records per second on the node. */
  rate?: string;
  /** Stop after this many packets. */
  count?: string;
  /** Stop after this long. */
  seconds?: string;
}

/** A TraceQuery parsed. */
export interface TraceRequest {
  filter: TraceFilter;
  rate?: number;
  count?: number;
  seconds?: number;
}

const SINGLE_PARAMS = ['client', 'port', 'rate', 'count', 'seconds'] as const;

/** The query string of a TraceQuery; parameters left undefined are not sent. */
export function traceSearchParams(query: TraceQuery): URLSearchParams {
  const params = new URLSearchParams();
  for (const v of query.vip ?? []) params.append('vip', v);
  for (const name of SINGLE_PARAMS) if (query[name] !== undefined) params.set(name, query[name]);
  return params;
}

/** Throws TraceFilterError naming the wrong parameter (the filter's first, then rate, count, seconds). */
export function parseTraceRequest(params: URLSearchParams): TraceRequest {
  const filter = parseTraceFilter({
    vip: params.getAll('vip'),
    client: params.get('client') ?? undefined,
    port: params.get('port') ?? undefined,
  });
  return {
    filter,
    rate: parsePositiveInt('rate', params.get('rate')),
    count: parsePositiveInt('count', params.get('count')),
    seconds: parsePositiveInt('seconds', params.get('seconds')),
  };
}

/** One traced packet. */
export interface TraceEvent {
  type: 'packet';
  /** Wall-clock time, ISO 8601 with microseconds. */
  time: string;
  /** Nanoseconds since the epoch (for pcap and ordering). */
  timeNs: string;
  cpu: number;
  family: number;
  proto: string;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  /** The VIP's id ("address:port/protocol"), null when the packet matched no VIP. */
  vip: string | null;
  real: string | null;
  realId: number;
  path: Lowercase<TracePath>;
  verdict: Verdict;
  /** The reason label of xdplb_packets_total (see the README's reason table). */
  reason: Lowercase<Reason>;
  frameLen: number;
  outLen: number;
  /** The frame as received, up to the snap length. */
  frameIn: string;
  /** The frame as transmitted (verdict tx), up to the snap length. */
  frameOut: string;
}

/** The first line of a session. */
export interface TraceStart {
  type: 'start';
  node: string;
  /** Installed VIPs the filter names now (the session follows VIPs that come later). */
  vips: string[];
  rate: number;
}

/** Matched packets that were not recorded since the last such line. */
export interface TraceLoss {
  type: 'lost';
  /** Matched by this session's rules over their rate (each session has its own). */
  rateLimited: number;
  /** The ring buffer was full. */
  ringFull: number;
}

/** The last line of a session. */
export interface TraceEnd {
  type: 'end';
  packets: number;
  /** Records dropped because the client read too slowly. */
  slowClient: number;
}

export type TraceLine = TraceStart | TraceEvent | TraceLoss | TraceEnd;
