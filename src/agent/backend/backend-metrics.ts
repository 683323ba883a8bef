/**
 * Prometheus metrics of a backend agent: the backend programs' reason
 * counters (read from the per-CPU map at scrape time) and what the agent
 * holds. Served with /healthz and /readyz like the balancer agent's.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { BACKEND_REASONS, type BackendReason } from '../../bpf/consts.js';
import { readBackendReasons } from '../dataplane/counters.js';
import type { BackendAgent } from './backend-agent.js';

/**
 * What became of the packet: handed to the pod (on its veth, or from the NIC
 * in Node addressing, sent on by the program or by the node's stack:
 * NODE_TO_STACK_*), a reply rewritten (sent on by the program, or by the
 * node's stack: REPLY_TO_STACK_*), left to the kernel untouched, or dropped.
 */
export function backendVerdict(reason: BackendReason): 'delivered' | 'rewritten' | 'pass' | 'drop' {
  if (reason.startsWith('TO_POD') || reason.startsWith('NODE_TO')) return 'delivered';
  if (reason.startsWith('REPLY')) return 'rewritten';
  return reason.includes('DROP') ? 'drop' : 'pass';
}

/** `applied`: desired lists applied so far (the first and each change the source gave). */
export function backendMetrics(agent: BackendAgent, desired: () => number, applied: () => number): Registry {
  const r = new Registry();
  collectDefaultMetrics({ register: r, prefix: 'xdplb_backend_agent_' });
  new Counter({
    name: 'xdplb_backend_packets_total',
    help: 'Packets seen by the backend programs on the pod veths, by verdict and reason (see bpf/BACKEND.md).',
    labelNames: ['verdict', 'reason'],
    registers: [r],
    collect() {
      this.reset();
      const counts = readBackendReasons(agent.maps);
      for (const reason of BACKEND_REASONS) this.inc({ verdict: backendVerdict(reason), reason: reason.toLowerCase() }, Number(counts[reason]));
    },
  });
  const scraped = (name: string, help: string, read: () => number) =>
    new Gauge({ name, help, registers: [r], collect() { this.set(read()); } });
  scraped('xdplb_backend_desired', 'Backends (VIP port, pod) this node should serve, as the source gives them.', desired);
  new Counter({
    name: 'xdplb_backend_applied_total',
    help: 'Desired lists applied: the first, and one for each change the source gave (a test waits for it to move).',
    registers: [r],
    collect() {
      this.reset();
      this.inc(applied());
    },
  });
  scraped('xdplb_backend_refused', 'Desired backends not programmed (the log says why: pod not local, a clash, ...).', () => agent.refused().length);
  scraped('xdplb_backend_services', 'backend_svcs entries held, draining ones included.', () => agent.counts().entries);
  scraped('xdplb_backend_services_draining', 'backend_svcs entries kept while their flows finish.', () => agent.counts().draining);
  scraped('xdplb_backend_veths', 'Pod veths carrying the backend programs.', () => agent.counts().veths);
  scraped('xdplb_backend_node_services', 'Node addressing: backend_node_svcs entries held, draining ones included.', () => agent.counts().nodeEntries);
  scraped('xdplb_backend_node_services_draining', 'Node addressing: backend_node_svcs entries kept while their flows finish.',
    () => agent.counts().nodeDraining);
  scraped('xdplb_backend_nics', 'Node addressing: NICs carrying the from-NIC program.', () => agent.counts().nics);
  return r;
}
