/**
 * Prometheus metrics of an agent. Dataplane counters are read from the
 * per-CPU maps at scrape time; label sets are bounded by the map capacities
 * (VIPs, reals, reasons).
 */
import type { Server } from 'node:http';
import { type MetricsServerOptions, serveMetrics } from '../lib/metrics-server.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { verdictOf } from '../api/verdicts.js';
import { REASONS, TRACE_COUNTERS } from '../bpf/consts.js';
import type { BalancerMapSet } from '../bpf/programs.js';
import { readReasons, readRealStats, readTraceCounters, readVipStats } from './dataplane/counters.js';
import type { Dataplane } from './dataplane/dataplane.js';
import type { EncapConfig } from '../bpf/structs.js';
import { ENCAP_SETTINGS, type EncapSetting } from './net/last-good.js';

/** What became of the old connection table's entries in a capacities change. */
const MOVED_RESULTS = ['copied', 'real_gone', 'table_full', 'unreadable'] as const;
export type MovedResult = (typeof MOVED_RESULTS)[number];

export class AgentMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<'result'>;
  readonly reconcileDuration: Histogram;
  /** Programs put back on a re-created NIC. */
  readonly reattaches: Counter;
  /** Connection-table entries a capacities change copied or dropped. */
  private readonly movedConnections: Counter<'result'>;
  private readonly xdpMode: Gauge<'mode' | 'nic'>;
  private readonly encapStale: Gauge<'setting'>;
  private readonly encapInfo: Gauge<'next_hop_mac' | 'source_v4' | 'source_v6'>;
  /** Why the agent is not ready (null: ready); until run() says otherwise, it has programmed nothing. */
  private notReady: () => string | null = () => 'not programmed yet';
  /** Whether the program is on the NIC, asked at each scrape. */
  private attached: () => boolean = () => false;

  constructor(maps: BalancerMapSet, dataplane: () => Dataplane) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'xdplb_agent_' });
    /** A counter with one series per map slot, read from the maps at scrape time. */
    const perSlot = <S>(label: string, slots: () => { label: string; stats: () => S }[]) =>
      (name: string, help: string, pick: (s: S) => bigint) =>
        new Counter({
          name,
          help,
          labelNames: [label],
          registers: [r],
          collect() {
            this.reset();
            for (const slot of slots()) this.inc({ [label]: slot.label }, Number(pick(slot.stats())));
          },
        });
    const perVip = perSlot('vip', () =>
      dataplane().installedVipNums().map(({ id, num }) => ({ label: id, stats: () => readVipStats(maps, num) })));
    perVip('xdplb_vip_packets_total', 'Packets received for the VIP (any verdict).', (s) => s.packets);
    perVip('xdplb_vip_bytes_total', 'Frame bytes received for the VIP.', (s) => s.bytes);
    perVip('xdplb_vip_new_flows_total', 'Packets of the VIP whose real came from the Maglev ring (connection table misses).', (s) => s.lruMisses);
    const perReal = perSlot('real', () =>
      dataplane().installedReals().map(({ address, id }) => ({ label: address, stats: () => readRealStats(maps, id) })));
    perReal('xdplb_real_packets_total', 'Packets encapsulated to the real.', (s) => s.packets);
    perReal('xdplb_real_bytes_total', 'Frame bytes (before encapsulation) sent to the real.', (s) => s.bytes);
    new Counter({
      name: 'xdplb_packets_total',
      help: 'Packets seen by the balancer program, by verdict and reason (see the README).',
      labelNames: ['verdict', 'reason'],
      registers: [r],
      collect() {
        this.reset();
        const counts = readReasons(maps);
        for (const reason of REASONS) this.inc({ verdict: verdictOf(reason), reason: reason.toLowerCase() }, Number(counts[reason]));
      },
    });
    new Counter({
      name: 'xdplb_trace_records_total',
      help: 'Packets that matched an open trace: emitted as records, or lost to the rate limit or a full ring.',
      labelNames: ['result'],
      registers: [r],
      collect() {
        this.reset();
        const counts = readTraceCounters(maps);
        for (const c of TRACE_COUNTERS) this.inc({ result: c.toLowerCase() }, Number(counts[c]));
      },
    });
    const scraped = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers: [r], collect() { this.set(read()); } });
    scraped('xdplb_vips', 'VIPs programmed in the maps.', () => dataplane().installedVips().length);
    scraped('xdplb_vips_capacity', 'VIPs the maps can hold.', () => dataplane().capacity.vips);
    scraped('xdplb_reals', 'Reals programmed in the maps (including draining ones).', () => dataplane().installedReals().length);
    scraped('xdplb_reals_capacity', 'Reals the maps can hold.', () => dataplane().capacity.reals);
    scraped('xdplb_connection_table_capacity', 'Flows the connection table can hold.', () => maps.connTable.maxEntries);
    new Counter({
      name: 'xdplb_map_writes_total',
      help: 'BPF map element writes by this agent (0 growth: the maps already matched the desired state).',
      registers: [r],
      collect() {
        this.reset();
        this.inc(dataplane().totalWrites());
      },
    });
    this.xdpMode = new Gauge({ name: 'xdplb_xdp_mode_info', help: 'The XDP mode the program is attached in (1).', labelNames: ['mode', 'nic'], registers: [r] });
    this.encapStale = new Gauge({
      name: 'xdplb_encap_setting_stale',
      help: 'A setting of the encapsulation lost from the node (1): the program keeps using its last good value.',
      labelNames: ['setting'],
      registers: [r],
    });
    for (const setting of ENCAP_SETTINGS) this.encapStale.set({ setting }, 0);
    this.encapInfo = new Gauge({
      name: 'xdplb_encap_info',
      help: 'The encapsulation settings programmed (1).',
      labelNames: ['next_hop_mac', 'source_v4', 'source_v6'],
      registers: [r],
    });
    this.movedConnections = new Counter({
      name: 'xdplb_capacity_change_connections_total',
      help: 'Connection-table entries of the old maps that this agent\'s capacities change copied into the new ones, or dropped (real_gone, table_full, unreadable).',
      labelNames: ['result'],
      registers: [r],
    });
    for (const result of MOVED_RESULTS) this.movedConnections.inc({ result }, 0);
    this.reattaches = new Counter({ name: 'xdplb_xdp_reattaches_total', help: 'Times the program was put back on a re-created NIC.', registers: [r] });
    const isAttached = () => this.attached();
    new Gauge({
      name: 'xdplb_xdp_attached',
      help: 'This agent\'s program is on the NIC (1), or not (0: NIC missing, program detached or replaced).',
      registers: [r],
      collect() {
        this.set(isAttached() ? 1 : 0);
      },
    });
    this.reconciles = new Counter({ name: 'xdplb_reconciles_total', help: 'Reconciles of the maps with the desired state.', labelNames: ['result'], registers: [r] });
    this.reconcileDuration = new Histogram({
      name: 'xdplb_reconcile_duration_seconds',
      help: 'Time to validate and apply a desired state.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
      registers: [r],
    });
  }

  countMovedConnections(moved: Record<MovedResult, number>): void {
    for (const result of MOVED_RESULTS) this.movedConnections.inc({ result }, moved[result]);
  }

  setMode(mode: string, nic: string): void {
    this.xdpMode.reset();
    this.xdpMode.set({ mode, nic }, 1);
  }

  /** `why` says why the agent is not ready now, null when it is; /readyz and xdplb_xdp_attached ask it at each request. */
  setReadiness(why: () => string | null): void {
    this.notReady = why;
  }

  setAttachedCheck(attached: () => boolean): void {
    this.attached = attached;
  }

  setEncapStale(stale: readonly EncapSetting[]): void {
    for (const setting of ENCAP_SETTINGS) this.encapStale.set({ setting }, stale.includes(setting) ? 1 : 0);
  }

  setEncap(encap: EncapConfig): void {
    this.encapInfo.reset();
    this.encapInfo.set({ next_hop_mac: encap.nextHopMac, source_v4: encap.srcV4 ?? '', source_v6: encap.srcV6 ?? '' }, 1);
  }

  /** Serves /metrics, /healthz and /readyz. */
  listen(address: string, opts: MetricsServerOptions = {}): Promise<Server> {
    return serveMetrics(this.registry, address, () => this.notReady(), opts);
  }
}
