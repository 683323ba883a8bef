/** Readable tables of what the lab's traffic did, from the client's view and the agents' metrics. */
import { type Samples, sum } from '../support/prometheus.js';
import type { Lab } from './lab.js';

function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('   ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('   '), ...cells.slice(1).map(line)].join('\n');
}

export function connectionsTable(results: { vip: string; byReal: Record<string, number>; failures: number }[], reals: string[]): string {
  return table(
    ['VIP', ...reals, 'failed'],
    results.map((r) => [r.vip, ...reals.map((n) => r.byReal[n] ?? 0), r.failures]),
  );
}

/** Answers to a node's health probes (a SYN-ACK or a RST each): they come to its own address, so pass_not_vip counts them too. */
export const probeAnswers = (m: Samples): number =>
  sum(m, 'xdplb_health_probes_total', { result: 'success' }) + sum(m, 'xdplb_health_probes_total', { result: 'refused' });

/** pass_not_vip on a balancer but for its probes' answers: what reached it besides VIP traffic (replies bypass it: DSR). */
export const passedNotVip = (m: Samples): number => sum(m, 'xdplb_packets_total', { verdict: 'pass', reason: 'pass_not_vip' }) - probeAnswers(m);

/** A real as the tables name it: its name and the addresses the balancers encapsulate to. */
export interface ReportedReal {
  name: string;
  addresses: string[];
}

/** The balancer agents' view: packets per VIP, per real, and their verdicts. */
export function metricsTable(lab: Lab, metrics: Samples[], reals: ReportedReal[] = lab.reals.map((r) => ({ name: r.name, addresses: [r.v4, r.v6] }))): string {
  const vips = new Set<string>();
  for (const m of metrics) for (const key of m.keys()) {
    const v = /^xdplb_vip_packets_total\{vip="([^"]+)"\}/.exec(key)?.[1];
    if (v) vips.add(v);
  }
  const vipRows = [...vips].sort().map((vip) => [
    vip,
    ...metrics.map((m) => sum(m, 'xdplb_vip_packets_total', { vip })),
    metrics.reduce((a, m) => a + sum(m, 'xdplb_vip_new_flows_total', { vip }), 0),
  ]);
  const realRows = reals.flatMap((r) => r.addresses.map((addr) => [`${r.name} ${addr}`, ...metrics.map((m) => sum(m, 'xdplb_real_packets_total', { real: addr }))]));
  const reasons = ['tx_encap', 'pass_not_vip', 'pass_not_ip', 'drop_no_real', 'drop_fragment', 'drop_malformed'];
  const reasonRows = reasons.map((reason) => [reason, ...metrics.map((m) => sum(m, 'xdplb_packets_total', { reason }))]);
  // The node's health probes are answered to its own address: part of pass_not_vip, not replies of the traffic.
  reasonRows.push(['(health probes answered)', ...metrics.map(probeAnswers)]);
  const nodes = lab.balancers.map((b) => b.name);
  return [
    'Packets per VIP (from each agent\'s /metrics):',
    table(['VIP', ...nodes, 'new flows'], vipRows),
    '',
    'Packets per real:',
    table(['real', ...nodes], realRows),
    '',
    'Verdicts:',
    table(['reason', ...nodes], reasonRows),
  ].join('\n');
}

/** The backend agents' view: what their programs did with each packet, per worker (reasons seen anywhere, or every delivery reason). */
export function backendTable(workers: string[], metrics: Samples[]): string {
  const reasons = new Set<string>();
  for (const m of metrics) for (const [key, value] of m) {
    const reason = /^xdplb_backend_packets_total\{.*reason="([^"]+)"/.exec(key)?.[1];
    if (reason && (value > 0 || reason.startsWith('to_pod') || reason === 'reply_rewritten')) reasons.add(reason);
  }
  const rows = [...reasons].map((reason) => [reason, ...metrics.map((m) => sum(m, 'xdplb_backend_packets_total', { reason }))]);
  return table(['reason', ...workers], rows);
}
