/**
 * Keeps backend_svcs equal to a plan, as a diff: new and changed entries
 * first, removals after, so a backend that moves between keys is never
 * missing in between. An entry that leaves the plan is not deleted at once:
 * while the balancer still sends its established flows to the pod (its
 * connection table keeps them after the pod leaves the ring), each of their
 * tunnel packets needs the entry to be taken off and translated. It is kept
 * for the drain period, then deleted; back in the plan meanwhile, it simply
 * stays. The rule is simple and honest: this node cannot see when the
 * balancer's last flow to the pod ends, so it keeps the entry as long as the
 * balancer keeps draining reals (the XdpBalancer's drain period).
 *
 * Entries found in the map at start (a restarted agent) that the first plan
 * lacks start their drain period then: the previous agent may have been
 * draining them, and when it began is not recorded in the kernel.
 *
 * Node addressing's backend_node_svcs is kept the same way (NodeServiceTable):
 * an entry whose last pod left keeps its slots for the drain period, so the
 * tunnel packets of its flows still reach the node's program.
 */
import { type BackendNodeSvc, BackendNodeSvcCodec, type BackendSvcKey, type Endpoint } from '../../bpf/backend-structs.js';
import { BACKEND_MAPS, typedMap } from '../../bpf/maps.js';
import type { RawMap } from '../../libbpf/raw-map.js';
import type { TypedMap } from '../../libbpf/typed-map.js';
import { svcKeyId } from './service-plan.js';

export interface TableEntry<K, V> {
  key: K;
  value: V;
}
export type SvcEntry = TableEntry<BackendSvcKey, Endpoint>;

export interface TableChange {
  added: number;
  /** Entries whose key stayed and value changed (another target port): rewritten in place. */
  changed: number;
  /** Entries that left the plan and started their drain period now. */
  drainStarted: number;
  /** Entries deleted: their drain period ended. */
  removed: number;
  /** Entries the kernel refused to write (the map is full), with its error. */
  failed: { entry: TableEntry<BackendSvcKey, unknown>; err: string }[];
}

const sameValue = (a: Endpoint, b: Endpoint): boolean => a.address.text === b.address.text && a.port === b.port && a.proto === b.proto;

/** A map of the agent's, keyed by struct backend_svc_key, kept equal to a plan with drains. */
export class DrainingTable<V> {
  /** What the map holds, by svcKeyId. */
  private readonly held = new Map<string, TableEntry<BackendSvcKey, V>>();
  /** Held entries outside the plan: when each is deleted (ms, this.now's clock). */
  private readonly drainEnds = new Map<string, number>();

  constructor(private readonly map: TypedMap<BackendSvcKey, V>, private readonly sameValue: (a: V, b: V) => boolean,
    private readonly drainMs: number, private readonly now: () => number = Date.now) {
    for (const key of this.map.keys()) {
      const value = this.map.get(key);
      if (value) this.held.set(svcKeyId(key), { key, value });
    }
  }

  /** Entries the map holds now that are draining (out of the plan, not yet deleted). */
  draining(): TableEntry<BackendSvcKey, V>[] {
    return [...this.drainEnds.keys()].map((id) => this.held.get(id)!);
  }

  /** Every entry the map holds. */
  entries(): TableEntry<BackendSvcKey, V>[] {
    return [...this.held.values()];
  }

  /** Writes the plan's new and changed entries, then starts or ends the drain of the others. */
  apply(plan: ReadonlyMap<string, TableEntry<BackendSvcKey, V>>): TableChange {
    const change: TableChange = { added: 0, changed: 0, drainStarted: 0, removed: 0, failed: [] };
    for (const [id, { key, value }] of plan) {
      this.drainEnds.delete(id);
      const had = this.held.get(id);
      if (had && this.sameValue(had.value, value)) continue;
      try {
        this.map.set(key, value);
      } catch (err) {
        change.failed.push({ entry: { key, value }, err: (err as Error).message });
        continue;
      }
      this.held.set(id, { key, value });
      if (had) change.changed++;
      else change.added++;
    }
    const t = this.now();
    for (const [id, { key }] of this.held) {
      if (plan.has(id)) continue;
      const end = this.drainEnds.get(id);
      if (end === undefined && this.drainMs > 0) {
        this.drainEnds.set(id, t + this.drainMs);
        change.drainStarted++;
      } else if (end === undefined || t >= end) {
        this.map.delete(key);
        this.held.delete(id);
        this.drainEnds.delete(id);
        change.removed++;
      }
    }
    return change;
  }
}

/** backend_svcs: (pod address as tunnelled to, VIP, port) -> the pod's address and target port. */
export class ServiceTable extends DrainingTable<Endpoint> {
  constructor(raw: RawMap, drainMs: number, now: () => number = Date.now) {
    super(typedMap(BACKEND_MAPS.services, raw), sameValue, drainMs, now);
  }
}

const sameSlots = (a: BackendNodeSvc, b: BackendNodeSvc): boolean => BackendNodeSvcCodec.encode(a).equals(BackendNodeSvcCodec.encode(b));

/** Node addressing's backend_node_svcs: (node address, VIP, port) -> the local pods, as slots. */
export class NodeServiceTable extends DrainingTable<BackendNodeSvc> {
  constructor(raw: RawMap, drainMs: number, now: () => number = Date.now) {
    super(typedMap(BACKEND_MAPS.nodeServices, raw), sameSlots, drainMs, now);
  }
}
