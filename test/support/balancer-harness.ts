/** A loaded balancer programmed through the Dataplane, and helpers to run packets through it. */
import { after, before } from 'node:test';
import { type BalancerCapacity, type LoadedBalancer, loadBalancer } from '../../src/bpf/programs.js';
import { testRun } from '../../src/libbpf/test-run.js';
import { Dataplane } from '../../src/agent/dataplane/dataplane.js';
import type { EncapConfig, VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { readReasons } from '../../src/agent/dataplane/counters.js';
import type { Reason } from '../../src/bpf/consts.js';

import { ENCAP } from './fixtures.js';

export { ENCAP };

export class BalancerHarness {
  readonly lb: LoadedBalancer;
  /** Replaceable: a test may hand the maps to a new Dataplane, as a restarted agent does. */
  dp: Dataplane;

  constructor(capacity?: BalancerCapacity) {
    this.lb = loadBalancer({ capacity });
    this.dp = new Dataplane(this.lb.maps);
  }

  apply(vips: VipSpec[], encap: EncapConfig = ENCAP) {
    return this.dp.apply({ encap, vips });
  }

  run(packet: Buffer) {
    return testRun(this.lb.progFd, packet);
  }

  reasons(): Record<Reason, bigint> {
    return readReasons(this.lb.maps);
  }

  /** Runs a packet and returns its result with the reason counters that changed. */
  runCounted(packet: Buffer) {
    const before = this.reasons();
    const result = this.run(packet);
    const after = this.reasons();
    const changed: Partial<Record<Reason, bigint>> = {};
    for (const k of Object.keys(after) as Reason[]) if (after[k] !== before[k]) changed[k] = after[k] - before[k];
    return { ...result, changed };
  }

  close(): void {
    this.lb.object.close();
  }
}

/**
 * Registers hooks that give the calling test file a harness programmed with
 * these VIPs (as root; kernel tests gate themselves), and close it after.
 */
export function useBalancerHarness(vips: VipSpec[], use: (h: BalancerHarness) => void): void {
  let h: BalancerHarness | undefined;
  before(() => {
    if (process.getuid?.() !== 0) return;
    h = new BalancerHarness();
    h.apply(vips);
    use(h);
  });
  after(() => h?.close());
}
