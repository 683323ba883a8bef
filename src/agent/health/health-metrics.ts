/**
 * The prober's metrics, read at scrape time: xdplb_backend_healthy{vip,real}
 * for each backend this node probes (1 healthy, 0 not), and
 * xdplb_health_probes_total{result} (success, refused, timeout, not_sent).
 * Label sets are bounded by the targets: a node's share of the backends.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Prober } from './prober.js';

export function registerHealthMetrics(registry: Registry, prober: () => Prober | null): void {
  registry.registerMetric(new Gauge({
    name: 'xdplb_backend_healthy',
    help: 'Whether a backend this node probes answers along its real path (1) or was judged unhealthy (0).',
    labelNames: ['vip', 'real'],
    registers: [],
    collect() {
      this.reset();
      for (const [t, s] of prober()?.states() ?? []) this.set({ vip: t.vipName, real: t.real }, s.healthy ? 1 : 0);
    },
  }));
  registry.registerMetric(new Counter({
    name: 'xdplb_health_probes_total',
    help: 'Health probes this node sent, by result; not_sent: the node could not send (no encapsulation setting, NIC down, no free port).',
    labelNames: ['result'],
    registers: [],
    collect() {
      const c = prober()?.counts;
      this.reset();
      if (!c) return;
      for (const [result, n] of [['success', c.success], ['refused', c.refused], ['timeout', c.timeout], ['not_sent', c.notSent]] as const) this.inc({ result }, n);
    },
  }));
}
