/**
 * Which unusable weight annotations have been reported, so each is one
 * Warning Event per pod and annotation value. A bad annotation stays bad
 * while its VIP's status changes for other reasons (pods joining, draining,
 * agents reporting); an Event on each change would bury the ones that matter.
 * A pod whose annotation is fixed is forgotten, so breaking it again is
 * reported again. Kept in memory: a new leader reports each once more.
 */
import type { Resolution } from './backends.js';

export type BadWeight = Resolution['badWeights'][number];

export class BadWeightReports {
  /** VIP key -> pod -> the annotation value reported. */
  private readonly reported = new Map<string, Map<string, string>>();

  /** The bad weights among `bad` (all of the VIP's, now) not reported yet; remembers them as reported. */
  fresh(vip: string, bad: readonly BadWeight[]): BadWeight[] {
    const before = this.reported.get(vip);
    const out = bad.filter((b) => before?.get(b.pod) !== b.value);
    if (bad.length) this.reported.set(vip, new Map(bad.map((b) => [b.pod, b.value])));
    else this.reported.delete(vip);
    return out;
  }

  /** The VIP is gone. */
  forget(vip: string): void {
    this.reported.delete(vip);
  }
}
