/** One adoption scenario, run on the kernel's maps (test/bpf) and on in-memory ones (test/unit). */
import assert from 'node:assert/strict';
import { Dataplane } from '../../src/agent/dataplane/dataplane.js';
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import type { BALANCER_MAPS, RawMapSet } from '../../src/bpf/maps.js';
import { ENCAP, reals, vip } from './fixtures.js';

/**
 * Programs a state through `first`, restarts on the same maps: the same
 * state writes nothing, a change writes only itself. Returns the restarted
 * Dataplane, which now describes the maps.
 */
export function checkRestartAdopts(raw: RawMapSet<typeof BALANCER_MAPS>, first: Dataplane): Dataplane {
  const state: VipSpec[] = [
    vip('198.19.1.20', [{ address: '198.18.9.100', weight: 0 }, ...reals(3, '198.18.9.1')]),
    { ...vip('2001:db8:19::20', reals(2, '2001:db8:9::')), hashNoSrcPort: true },
    vip('198.19.1.21', reals(4, '198.18.9.1')),
  ];
  first.apply({ encap: ENCAP, vips: state });
  const restarted = new Dataplane(raw);
  assert.deepEqual(restarted.adopt(), { vips: 3, reals: 7, dirtyRings: 0 });
  const writes = restarted.totalWrites();
  assert.equal(restarted.apply({ encap: ENCAP, vips: state }).writes, 0, 'nothing changed, nothing written');
  assert.equal(restarted.totalWrites(), writes);
  assert.deepEqual(restarted.installedVips().sort(), first.installedVips().sort());
  const changed = restarted.apply({ encap: ENCAP, vips: state.slice(1) });
  assert.equal(changed.vipsRemoved, 1);
  assert.equal(changed.realsRemoved, 1, 'only the draining real of the removed VIP goes; its other reals are shared');
  assert.equal(raw.vips.keys().length, 2);
  return restarted;
}
