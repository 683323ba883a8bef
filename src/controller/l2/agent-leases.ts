/**
 * L2 mode: which agents are alive, from the Leases they hold in the agents'
 * namespace (labelled with their balancer and node). An agent renews its
 * Lease a few times per duration and deletes it when it stops; a Lease not
 * renewed for its duration belongs to a dead node.
 *
 * Expiry is measured on this controller's clock, from when it last saw the
 * Lease change (as Kubernetes leader election does), never by comparing the
 * agent's renewTime with our clock: node clocks may be skewed. A controller
 * that starts sees every Lease as just renewed, so it waits one duration
 * before calling an agent dead.
 */
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { L2_LEASE_BALANCER_LABEL, L2_LEASE_NODE_LABEL } from '../../api/xdpbalancer.js';
import { componentLog } from '../../lib/log.js';
import { WatchedCache } from '../../lib/watched-cache.js';

const log = componentLog('agent-leases');
const MS_PER_SECOND = 1000;

interface Seen {
  /** The spec as last seen: a change of it is a renewal. */
  renewal: string;
  /** When this controller saw that renewal (ms, its own clock). */
  at: number;
}

export interface AgentLeaseHooks {
  /** The set of alive agents of a balancer changed: its VIPs' L2 nodes may have to move. */
  aliveChanged(balancer: string): void;
}

function trimLease(l: V1Lease): void {
  if (l.metadata) delete l.metadata.managedFields;
}

export class AgentLeases {
  private readonly cache: WatchedCache<V1Lease>;
  private readonly seen = new Map<string, Seen>();
  /** Alive nodes by balancer, as last told to the hooks. */
  private told = new Map<string, ReadonlySet<string>>();
  private timer: NodeJS.Timeout | undefined;
  private started = false;

  constructor(kc: KubeConfig, private readonly namespace: string, private readonly hooks: AgentLeaseHooks, private readonly now: () => number = Date.now) {
    const api = kc.makeApiClient(CoordinationV1Api);
    this.cache = new WatchedCache<V1Lease>(kc, `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
      (page) => api.listNamespacedLease({ namespace, labelSelector: L2_LEASE_BALANCER_LABEL, ...page }),
      (lease, verb) => this.onLease(lease, verb), { labelSelector: L2_LEASE_BALANCER_LABEL, trim: trimLease });
  }

  async start(): Promise<void> {
    await this.cache.start();
    this.started = true;
    this.recheck();
  }

  async stop(): Promise<void> {
    this.started = false;
    clearTimeout(this.timer);
    await this.cache.stop();
  }

  /** The nodes of a balancer whose agent holds an unexpired Lease. */
  alive(balancer: string): ReadonlySet<string> {
    return this.told.get(balancer) ?? new Set();
  }

  private onLease(lease: V1Lease, verb: 'add' | 'update' | 'delete'): void {
    const key = lease.metadata?.name ?? '';
    if (verb === 'delete') this.seen.delete(key);
    else {
      const renewal = JSON.stringify(lease.spec ?? {});
      if (this.seen.get(key)?.renewal !== renewal) this.seen.set(key, { renewal, at: this.now() });
    }
    if (this.started) this.recheck();
  }

  /** Recomputes who is alive, tells what changed, and wakes up at the next expiry. */
  private recheck(): void {
    clearTimeout(this.timer);
    const now = this.now();
    const alive = new Map<string, Set<string>>();
    let nextExpiry = Infinity;
    for (const lease of this.cache.list(this.namespace)) {
      const balancer = lease.metadata?.labels?.[L2_LEASE_BALANCER_LABEL];
      const node = lease.metadata?.labels?.[L2_LEASE_NODE_LABEL];
      const seen = this.seen.get(lease.metadata?.name ?? '');
      const seconds = lease.spec?.leaseDurationSeconds;
      // Released (no holder) or malformed: not alive.
      if (!balancer || !node || !seen || !lease.spec?.holderIdentity || !seconds) continue;
      const expiry = seen.at + seconds * MS_PER_SECOND;
      if (expiry <= now) continue;
      nextExpiry = Math.min(nextExpiry, expiry);
      let set = alive.get(balancer);
      if (!set) alive.set(balancer, (set = new Set()));
      set.add(node);
    }
    const before = this.told;
    this.told = alive;
    for (const balancer of new Set([...before.keys(), ...alive.keys()])) {
      const was = before.get(balancer) ?? new Set<string>();
      const is = alive.get(balancer) ?? new Set<string>();
      if (was.size === is.size && [...is].every((n) => was.has(n))) continue;
      const gone = [...was].filter((n) => !is.has(n));
      const came = [...is].filter((n) => !was.has(n));
      log.info({ balancer, alive: [...is].sort(), gone, came }, 'L2: alive agents changed');
      this.hooks.aliveChanged(balancer);
    }
    if (nextExpiry !== Infinity) {
      // Timers run before I/O in each turn of the event loop: a controller that was busy past an
      // expiry reads the renewals waiting on its watch (setImmediate runs after them) before it
      // calls anyone dead.
      this.timer = setTimeout(() => setImmediate(() => this.recheck()), Math.max(0, nextExpiry - now) + 1);
      this.timer.unref();
    }
  }
}
