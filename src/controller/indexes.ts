/**
 * Indexes that keep the controller's work proportional to what changed:
 * a VIP reconcile looks only at pods carrying one of its selector's labels,
 * and a pod event queues only the VIPs that may select it or list it now.
 * Both return supersets; callers still match the full selector.
 */
import type { V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import type { LoadBalancerVip } from '../api/loadbalancervip.js';

const pairKey = (ns: string, k: string, v: string) => `${ns}\0${k}=${v}`;
const objKey = (ns: string | undefined, name: string | undefined) => `${ns}/${name}`;

/** Sets of values by key; a key whose set empties is dropped. */
export class MultiMap<V> {
  private readonly m = new Map<string, Set<V>>();
  add(k: string, v: V): void {
    let s = this.m.get(k);
    if (!s) this.m.set(k, (s = new Set()));
    s.add(v);
  }
  delete(k: string, v: V): void {
    const s = this.m.get(k);
    if (s?.delete(v) && s.size === 0) this.m.delete(k);
  }
  get(k: string): ReadonlySet<V> {
    return this.m.get(k) ?? EMPTY;
  }
}
const EMPTY: ReadonlySet<never> = new Set();

/** The label pairs a selector requires, each one enough to narrow the candidates. */
function requiredPairs(ns: string, s: V1LabelSelector): string[][] {
  const alternatives: string[][] = Object.entries(s.matchLabels ?? {}).map(([k, v]) => [pairKey(ns, k, v)]);
  for (const e of s.matchExpressions ?? []) {
    if (e.operator === 'In' && e.values?.length) alternatives.push(e.values.map((v) => pairKey(ns, e.key, v)));
  }
  return alternatives;
}

/** Pods by namespace and by each label pair. */
export class PodIndex {
  private readonly byPair = new MultiMap<V1Pod>();
  private readonly byNamespace = new MultiMap<V1Pod>();
  private readonly current = new Map<string, V1Pod>();

  update(pod: V1Pod, deleted: boolean): void {
    const key = objKey(pod.metadata?.namespace, pod.metadata?.name);
    const ns = pod.metadata?.namespace ?? '';
    const old = this.current.get(key);
    if (old) {
      this.byNamespace.delete(ns, old);
      for (const [k, v] of Object.entries(old.metadata?.labels ?? {})) this.byPair.delete(pairKey(ns, k, v), old);
      this.current.delete(key);
    }
    if (deleted) return;
    this.current.set(key, pod);
    this.byNamespace.add(ns, pod);
    for (const [k, v] of Object.entries(pod.metadata?.labels ?? {})) this.byPair.add(pairKey(ns, k, v), pod);
  }

  /** Pods of `ns` that may match `selector`: those with its rarest required label, else the namespace. */
  candidates(ns: string, selector: V1LabelSelector): Iterable<V1Pod> {
    let best: V1Pod[] | ReadonlySet<V1Pod> = this.byNamespace.get(ns);
    for (const alternative of requiredPairs(ns, selector)) {
      const union = alternative.length === 1 ? this.byPair.get(alternative[0]!) : alternative.flatMap((p) => [...this.byPair.get(p)]);
      if (size(union) < size(best)) best = union;
    }
    return best;
  }
}

const size = (c: V1Pod[] | ReadonlySet<V1Pod>) => (Array.isArray(c) ? c.length : c.size);

/** VIP keys by the label pairs their selectors require, and by the pods their status lists. */
export class VipIndex {
  private readonly byPair = new MultiMap<string>();
  /** VIPs whose selectors require no single pair (only NotIn/Exists/...): every pod of the namespace may match. */
  private readonly wide = new MultiMap<string>();
  private readonly byBackend = new MultiMap<string>();
  private readonly entries = new Map<string, { pairs: string[]; wide?: string; pods: string[] }>();

  update(vip: LoadBalancerVip, deleted: boolean): void {
    const key = objKey(vip.metadata.namespace, vip.metadata.name);
    const ns = vip.metadata.namespace ?? '';
    const old = this.entries.get(key);
    if (old) {
      for (const p of old.pairs) this.byPair.delete(p, key);
      if (old.wide !== undefined) this.wide.delete(old.wide, key);
      for (const p of old.pods) this.byBackend.delete(p, key);
      this.entries.delete(key);
    }
    if (deleted) return;
    // One required alternative suffices: a matching pod carries one of its pairs.
    const alternatives = requiredPairs(ns, vip.spec.backendSelector ?? {});
    const pairs = alternatives.length ? alternatives.sort((a, b) => a.length - b.length)[0]! : [];
    const pods = (vip.status?.backends ?? []).map((b) => objKey(ns, b.pod));
    const entry = { pairs, wide: alternatives.length ? undefined : ns, pods };
    for (const p of pairs) this.byPair.add(p, key);
    if (entry.wide !== undefined) this.wide.add(entry.wide, key);
    for (const p of pods) this.byBackend.add(p, key);
    this.entries.set(key, entry);
  }

  /** Keys of VIPs that may select `pod` or list it as a backend. */
  candidates(pod: V1Pod): Set<string> {
    const ns = pod.metadata?.namespace ?? '';
    const out = new Set<string>([...this.wide.get(ns), ...this.byBackend.get(objKey(ns, pod.metadata?.name))]);
    for (const [k, v] of Object.entries(pod.metadata?.labels ?? {})) for (const key of this.byPair.get(pairKey(ns, k, v))) out.add(key);
    return out;
  }
}
