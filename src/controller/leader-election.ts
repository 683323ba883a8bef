/**
 * Leader election on a coordination.k8s.io Lease, so two controller replicas
 * can run and only one reconciles. A candidate takes the lease when its
 * holder has not renewed it for a lease duration, measured on the
 * candidate's own clock from when it last saw the lease change (clocks of
 * nodes may differ). A leader that cannot renew within the renew deadline
 * steps down: better no controller for a moment than two.
 */
import { CoordinationV1Api, type KubeConfig, type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import { errorFields } from '../lib/api-error.js';
import { componentLog } from '../lib/log.js';

const log = componentLog('leader-election');

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
}

export const DEFAULT_LEASE_TIMING = { leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 };

export interface LeaderCallbacks {
  onStartedLeading(): Promise<void> | void;
  /** Leadership was lost (not released by stop()); the process should exit and start over. */
  onStoppedLeading(): void;
}

const statusCode = (err: unknown) => (err as { code?: number }).code;

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private leading = false;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenew = 0;
  private observed: { record: string; at: number } | null = null;
  private loop: Promise<void> = Promise.resolve();

  constructor(kc: KubeConfig, private readonly opts: LeaderElectionOptions, private readonly cb: LeaderCallbacks) {
    if (!(opts.renewDeadlineSeconds < opts.leaseDurationSeconds && opts.retryPeriodSeconds < opts.renewDeadlineSeconds)) {
      throw new Error('leader election needs retry period < renew deadline < lease duration');
    }
    this.api = kc.makeApiClient(CoordinationV1Api);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.running = true;
    this.loop = this.tick();
  }

  /** Stops campaigning; a leader releases the lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.loop;
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.readNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace });
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      lease.spec = { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: new V1MicroTime() };
      await this.api.replaceNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace, body: lease });
      log.info({ identity: this.opts.identity }, 'released the leader lease');
    } catch (err) {
      log.warn(errorFields(err), 'could not release the leader lease; it expires by itself');
    }
  }

  private async tick(): Promise<void> {
    if (!this.running) return;
    let held = false;
    try {
      held = await this.tryAcquireOrRenew();
    } catch (err) {
      log.warn(errorFields(err), 'lease request failed');
    }
    if (!this.running) return;
    const now = Date.now();
    if (held) {
      this.lastRenew = now;
      if (!this.leading) {
        this.leading = true;
        log.info({ identity: this.opts.identity, lease: `${this.opts.namespace}/${this.opts.name}` }, 'became leader');
        // Not awaited: renewals must go on while the controller lists the cluster.
        void Promise.resolve()
          .then(() => this.cb.onStartedLeading())
          .catch((err: unknown) => {
            log.fatal(errorFields(err), 'could not start leading');
            this.cb.onStoppedLeading();
          });
      }
    } else if (this.leading && now - this.lastRenew > this.opts.renewDeadlineSeconds * 1000) {
      this.leading = false;
      this.running = false;
      log.error({ identity: this.opts.identity }, 'could not renew the leader lease in time; stepping down');
      this.cb.onStoppedLeading();
      return;
    }
    this.timer = setTimeout(() => {
      this.loop = this.tick();
    }, this.opts.retryPeriodSeconds * 1000);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { name, namespace, identity, leaseDurationSeconds } = this.opts;
    const now = new V1MicroTime();
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
      await this.api.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    // Expiry by our clock: since we last saw the record change.
    const record = `${holder}|${String(spec.renewTime)}|${spec.leaseTransitions ?? 0}`;
    if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
    const duration = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    const expired = Date.now() - this.observed.at > duration;
    if (holder && holder !== identity && !expired) return false;

    const takingOver = holder !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds,
      renewTime: now,
      acquireTime: takingOver ? now : spec.acquireTime,
      leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver && holder ? 1 : 0),
    };
    try {
      // resourceVersion in the body: a rival's write in between makes this fail with 409.
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
    } catch (err) {
      if (statusCode(err) === 409) return false;
      throw err;
    }
    if (takingOver) log.info({ identity, previous: holder || null }, 'took the leader lease');
    return true;
  }
}
