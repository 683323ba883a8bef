/** The controller's Prometheus metrics. */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: 'xdplb_controller_reconciles_total',
    help: 'Reconciles by kind of object and result (ok, error)',
    labelNames: ['kind', 'result'],
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: 'xdplb_controller_reconcile_duration_seconds',
    help: 'Time to reconcile one object',
    labelNames: ['kind'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly statusWrites = new Counter({
    name: 'xdplb_controller_status_writes_total',
    help: 'Status writes by kind of object (unchanged status is not written)',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly resyncs = new Counter({
    name: 'xdplb_controller_resyncs_total',
    help: 'Periodic resyncs: each reconciles every LoadBalancerVip again, a safety net for a change no event queued',
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'xdplb_controller_leader',
    help: '1 while this replica holds the leader lease',
    registers: [this.registry],
  });
  readonly balancerAgents = new Gauge({
    name: 'xdplb_controller_balancer_agents',
    help: 'Agents of each XdpBalancer: desired (nodes its DaemonSet schedules) and ready',
    labelNames: ['balancer', 'state'],
    registers: [this.registry],
  });
  readonly vipNodes = new Gauge({
    name: 'xdplb_controller_vip_nodes',
    help: "Balancer nodes per VIP (namespace/name): desired, and programmed with the VIP's current generation",
    labelNames: ['vip', 'state'],
    registers: [this.registry],
  });
  private readonly depths = new Map<string, () => number>();

  constructor() {
    const depths = this.depths;
    new Gauge({
      name: 'xdplb_controller_queue_depth',
      help: 'Objects waiting to be reconciled',
      labelNames: ['kind'],
      registers: [this.registry],
      collect() {
        for (const [kind, depth] of depths) this.set({ kind }, depth());
      },
    });
  }

  /** Hooks for a work queue of one kind of object. */
  queueHooks(kind: string, depth: () => number) {
    this.depths.set(kind, depth);
    this.reconciles.inc({ kind, result: 'ok' }, 0);
    this.reconciles.inc({ kind, result: 'error' }, 0);
    return {
      done: (seconds: number, ok: boolean) => {
        this.reconciles.inc({ kind, result: ok ? 'ok' : 'error' });
        this.reconcileDuration.observe({ kind }, seconds);
      },
    };
  }
}
