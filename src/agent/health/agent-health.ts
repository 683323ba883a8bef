/**
 * The agent's health checks, wired (main.ts calls these): the prober on the
 * balancer NIC with the agent's encapsulation settings and its metrics, then
 * either the standalone overlay (local-health.ts) or the cluster reports
 * (cluster-health.ts). Probing needs CAP_NET_RAW; without it the agent runs
 * on, unprobed, and says so.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { componentLog } from '../../lib/log.js';
import type { Agent } from '../agent.js';
import { registerHealthMetrics } from './health-metrics.js';
import { ClusterHealth } from './cluster-health.js';
import { LocalHealth } from './local-health.js';
import { DEFAULT_PROBE_PORTS, Prober, type ProberOptions } from './prober.js';
import { ProbeSocket } from './probe-socket.js';

const log = componentLog('health');

/** The prober on the agent's NIC, or null (logged) when its sockets cannot be opened. */
export function openProber(agent: Agent, onChange?: ProberOptions['onChange']): Prober | null {
  let io: ProbeSocket;
  try {
    io = new ProbeSocket(agent.nic, DEFAULT_PROBE_PORTS);
  } catch (err) {
    log.error({ err: (err as Error).message }, 'cannot open the health probe sockets: backends are not health checked on this node');
    return null;
  }
  const prober = new Prober({ io, encap: () => agent.encapSettings(), onChange });
  if (agent.metrics) registerHealthMetrics(agent.metrics.registry, () => prober);
  log.info({ nic: agent.nic, ports: `${DEFAULT_PROBE_PORTS.lo}-${DEFAULT_PROBE_PORTS.hi}` }, 'health checks along the real path: probing');
  return prober;
}

/** Standalone: the Programmer the file source drives (the agent behind the health overlay), or the agent itself when probing is off. */
export function localHealth(agent: Agent): LocalHealth | null {
  let local: LocalHealth | null = null;
  const prober = openProber(agent, (t, s) => local?.changed(t.vipName, t.real, s.healthy));
  if (!prober) return null;
  local = new LocalHealth(agent, prober);
  prober.start();
  return local;
}

export function clusterHealth(kc: KubeConfig, agent: Agent, balancer: string, node: string): ClusterHealth | null {
  const prober = openProber(agent);
  return prober ? new ClusterHealth(kc, balancer, node, prober) : null;
}
