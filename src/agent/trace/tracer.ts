/**
 * Trace sessions of one agent: turns the sessions' filters into the
 * program's trace rules, reads the trace ring buffer while a session is open
 * and hands each record to the sessions it matches.
 */
import { cpus } from 'node:os';
import type { TraceEvent, TraceLoss } from '../../api/trace.js';
import type { TraceFilter } from '../../api/trace-filter.js';
import { componentLog } from '../../lib/log.js';
import type { BalancerMapSet } from '../../bpf/programs.js';
import { RingBufferReader } from '../../libbpf/ring-buffer.js';
import { decodeTraceRecord, encodeTraceConfig, sumTraceLimited, TraceConfigLayout, type TraceRule } from '../../bpf/trace-structs.js';
import { u32Key } from '../../bpf/structs.js';
import { TRACE_MAX_RULES } from '../../bpf/consts.js';
import { readTraceCounters } from '../dataplane/counters.js';
import type { InstalledVipRef } from '../dataplane/dataplane.js';
import { toTraceEvent } from './trace-event.js';
import { compileSessionRules, type RecordMatch, recordMatcher, selectedVips, TraceLimitError } from './trace-rules.js';

const log = componentLog('tracer');

/** Records per second per node when a session does not say. */
export const DEFAULT_TRACE_RATE = 1000;
/** Beyond this a trace would cost a busy node real CPU: ask for a narrower filter instead. */
export const MAX_TRACE_RATE = 100_000;
const POLL_MS = 20;

export interface TraceSessionOptions {
  filter: TraceFilter;
  /** Records per second on this node. */
  rate?: number;
  onEvent: (e: TraceEvent) => void;
  onLoss?: (loss: TraceLoss) => void;
}

interface Session extends TraceSessionOptions {
  id: number;
  rate: number;
  matches: RecordMatch;
}

export class Tracer {
  private readonly sessions = new Map<number, Session>();
  private nextId = 1;
  private reader: RingBufferReader | null = null;
  private timer: NodeJS.Timeout | null = null;
  private written: Buffer | null = null;
  /** Rule i's session, as written; and each rule's trace_budget.limited when last reported. */
  private owners: Session[] = [];
  private limitedSeen: bigint[] = [];
  private ringFullSeen = 0n;

  constructor(
    private readonly maps: BalancerMapSet,
    private readonly installedVips: () => InstalledVipRef[],
    private readonly onlineCpus = cpus().length,
  ) {
    // Rules left by an agent that died while tracing would keep costing the
    // program a reservation per matched packet: nothing traces until asked.
    // (Read first: a restart that finds tracing off writes nothing.)
    this.written = this.maps.traceCtl.lookup(u32Key(0));
    this.writeConfig([], []);
  }

  readonly defaultRate = DEFAULT_TRACE_RATE;

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The VIPs a filter names that are installed now. */
  selected(filter: TraceFilter): InstalledVipRef[] {
    return selectedVips(filter, this.installedVips());
  }

  /** Opens a session; returns its close function. Throws TraceLimitError when the rules would not fit. */
  open(opts: TraceSessionOptions): () => void {
    const rate = opts.rate ?? DEFAULT_TRACE_RATE;
    if (!Number.isInteger(rate) || rate < 1 || rate > MAX_TRACE_RATE) {
      throw new TraceLimitError(`rate ${rate} is not an integer in 1..${MAX_TRACE_RATE} records per second`);
    }
    const session: Session = { ...opts, rate, id: this.nextId++, matches: recordMatcher(opts.filter) };
    this.sessions.set(session.id, session);
    try {
      this.refresh();
    } catch (err) {
      this.sessions.delete(session.id);
      this.refresh();
      throw err;
    }
    if (!this.reader) this.startReading();
    log.info({ session: session.id, vips: opts.filter.vips.map((v) => v.text), client: opts.filter.client?.text,
      port: opts.filter.port, rate }, 'trace session opened');
    return () => this.close(session.id);
  }

  private close(id: number): void {
    if (!this.sessions.delete(id)) return;
    this.refresh();
    log.info({ session: id }, 'trace session closed');
    if (!this.sessions.size) this.stopReading();
  }

  /**
   * Recompiles the rules from the open sessions and the installed VIPs: call
   * after every dataplane change (a traced VIP may have come or gone).
   */
  refresh(): void {
    if (!this.sessions.size && this.written?.readUInt32LE(TraceConfigLayout.offsets.rule_count) === 0) return; // off, and stays off
    const { rules, owners } = compileSessionRules([...this.sessions.values()], this.installedVips(), this.onlineCpus);
    this.writeConfig(rules, owners);
  }

  private writeConfig(rules: readonly TraceRule[], owners: Session[]): void {
    const value = encodeTraceConfig(rules);
    if (this.written?.equals(value) && owners.every((s, i) => this.owners[i] === s)) return;
    // What the old rules dropped is reported to their sessions before the budgets restart.
    if (this.reader) this.reportLoss();
    // A new rule starts with a full budget on every CPU, not with what the rule at its index used.
    const empty = Buffer.alloc(this.maps.traceBudget.lookupSize);
    for (let i = 0; i < TRACE_MAX_RULES; i++) this.maps.traceBudget.update(u32Key(i), empty);
    this.maps.traceCtl.update(u32Key(0), value);
    this.written = value;
    this.owners = owners;
    this.limitedSeen = owners.map(() => 0n);
  }

  private startReading(): void {
    this.reader = new RingBufferReader(this.maps.traceRing.name, this.maps.traceRing.fd);
    this.reader.consume(); // records of an earlier session are nobody's
    this.ringFullSeen = readTraceCounters(this.maps).RING_FULL;
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  private stopReading(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.reader?.close();
    this.reader = null;
  }

  /** Delivers what the ring holds now (the timer calls it; tests may too). */
  poll(): void {
    if (!this.reader) return;
    let records: Buffer[];
    try {
      records = this.reader.consume();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'reading the trace ring failed');
      return;
    }
    if (records.length) {
      // CLOCK_MONOTONIC (bpf_ktime_get_ns, process.hrtime) to wall clock, now: the wall clock may have been stepped.
      const wallOffsetNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
      const byNum = new Map(this.installedVips().map((v) => [v.num, v]));
      for (const raw of records) {
        const rec = decodeTraceRecord(raw);
        const vip = rec.vipNum === null ? undefined : byNum.get(rec.vipNum);
        let event: TraceEvent | undefined;
        for (const s of this.sessions.values()) {
          if (!s.matches(rec, vip)) continue;
          event ??= toTraceEvent(rec, vip, wallOffsetNs);
          s.onEvent(event);
        }
      }
    }
    this.reportLoss();
  }

  /**
   * Tells each session what was not recorded for it since the last report:
   * the packets its own rules matched over their budgets, and (shared by
   * all: there is one ring) those the full ring buffer dropped.
   */
  private reportLoss(): void {
    const ringFull = readTraceCounters(this.maps).RING_FULL;
    const ringLost = Number(ringFull - this.ringFullSeen);
    this.ringFullSeen = ringFull;
    const limited = new Map<Session, number>();
    this.owners.forEach((s, i) => {
      const now = sumTraceLimited(this.maps.traceBudget.lookup(u32Key(i)) ?? Buffer.alloc(0));
      limited.set(s, (limited.get(s) ?? 0) + Number(now - this.limitedSeen[i]!));
      this.limitedSeen[i] = now;
    });
    for (const s of this.sessions.values()) {
      const loss: TraceLoss = { type: 'lost', rateLimited: limited.get(s) ?? 0, ringFull: ringLost };
      if (loss.rateLimited || loss.ringFull) s.onLoss?.(loss);
    }
  }

  /** Closes every session and turns tracing off. */
  shutdown(): void {
    this.sessions.clear();
    this.writeConfig([], []);
    this.stopReading();
  }
}
