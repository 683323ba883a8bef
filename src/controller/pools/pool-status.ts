/**
 * Each XdpAddressPool's status: whether it is accepted (it overlaps no older
 * pool) and how many VIP addresses lie in it. Written only when it changed.
 */
import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions, type V1Condition } from '@kubernetes/client-node';
import { PoolConditionType, type XdpAddressPoolStatus, XDPAP_PLURAL } from '../../api/addresspool.js';
import { GROUP, VERSION } from '../../api/loadbalancervip.js';
import { goneOrThrow } from '../../lib/api-error.js';
import { WorkQueue } from '../../lib/work-queue.js';
import { CONTROLLER_FIELD_MANAGER } from '../balancer-controller.js';
import type { ControllerMetrics } from '../metrics.js';
import type { AddressAdmission } from './address-admission.js';
import type { UsedAddresses } from './assignment.js';
import { acceptedCondition } from './pool-overlap.js';

/** addressesInUse follows VIP changes at most this often: a burst of new VIPs costs one write per pool. */
const IN_USE_DEBOUNCE_MS = 1000;

export class PoolStatusWriter {
  private debounce: NodeJS.Timeout | undefined;
  private readonly custom: CustomObjectsApi;
  private readonly queue: WorkQueue;

  constructor(kc: KubeConfig, private readonly admission: AddressAdmission, private readonly used: UsedAddresses, metrics?: ControllerMetrics) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.queue = new WorkQueue('xdpaddresspool', (name) => this.reconcile(name), metrics?.queueHooks('XdpAddressPool', () => this.queue.depth));
  }

  start(): void {
    this.queue.start();
    this.allChanged();
  }

  async stop(): Promise<void> {
    clearTimeout(this.debounce);
    this.debounce = undefined;
    await this.queue.stop();
  }

  /** A VIP's address came or went: the counts are brought up to date shortly. */
  addressesChanged(): void {
    this.debounce ??= setTimeout(() => {
      this.debounce = undefined;
      this.allChanged();
    }, IN_USE_DEBOUNCE_MS);
  }

  /** Pools are few: any change queues them all (the queue folds repeats). */
  allChanged(): void {
    for (const p of this.admission.poolResources()) if (p.metadata.name) this.queue.add(p.metadata.name);
  }

  private async reconcile(name: string): Promise<void> {
    const resource = this.admission.poolResources().find((p) => p.metadata.name === name);
    const pool = this.admission.pools.find((p) => p.name === name);
    if (!resource || !pool) return;
    const inUse = pool.refused ? 0 : pool.cidrs.reduce((n, c) => n + this.used.countIn(c.family, c.first, c.last), 0);
    const accepted = acceptedCondition(pool);
    const gen = resource.metadata.generation;
    const prev = resource.status?.conditions?.find((c) => c.type === PoolConditionType.Accepted);
    if (resource.status?.addressesInUse === inUse && resource.status.observedGeneration === gen &&
      prev?.status === accepted.status && prev.reason === accepted.reason && prev.message === accepted.message) return;
    const condition: V1Condition = {
      type: PoolConditionType.Accepted, ...accepted, observedGeneration: gen,
      lastTransitionTime: prev && prev.status === accepted.status ? prev.lastTransitionTime : new Date(),
    };
    const status: XdpAddressPoolStatus = { observedGeneration: gen, addressesInUse: inUse, conditions: [condition] };
    await this.custom.patchClusterCustomObjectStatus(
      { group: GROUP, version: VERSION, plural: XDPAP_PLURAL, name, body: { status }, fieldManager: CONTROLLER_FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    ).then(() => true, goneOrThrow);
  }
}
