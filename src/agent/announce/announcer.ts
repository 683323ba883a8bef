/**
 * Announces the VIPs this node serves through BIRD: what the dataplane holds
 * after programming, while the node is healthy; nothing once it is not, or
 * once it is stopping. Every change rewrites BIRD's configuration and reloads
 * it (`configure`): the static routes change, the sessions stay up.
 *
 * Until the agent has programmed its maps once, BIRD is left as it is: an
 * agent restarted after a crash finds the program attached and BIRD still
 * announcing, and must not withdraw routes that are being served.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIRD_CONFIG_NAME, BIRD_SOCKET_NAME, type AgentBgpPeer, type AgentBgpSettings } from '../../api/xdpbalancer.js';
import { canonicalIp } from '../../lib/ip.js';
import { componentLog } from '../../lib/log.js';
import { type BfdTimers, bfdTimers, parseCommunity, peerFamilies } from './bgp-settings.js';
import { BirdClient } from './bird-client.js';
import { type BirdPeer, peerProtocolName, renderBirdConfig } from './bird-config.js';
import { type BgpSession, parseBfdSessions, parseSessions } from './bird-status.js';
import { firstProblem, type HealthCheck } from './health.js';

const log = componentLog('announce');

/** How often health is checked: a detached program is noticed within this. */
export const HEALTH_INTERVAL_MS = 1000;
/** How often BIRD's sessions are read, for metrics and the log. */
export const SESSION_POLL_MS = 2000;
/** A reload BIRD did not take is tried again after this (the sidecar may still be starting). */
export const RELOAD_RETRY_MS = 1000;
/** On stop: how long to wait for BIRD to have sent every withdrawal. */
export const WITHDRAW_SENT_TIMEOUT_MS = 5000;
/** On stop: then how long routers get to act on it before the agent goes on (and may detach). */
export const DEFAULT_WITHDRAW_SETTLE_MS = 2000;
const POLL_MS = 100;
/** The configuration holds MD5 passwords: for the agent and BIRD (both root) only. */
const CONFIG_MODE = 0o600;

export interface AnnouncerOptions {
  settings: AgentBgpSettings;
  /** Holds BIRD's configuration (written here) and its control socket. */
  birdDir: string;
  /** Resolved: spec.bgp.routerID or the node's IPv4 address. */
  routerId: string;
  /** The node's IPv6 address: the next hop of IPv6 routes over IPv4 sessions. */
  nextHopV6?: string;
  /** The peers this node talks to (see connected-peers.ts). */
  peers: AgentBgpPeer[];
  checks: HealthCheck[];
  withdrawSettleMs?: number;
}

export interface AnnouncerState {
  /** Addresses BIRD was last told to announce. */
  announced: string[];
  /** Why the node withdrew, or null while it announces what it serves. */
  withdrawnBecause: string | null;
  sessions: BgpSession[];
  /** Whether the sessions run BFD (spec.bgp.bfd). */
  bfd: boolean;
}

export class Announcer {
  private readonly client: BirdClient;
  private readonly configPath: string;
  private programmed: string[] = [];
  private started = false;
  private stopping = false;
  private unhealthy: string | null = null;
  /** The configuration BIRD last accepted, and what it announces. */
  private applied: string | null = null;
  private announced: string[] = [];
  private sessions: BgpSession[] = [];
  private readonly passwords = new Map<string, string>();
  private chain: Promise<void> = Promise.resolve();
  private retry: NodeJS.Timeout | null = null;
  private timers: NodeJS.Timeout[] = [];
  /** spec.bgp.bfd with its defaults; undefined: no BFD. */
  private readonly bfd: BfdTimers | undefined;

  constructor(private readonly opts: AnnouncerOptions) {
    this.client = new BirdClient(join(opts.birdDir, BIRD_SOCKET_NAME));
    this.configPath = join(opts.birdDir, BIRD_CONFIG_NAME);
    this.bfd = opts.settings.bfd ? bfdTimers(opts.settings.bfd) : undefined;
  }

  /** Starts the health checks and the session polls; nothing is announced before setProgrammed(). */
  start(): void {
    const health = setInterval(() => this.checkHealth(), HEALTH_INTERVAL_MS);
    const sessions = setInterval(() => void this.pollSessions(), SESSION_POLL_MS);
    for (const t of [health, sessions]) t.unref();
    this.timers = [health, sessions];
    void this.pollSessions();
  }

  /** The VIP addresses the dataplane holds now (after a successful programming). */
  setProgrammed(addresses: readonly string[]): Promise<void> {
    this.programmed = [...new Set(addresses.map(canonicalIp))].sort();
    this.started = true;
    return this.sync();
  }

  /**
   * Withdraws every route for good (the agent is stopping): reloads BIRD
   * with none, waits until BIRD has sent the withdrawals, then gives the
   * routers time to move the traffic. Resolves in any case: stopping goes on.
   */
  async withdrawAll(): Promise<void> {
    this.stopping = true;
    this.started = true;
    for (const t of this.timers) clearInterval(t);
    if (this.retry) clearTimeout(this.retry);
    const deadline = Date.now() + WITHDRAW_SENT_TIMEOUT_MS;
    while (this.announced.length > 0 || this.applied === null) {
      await this.sync();
      if (this.announced.length === 0 && this.applied !== null) break;
      if (Date.now() > deadline) {
        log.error({ birdDir: this.opts.birdDir }, 'could not withdraw the VIP routes (BIRD did not reload): stopping anyway');
        return;
      }
      await sleep(RELOAD_RETRY_MS);
    }
    while (Date.now() < deadline) {
      await this.pollSessions();
      if (this.sessions.every((s) => s.exportedRoutes === 0)) break;
      await sleep(POLL_MS);
    }
    const settle = this.opts.withdrawSettleMs ?? DEFAULT_WITHDRAW_SETTLE_MS;
    log.info({ settleMs: settle }, 'VIP routes withdrawn; waiting for the routers to move the traffic');
    await sleep(settle);
  }

  /** Stops the timers; BIRD keeps announcing what it announces (an agent that stops without withdrawing). */
  stop(): void {
    for (const t of this.timers) clearInterval(t);
    if (this.retry) clearTimeout(this.retry);
    this.stopping = true;
  }

  state(): AnnouncerState {
    return { announced: this.announced, withdrawnBecause: this.stopping ? 'stopping' : this.unhealthy, sessions: this.sessions, bfd: !!this.bfd };
  }

  private checkHealth(): void {
    const problem = firstProblem(this.opts.checks);
    if (problem === this.unhealthy) return;
    if (problem) log.warn({ problem }, 'node unhealthy: withdrawing its VIP routes');
    else log.info({ was: this.unhealthy }, 'node healthy again: announcing its VIPs');
    this.unhealthy = problem;
    void this.sync();
  }

  private wanted(): string[] {
    return this.stopping || this.unhealthy !== null ? [] : this.programmed;
  }

  /** Reloads BIRD if what it should announce changed; one reload at a time, a failed one retried. */
  private sync(): Promise<void> {
    const run = this.chain.then(() => this.reload()).catch((err: unknown) => {
      log.warn({ err: (err as Error).message, retryMs: RELOAD_RETRY_MS }, 'BIRD not reloaded; retrying');
      if (!this.stopping && !this.retry) {
        this.retry = setTimeout(() => {
          this.retry = null;
          void this.sync();
        }, RELOAD_RETRY_MS);
        this.retry.unref();
      }
    });
    this.chain = run;
    return run;
  }

  private async reload(): Promise<void> {
    if (!this.started) return;
    const announce = this.wanted();
    const text = renderBirdConfig({
      routerId: this.opts.routerId,
      localAsn: this.opts.settings.localASN,
      peers: this.opts.peers.map((p) => this.birdPeer(p)),
      communities: (this.opts.settings.communities ?? []).map((c) => parseCommunity(c)!),
      announce,
      nextHopV6: this.opts.nextHopV6,
      bfd: this.bfd,
    });
    if (text === this.applied) return;
    const tmp = `${this.configPath}.tmp`;
    writeFileSync(tmp, text, { mode: CONFIG_MODE });
    renameSync(tmp, this.configPath); // BIRD (re)starting meanwhile reads a whole file
    await this.client.configure();
    const added = announce.filter((a) => !this.announced.includes(a));
    const removed = this.announced.filter((a) => !announce.includes(a));
    this.applied = text;
    this.announced = announce;
    if (added.length || removed.length) log.info({ announced: added, withdrawn: removed, total: announce.length }, 'BIRD reloaded');
  }

  /** A peer as BIRD is told of it; the password is read now (a Secret update reaches the mounted file), the last one read if the file is gone. */
  private birdPeer(p: AgentBgpPeer): BirdPeer {
    let password: string | undefined;
    if (p.passwordFile) {
      try {
        password = readFileSync(p.passwordFile, 'utf8').replace(/\r?\n$/, '');
        this.passwords.set(p.address, password);
      } catch (err) {
        password = this.passwords.get(p.address);
        if (password === undefined) throw new Error(`cannot read the BGP password of peer ${p.address} from ${p.passwordFile}: ${(err as Error).message}`);
        log.warn({ peer: p.address, file: p.passwordFile }, 'password file unreadable; using the password read before');
      }
    }
    return { address: p.address, asn: p.asn, port: p.port, password, families: peerFamilies(p) };
  }

  /** One session per configured peer, labelled with the peer's address as configured. */
  private async pollSessions(): Promise<void> {
    let reported: BgpSession[] = [];
    let bfd = new Map<string, string>();
    let unreachable: string | null = null;
    try {
      reported = parseSessions((await this.client.command('show protocols all')).lines);
      // BFD sessions exist once BIRD has our bfd protocol; before that (a BIRD still on an older configuration) there are none.
      if (this.bfd) bfd = parseBfdSessions((await this.client.command('show bfd sessions').catch(() => ({ lines: [] }))).lines);
    } catch (err) {
      unreachable = (err as Error).message;
      if (this.sessions.some((s) => s.established)) log.warn({ err: unreachable }, 'cannot read BGP sessions from BIRD');
    }
    const now = this.opts.peers.map((p): BgpSession => {
      const s = reported.find((r) => r.protocol === peerProtocolName(p.address));
      const missing = { bgpState: 'Unknown', established: false, exportedRoutes: 0, info: unreachable ?? 'not configured in BIRD yet' };
      const neighbor = canonicalIp(p.address);
      return { ...missing, ...s, protocol: peerProtocolName(p.address), neighbor, bfdState: this.bfd ? bfd.get(neighbor) ?? null : null };
    });
    for (const s of now) {
      const before = this.sessions.find((b) => b.protocol === s.protocol);
      if (this.bfd && (before?.bfdState === 'Up') !== (s.bfdState === 'Up')) {
        if (s.bfdState === 'Up') log.info({ peer: s.neighbor }, 'BFD session up');
        else if (before) log.warn({ peer: s.neighbor, state: s.bfdState ?? 'none' }, 'BFD session down');
      }
      if (before?.established === s.established) continue;
      if (s.established) log.info({ peer: s.neighbor, protocol: s.protocol }, 'BGP session established');
      else if (before) log.warn({ peer: s.neighbor, protocol: s.protocol, state: s.bgpState, info: s.info }, 'BGP session down');
    }
    this.sessions = now;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
