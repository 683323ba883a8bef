/**
 * L2 mode: the Lease that says this node's agent is alive. The controller
 * chooses each VIP's announcing node among the agents holding one; a Lease
 * not renewed for its duration (the node died) lets it move the VIPs, and a
 * Lease deleted (the agent stops) moves them at once.
 */
import { CoordinationV1Api, type KubeConfig, type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import { l2LeaseName, L2_LEASE_BALANCER_LABEL, L2_LEASE_NODE_LABEL, L2_RENEWALS_PER_LEASE } from '../../api/xdpbalancer.js';
import { errorFields, isNotFound } from '../../lib/api-error.js';
import { componentLog } from '../../lib/log.js';

const log = componentLog('l2-lease');
const MS_PER_SECOND = 1000;
const HTTP_CONFLICT = 409;

export interface AgentLeaseOptions {
  balancer: string;
  node: string;
  /** Where the agents run (the pod's namespace). */
  namespace: string;
  leaseSeconds: number;
}

const statusOf = (err: unknown) => (err as { code?: number; statusCode?: number })?.code ?? (err as { statusCode?: number })?.statusCode;

export class AgentLease {
  private readonly api: CoordinationV1Api;
  private readonly name: string;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failing = false;
  private inFlight: Promise<void> = Promise.resolve();
  renewals = 0;

  constructor(kc: KubeConfig, private readonly opts: AgentLeaseOptions) {
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.name = l2LeaseName(opts.balancer, opts.node);
  }

  /** Takes the Lease (resolves once it is held, or once the first try failed: renewals retry) and keeps renewing it. */
  async start(): Promise<void> {
    await this.renew();
    const every = (this.opts.leaseSeconds * MS_PER_SECOND) / L2_RENEWALS_PER_LEASE;
    this.timer = setInterval(() => {
      this.inFlight = this.renew();
    }, every);
    this.timer.unref();
  }

  /** Stops renewing and deletes the Lease: the controller moves this node's VIPs now, not after a lease duration. */
  async release(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    await this.inFlight;
    try {
      await this.api.deleteNamespacedLease({ name: this.name, namespace: this.opts.namespace });
      log.info({ lease: this.name }, 'L2: Lease released; the controller moves this node\'s VIPs to another node');
    } catch (err) {
      if (!isNotFound(err)) log.warn({ lease: this.name, ...errorFields(err) }, `L2: cannot delete the Lease; the VIPs move once it expires (${this.opts.leaseSeconds} s)`);
    }
  }

  private body(existing?: V1Lease): V1Lease {
    const now = new V1MicroTime();
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: this.name,
        namespace: this.opts.namespace,
        labels: { [L2_LEASE_BALANCER_LABEL]: this.opts.balancer, [L2_LEASE_NODE_LABEL]: this.opts.node },
        ...(existing ? { resourceVersion: existing.metadata?.resourceVersion } : {}),
      },
      spec: {
        holderIdentity: this.opts.node,
        leaseDurationSeconds: this.opts.leaseSeconds,
        acquireTime: existing?.spec?.holderIdentity === this.opts.node ? existing.spec.acquireTime : now,
        renewTime: now,
      },
    };
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    const { namespace } = this.opts;
    try {
      let existing: V1Lease | undefined;
      try {
        existing = await this.api.readNamespacedLease({ name: this.name, namespace });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      if (this.stopped) return;
      if (existing) await this.api.replaceNamespacedLease({ name: this.name, namespace, body: this.body(existing) });
      else await this.api.createNamespacedLease({ namespace, body: this.body() });
      this.renewals++;
      if (this.failing) log.info({ lease: this.name }, 'L2: Lease renewed again');
      this.failing = false;
    } catch (err) {
      // A conflict is another writer between our read and write: the next renewal reads again.
      if (statusOf(err) === HTTP_CONFLICT) return;
      if (!this.failing) log.warn({ lease: this.name, ...errorFields(err) }, `L2: cannot renew the Lease; this node loses its VIPs if it stays so for ${this.opts.leaseSeconds} s`);
      this.failing = true;
    }
  }
}
