/**
 * Probes backends along the real path: for each target, a TCP SYN from this
 * node to VIP:port, encapsulated to the real as the balancer program would
 * (probe-packet.ts), sent out of the balancer NIC; success is the real's
 * SYN-ACK from VIP:port to the probe's port with the right acknowledgement,
 * answered with a RST through the same tunnel so the real frees the
 * half-open connection. A RST from the real (nothing listens) or no answer
 * within the timeout is a failure. The thresholds (thresholds.ts) turn
 * results into healthy/unhealthy; each change is reported to onChange.
 *
 * A probe that cannot be sent (no encapsulation setting yet, the NIC down)
 * is no result at all: the node's own trouble says nothing about the real.
 */
import { randomInt } from 'node:crypto';
import { canonicalIp, parseIp } from '../../lib/ip.js';
import { componentLog } from '../../lib/log.js';
import type { ResolvedHealthCheck } from '../../api/health-check.js';
import { Schedule } from './schedule.js';
import { type HealthState, initialHealth, observe } from './thresholds.js';
import { buildProbeFrame, parseSegment, type ProbeEncap, TCP_ACK, TCP_RST, TCP_SYN, tunnelOf } from './probe-packet.js';
import type { ProbeIo } from './probe-socket.js';
import { hashKey } from '../../lib/rendezvous.js';

const log = componentLog('prober');

/** The probes' source ports: above Linux's default ephemeral range (32768-60999), so no local connection shares a tuple. */
export const DEFAULT_PROBE_PORTS = { lo: 61000, hi: 65535 } as const;
/** How often due probes leave, answers are read and timeouts expire. */
export const PROBE_TICK_MS = 20;
const SEQ_SPACE = 2 ** 32;

export interface ProbeTarget {
  /** healthTargetKey(VIP, real). */
  key: string;
  /** The VIP as metrics and logs name it (namespace/name, or the file's name). */
  vipName: string;
  vip: string;
  real: string;
  check: ResolvedHealthCheck;
  /** Unhealthy as far as anyone knows (another node judged so): starts unhealthy, needs healthyThreshold successes. */
  knownUnhealthy?: { since: number; reason?: string };
}

export type ProbeResult = 'success' | 'refused' | 'timeout';

export interface ProberOptions {
  io: ProbeIo;
  /** The node's encapsulation settings now (null while it has none). Inner sources are srcV4/srcV6 too: node addresses. */
  encap: () => ProbeEncap | null;
  onChange?: (target: ProbeTarget, state: HealthState) => void;
  ports?: { lo: number; hi: number };
  maxPerSecond?: number;
  tickMs?: number;
  now?: () => number;
  random?: () => number;
}

interface Outstanding {
  key: string;
  isn: number;
  deadline: number;
  real: string;
  port: number;
}

export class Prober {
  private readonly targets = new Map<string, ProbeTarget>();
  private readonly health = new Map<string, HealthState>();
  private readonly schedule: Schedule;
  /** In flight, by "vip|vipPort|localPort". */
  private readonly outstanding = new Map<string, Outstanding>();
  private readonly usedPorts = new Set<number>();
  private nextPort: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  readonly counts = { sent: 0, success: 0, refused: 0, timeout: 0, notSent: 0 };

  constructor(private readonly opts: ProberOptions) {
    this.now = opts.now ?? Date.now;
    this.schedule = new Schedule(opts.maxPerSecond, opts.random);
    this.nextPort = (opts.ports ?? DEFAULT_PROBE_PORTS).lo;
  }

  /** The targets to probe now; others are forgotten (their probes in flight ignored). State is kept for those that stay. */
  setTargets(targets: readonly ProbeTarget[]): void {
    const now = this.now();
    const wanted = new Map(targets.map((t) => [t.key, t]));
    for (const key of [...this.targets.keys()]) {
      if (wanted.has(key)) continue;
      this.targets.delete(key);
      this.health.delete(key);
      this.schedule.remove(key);
    }
    for (const [key, t] of wanted) {
      if (!this.health.has(key)) this.health.set(key, initialHealth(now, t.knownUnhealthy));
      this.targets.set(key, t);
      this.schedule.add(key, t.check.intervalMs, now);
    }
  }

  /** Every target's state (the targets of setTargets). */
  states(): Map<ProbeTarget, HealthState> {
    return new Map([...this.targets].map(([k, t]) => [t, this.health.get(k)!]));
  }

  state(key: string): HealthState | undefined {
    return this.health.get(key);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.opts.tickMs ?? PROBE_TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One round: read answers, expire probes past their timeout, send what is due. Public for tests. */
  tick(): void {
    const now = this.now();
    for (const packet of this.opts.io.receive()) this.onPacket(packet);
    for (const [id, o] of this.outstanding) {
      if (o.deadline > now) continue;
      this.finish(id, o, 'timeout', `no SYN-ACK from ${o.real} within ${this.targets.get(o.key)?.check.timeoutMs ?? 0} ms`);
    }
    for (const key of this.schedule.due(now)) this.send(key, now);
  }

  private send(key: string, now: number): void {
    const t = this.targets.get(key)!;
    const encap = this.opts.encap();
    const vip = parseIp(t.vip);
    const src = vip.family === 4 ? encap?.srcV4 : encap?.srcV6;
    const port = this.takePort();
    if (!encap || src === undefined || port === null || tunnelOf(t.vip, t.real) === null) {
      if (port !== null) this.usedPorts.delete(port);
      this.counts.notSent++;
      return;
    }
    const isn = randomInt(SEQ_SPACE);
    try {
      this.opts.io.send(buildProbeFrame({ src, srcPort: port, vip: t.vip, vipPort: t.check.port, real: t.real, flags: TCP_SYN, seq: isn },
        encap, hashKey(`${key}|${port}`)));
    } catch (err) {
      this.usedPorts.delete(port);
      this.counts.notSent++;
      log.debug({ target: key, err: (err as Error).message }, 'probe not sent');
      return;
    }
    this.counts.sent++;
    this.outstanding.set(`${vip.text}|${t.check.port}|${port}`, { key, isn, deadline: now + t.check.timeoutMs, real: t.real, port });
  }

  /** A free source port, in turn through the range so a tuple comes back as late as possible; null when all are in flight. */
  private takePort(): number | null {
    const { lo, hi } = this.opts.ports ?? DEFAULT_PROBE_PORTS;
    for (let i = 0; i <= hi - lo; i++) {
      const p = this.nextPort;
      this.nextPort = p >= hi ? lo : p + 1;
      if (!this.usedPorts.has(p)) {
        this.usedPorts.add(p);
        return p;
      }
    }
    return null;
  }

  private onPacket(packet: Buffer): void {
    const s = parseSegment(packet);
    if (!s) return;
    const id = `${canonicalIp(s.src)}|${s.srcPort}|${s.dstPort}`;
    const o = this.outstanding.get(id);
    if (!o) return;
    const acksOurs = (s.flags & TCP_ACK) !== 0 && s.ack === (o.isn + 1) % SEQ_SPACE;
    if ((s.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK) && acksOurs) {
      this.reset(o);
      this.finish(id, o, 'success');
    } else if ((s.flags & TCP_RST) !== 0 && acksOurs) {
      this.finish(id, o, 'refused', `${o.real} answered with a RST: nothing listens on the VIP's port there`);
    }
  }

  /** The RST that frees the real's half-open connection, through the same tunnel. */
  private reset(o: Outstanding): void {
    const t = this.targets.get(o.key);
    const encap = this.opts.encap();
    if (!t || !encap) return;
    const src = parseIp(t.vip).family === 4 ? encap.srcV4 : encap.srcV6;
    if (src === undefined) return;
    try {
      this.opts.io.send(buildProbeFrame({ src, srcPort: o.port, vip: t.vip, vipPort: t.check.port, real: t.real, flags: TCP_RST, seq: (o.isn + 1) % SEQ_SPACE },
        encap, hashKey(`${o.key}|${o.port}`)));
    } catch {
      /* the real's SYN-ACK retransmissions end on their own */
    }
  }

  private finish(id: string, o: Outstanding, result: ProbeResult, reason?: string): void {
    this.outstanding.delete(id);
    this.usedPorts.delete(o.port);
    this.counts[result]++;
    const t = this.targets.get(o.key);
    const before = this.health.get(o.key);
    if (!t || !before) return; // no longer a target
    const { state, changed } = observe(before, result === 'success', t.check, this.now(), reason);
    this.health.set(o.key, state);
    if (!changed) return;
    log[state.healthy ? 'info' : 'warn']({ vip: t.vipName, real: t.real, port: t.check.port, reason: state.reason },
      state.healthy ? 'backend healthy again' : 'backend unhealthy');
    this.opts.onChange?.(t, state);
  }

  /** Closes the sockets. */
  close(): void {
    this.stop();
    this.opts.io.close();
  }
}
