/** A Dataplane on in-memory maps, recording every write: unit tests need no kernel and no root. */
import { Dataplane } from '../../src/agent/dataplane/dataplane.js';
import type { EncapConfig, VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { BALANCER_MAPS, balancerHandles, type MapCapacities, memoryMaps } from '../../src/bpf/maps.js';
import { ENCAP } from './fixtures.js';

export class MemoryDataplane {
  /** Every write, in order: "update vip_map", "delete vip_addrs", "slots ring", ... */
  readonly journal: string[] = [];
  readonly raw;
  /** The same maps through the schema's codecs, for looking at what was written. */
  readonly maps;
  /** Replaceable: a test may hand the maps to a new Dataplane, as a restarted agent does. */
  dp: Dataplane;

  constructor(capacities: Partial<MapCapacities> = {}) {
    this.raw = memoryMaps(BALANCER_MAPS, capacities, { journal: this.journal });
    this.maps = balancerHandles(this.raw);
    this.dp = new Dataplane(this.raw);
  }

  apply(vips: VipSpec[], encap: EncapConfig = ENCAP) {
    return this.dp.apply({ encap, vips });
  }

  accept(vips: VipSpec[], groups?: readonly number[], encap: EncapConfig = ENCAP) {
    return this.dp.accept({ encap, vips }, groups);
  }

  /** The writes fn makes, in order. */
  writesOf(fn: () => void): string[] {
    const from = this.journal.length;
    fn();
    return this.journal.slice(from);
  }
}
