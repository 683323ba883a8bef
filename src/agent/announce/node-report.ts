/**
 * This node's announcement state in its XdpBalancer's status.nodes (one entry
 * per node, written by that node's agent by server-side apply under its own
 * field manager, as it writes its entry of each VIP): the BGP sessions with
 * their state and the routes sent to each peer, what the node announces or why
 * it withdrew; in L2 mode, how many addresses it answers for. Written when it
 * changes (checked every few seconds), not on every reading.
 */
import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../../api/loadbalancervip.js';
import { type AgentEndpointsStatus, type BalancerNodeStatus, XDPB_KIND, XDPB_PLURAL } from '../../api/xdpbalancer.js';
import { LOOPBACK_HOSTS, parseHostPort } from '../../lib/metrics-server.js';
import type { ServingTls } from '../../lib/serving-tls.js';
import { errorFields, isNotFound } from '../../lib/api-error.js';
import { componentLog } from '../../lib/log.js';
import { agentFieldManager } from '../sources/cluster-source.js';
import type { AnnouncerState } from './announcer.js';
import type { L2State } from './l2-announcer.js';

const log = componentLog('node-report');

/** How often the state is compared with what was written: sessions change rarely, and routers act on them, not on this report. */
export const NODE_REPORT_INTERVAL_MS = 5000;

export interface NodeAnnouncements {
  bgp?: AnnouncerState;
  l2?: L2State;
  /** The backends this node probes and judged unhealthy (health/cluster-health.ts). */
  health?: BalancerNodeStatus['health'];
  endpoints?: AgentEndpointsStatus;
}

/**
 * What the entry says of the agent's endpoints: those served with `tls` on
 * an address beyond loopback, at `address`. Only this node's agent may write
 * its entry (deploy/agent-node-restriction.yaml), so a client that pins the
 * fingerprint read there talks to that agent, not to whoever answers.
 */
export function agentEndpoints(address: string, tls: ServingTls, listeners: {
  metricsAddress?: string; metricsTls?: ServingTls; traceAddress?: string; traceTls?: ServingTls;
}): AgentEndpointsStatus | undefined {
  const port = (listen: string | undefined, served: ServingTls | undefined) => {
    if (!listen || served !== tls) return undefined;
    const { host, port: p } = parseHostPort(listen);
    return LOOPBACK_HOSTS.has(host) ? undefined : p;
  };
  const metricsPort = port(listeners.metricsAddress, listeners.metricsTls);
  const tracePort = port(listeners.traceAddress, listeners.traceTls);
  if (metricsPort === undefined && tracePort === undefined) return undefined;
  return {
    address,
    ...(metricsPort === undefined ? {} : { metricsPort }),
    ...(tracePort === undefined ? {} : { tracePort }),
    certificateSHA256: tls.fingerprint256,
  };
}

/** The entry, without the time it was written: what decides whether to write. */
export function nodeReport(node: string, a: NodeAnnouncements): Omit<BalancerNodeStatus, 'updated'> {
  return {
    node,
    ...(a.endpoints ? { endpoints: a.endpoints } : {}),
    ...(a.bgp ? {
      bgp: {
        announced: a.bgp.announced.length,
        ...(a.bgp.withdrawnBecause ? { withdrawn: a.bgp.withdrawnBecause } : {}),
        sessions: a.bgp.sessions.map((s) => ({
          peer: s.neighbor ?? s.protocol,
          state: s.bgpState,
          established: s.established,
          routesSent: s.exportedRoutes,
          ...(s.bfdState ? { bfd: s.bfdState } : {}),
          // BIRD's Info column says "Established" while all is well: only a problem is worth the field.
          ...(s.info && !s.established ? { info: s.info } : {}),
        })).sort((x, y) => x.peer.localeCompare(y.peer)),
      },
    } : {}),
    ...(a.l2 ? { l2: { answering: a.l2.answering.length } } : {}),
    ...(a.health ? { health: a.health } : {}),
  };
}

export class NodeReport {
  private readonly custom: CustomObjectsApi;
  private timer: NodeJS.Timeout | undefined;
  private written: string | null = null;
  private failing = false;

  constructor(kc: KubeConfig, private readonly balancer: string, private readonly node: string, private readonly state: () => NodeAnnouncements,
    private readonly intervalMs = NODE_REPORT_INTERVAL_MS) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  start(): void {
    void this.check();
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Writes the entry if it changed since the last write; a failed write is tried at the next check. */
  async check(): Promise<void> {
    const report = nodeReport(this.node, this.state());
    const key = JSON.stringify(report);
    if (key === this.written) return;
    try {
      await this.write({ ...report, updated: new Date().toISOString() });
      this.written = key;
      if (this.failing) log.info('node status written again');
      this.failing = false;
    } catch (err) {
      if (isNotFound(err)) return; // the balancer is going
      if (!this.failing) log.warn({ balancer: this.balancer, ...errorFields(err) }, 'cannot write this node\'s entry of the XdpBalancer status; retrying');
      this.failing = true;
    }
  }

  private async write(entry: BalancerNodeStatus): Promise<void> {
    await this.custom.patchClusterCustomObjectStatus({
      group: GROUP, version: VERSION, plural: XDPB_PLURAL, name: this.balancer, fieldManager: agentFieldManager(this.node), force: true,
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: XDPB_KIND, metadata: { name: this.balancer }, status: { nodes: [entry] } },
    }, setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply));
  }
}
