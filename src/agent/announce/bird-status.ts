/**
 * The agent's BGP sessions as BIRD reports them (`show protocols all`), read
 * from the reply's codes: 1002 starts a protocol's summary row, 1006 its
 * details (BGP state, neighbor, each channel's route counts); and their BFD
 * sessions (`show bfd sessions`, code 1020).
 */
import { isIP } from 'node:net';
import type { BirdReplyLine } from './bird-client.js';
import { canonicalIp } from '../../lib/ip.js';
import { BFD_PROTOCOL, PEER_PROTOCOL_PREFIX } from './bird-config.js';

const PROTOCOL_ROW = 1002;
const PROTOCOL_DETAILS = 1006;
const ESTABLISHED = 'Established';

export interface BgpSession {
  /** BIRD's protocol name (xdplb_peer_...). */
  protocol: string;
  /** The peer's address, from "Neighbor address:"; null before BIRD shows it. */
  neighbor: string | null;
  /** BGP's state: Idle, Connect, Active, OpenSent, OpenConfirm, Established (BIRD's "BGP state:"). */
  bgpState: string;
  established: boolean;
  /** Routes exported to the peer, over all its channels: what the peer has been sent. */
  exportedRoutes: number;
  /** BIRD's Info column: the last error, when there is one ("Active Socket: Connection refused"). */
  info: string;
  /** The peer's BFD session: Up, Down, Init, AdminDown; null when BFD is off or BIRD has no session for the peer. */
  bfdState?: string | null;
}

/** The bgp protocols of the agent in a `show protocols all` reply. */
export function parseSessions(lines: readonly BirdReplyLine[]): BgpSession[] {
  const sessions: BgpSession[] = [];
  let current: BgpSession | null = null;
  for (const { code, text } of lines) {
    if (code === PROTOCOL_ROW) {
      // name proto table state since [info...]: the since column may hold a date and a time.
      const cols = text.trim().split(/\s+/);
      current = null;
      if (cols[1] !== 'BGP' || !cols[0]?.startsWith(PEER_PROTOCOL_PREFIX)) continue;
      const info = text.trim().split(/\s+/).slice(5).join(' ');
      current = { protocol: cols[0], neighbor: null, bgpState: 'Idle', established: false, exportedRoutes: 0, info };
      sessions.push(current);
    } else if (code === PROTOCOL_DETAILS && current) {
      const line = text.trim();
      const state = /^BGP state:\s+(\S+)/.exec(line);
      if (state) {
        current.bgpState = state[1]!;
        current.established = state[1] === ESTABLISHED;
      }
      const neighbor = /^Neighbor address:\s+(\S+)/.exec(line);
      if (neighbor) current.neighbor = neighbor[1]!.split('%')[0]!;
      const routes = /^Routes:\s+\d+ imported, (?:\d+ filtered, )?(\d+) exported/.exec(line);
      if (routes) current.exportedRoutes += Number(routes[1]);
    }
  }
  return sessions;
}

const BFD_SESSIONS = 1020;

/**
 * The BFD sessions of the agent's bfd protocol in a `show bfd sessions`
 * reply (code 1020: the protocol's name, a header, one row per session:
 * address, interface, state, since, interval, timeout), as peer address ->
 * state (Up, Down, Init, AdminDown).
 */
export function parseBfdSessions(lines: readonly BirdReplyLine[], protocol = BFD_PROTOCOL): Map<string, string> {
  const states = new Map<string, string>();
  let mine = false;
  for (const { code, text } of lines) {
    if (code !== BFD_SESSIONS) continue;
    const line = text.trim();
    const name = /^(\S+):$/.exec(line);
    if (name) {
      mine = name[1] === protocol;
      continue;
    }
    const cols = line.split(/\s+/);
    const address = cols[0]!.split('%')[0]!;
    if (!mine || cols.length < 3 || !isIP(address)) continue; // the header, or not a row
    states.set(canonicalIp(address), cols[2]!);
  }
  return states;
}
