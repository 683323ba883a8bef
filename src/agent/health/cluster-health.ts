/**
 * Cluster mode: this node probes its share of the backends of the VIPs it
 * programs and reports what it judged unhealthy in its own entry of the
 * XdpBalancer's status.nodes (node-report.ts); the controller folds the
 * reports into each VIP's status.backends (healthy: false), and every agent,
 * this one included, programs weight 0 from there (cluster-vips.ts). So all
 * agents build the same rings, whoever probed.
 *
 * Its share: rendezvous hashing of each backend over status.probingNodes,
 * the nodes whose agent pod is Ready (written by the controller). Kubernetes
 * already tracks that (the agent's /readyz, and the node lifecycle
 * controller marks a dead node's pods not Ready), so no heartbeat of our own
 * is written. The agent watches its one XdpBalancer for changes of the list.
 */
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { type BackendStatus, type LoadBalancerVip, GROUP, VERSION } from '../../api/loadbalancervip.js';
import { type BalancerNodeStatus, MAX_REPORTED_UNHEALTHY, XDPB_PLURAL, type XdpBalancer } from '../../api/xdpbalancer.js';
import { componentLog } from '../../lib/log.js';
import { Rendezvous } from '../../lib/rendezvous.js';
import { WatchedCache } from '../../lib/watched-cache.js';
import { allowedAddress, vipRef } from '../sources/cluster-vips.js';
import { type HealthVip, healthTargets } from './health-targets.js';
import type { Prober } from './prober.js';

const log = componentLog('cluster-health');

/**
 * The VIPs' part health checks need: programmed VIPs, their listed backends
 * that take new flows. In Node addressing the balancers send to the node, and
 * the node picks the pod: the probe can only follow the same path, so the
 * target is the node's address and the verdict covers that node's pods of the
 * VIP, as its weight at the balancers does (the controller judges each pod by
 * its nodeIP: backend-health.ts).
 */
export function healthVipsOf(vips: readonly LoadBalancerVip[]): HealthVip[] {
  return vips.flatMap((v) => {
    const address = allowedAddress(v);
    if (address === undefined) return [];
    const live = (v.status?.backends ?? []).filter((b) => !b.draining);
    const known = (bs: readonly BackendStatus[]) => {
      const down = bs.filter((b) => b.healthy === false);
      if (!down.length || down.length < bs.length) return {};
      const since = Math.min(...down.map((b) => Date.parse(b.unhealthySince ?? '') || Date.now()));
      return { knownUnhealthy: { since, reason: down[0]!.unhealthyReason } };
    };
    let backends: HealthVip['backends'];
    if (v.status?.addressing === 'Node') {
      const byNode = new Map<string, BackendStatus[]>();
      for (const b of live) if (b.nodeIP !== undefined) byNode.set(b.nodeIP, [...(byNode.get(b.nodeIP) ?? []), b]);
      backends = [...byNode].map(([nodeIP, bs]) => ({ ip: nodeIP, ...(bs[0]!.node ? { node: bs[0]!.node } : {}), ...known(bs) }));
    } else {
      backends = live.map((b) => ({ ip: b.ip, ...(b.node ? { node: b.node } : {}), ...known([b]) }));
    }
    return [{ name: vipRef(v), address, ports: v.spec.ports, healthCheck: v.spec.healthCheck, backends }];
  });
}

export class ClusterHealth {
  private readonly balancerCache: WatchedCache<XdpBalancer>;
  private vips: readonly LoadBalancerVip[] = [];
  private assignment = new Rendezvous([]);
  private warnedAlone = false;

  constructor(kc: KubeConfig, private readonly balancer: string, private readonly node: string, private readonly prober: Prober) {
    const custom = kc.makeApiClient(CustomObjectsApi);
    const fieldSelector = `metadata.name=${balancer}`;
    this.balancerCache = new WatchedCache<XdpBalancer>(kc, `/apis/${GROUP}/${VERSION}/${XDPB_PLURAL}`,
      (page) => custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: XDPB_PLURAL, fieldSelector, ...page }),
      () => this.membership(), { fieldSelector });
  }

  /** Starts watching the balancer (retried until it lists) and probing. */
  start(): void {
    void this.balancerCache.start();
    this.prober.start();
  }

  async stop(): Promise<void> {
    this.prober.close();
    await this.balancerCache.stop();
  }

  /** The VIPs this node programs now (after each sync of the cluster source). */
  setVips(vips: readonly LoadBalancerVip[]): void {
    this.vips = vips;
    this.retarget();
  }

  /** This node's health entry for its report. */
  report(): NonNullable<BalancerNodeStatus['health']> {
    // Node addressing: ip is the node's address; the controller judges each of its pods by it (backend-health.ts).
    const unhealthy = [...this.prober.states()].filter(([, s]) => !s.healthy)
      .map(([t, s]) => ({ vip: t.vipName, ip: t.real, since: new Date(s.since).toISOString(), ...(s.reason ? { reason: s.reason.slice(0, 512) } : {}) }))
      .sort((a, b) => a.vip.localeCompare(b.vip) || a.ip.localeCompare(b.ip));
    if (unhealthy.length > MAX_REPORTED_UNHEALTHY) log.warn({ unhealthy: unhealthy.length, reported: MAX_REPORTED_UNHEALTHY }, 'more unhealthy backends than a report holds: the rest count as healthy');
    return { probingNodes: this.assignment.digest(), probing: this.prober.states().size, unhealthy: unhealthy.slice(0, MAX_REPORTED_UNHEALTHY) };
  }

  private membership(): void {
    const nodes = this.balancerCache.get(this.balancer)?.status?.probingNodes ?? [];
    const next = new Rendezvous(nodes);
    if (next.digest() === this.assignment.digest()) return;
    this.assignment = next;
    log.info({ probingNodes: nodes.length, member: nodes.includes(this.node) }, 'the nodes that divide the health checks changed');
    this.retarget();
  }

  private retarget(): void {
    if (!this.assignment.size && !this.warnedAlone) {
      log.info('no probing nodes listed in the XdpBalancer status yet: probing nothing');
      this.warnedAlone = true;
    }
    const { targets } = healthTargets(healthVipsOf(this.vips), (key, node) => this.assignment.ownerOf(key, node) === this.node);
    this.prober.setTargets(targets);
  }
}
