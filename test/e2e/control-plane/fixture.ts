/**
 * A control plane for one test file, with the CRDs applied. Without one (no
 * Go to build it, outside CI) the file's tests skip; in CI they fail.
 */
import { fileURLToPath } from 'node:url';
import { after, before, type TestContext } from 'node:test';
import { inCI } from '../../support/kernel.js';
import { OPEN_POOL } from '../pool-manifests.js';
import { ControlPlane } from './control-plane.js';

const CRDS = fileURLToPath(new URL('../../../../crds/', import.meta.url));
export const CRD_NAMES = ['crd/loadbalancervips.xdplb.dev', 'crd/xdpbalancers.xdplb.dev', 'crd/xdpaddresspools.xdplb.dev', 'crd/xdpnodereports.xdplb.dev'];

export interface ControlPlaneFixture {
  /** The control plane; valid in tests that passed need(). */
  readonly cp: ControlPlane;
  /** Returns true when the test may go on; skips (or throws in CI) otherwise. */
  need(t: TestContext): boolean;
}

export interface FixtureOptions {
  /**
   * Apply OPEN_POOL (the e2e VIP range for every namespace) so VIPs are
   * allowed; default true. Tests of pools themselves say false.
   */
  openPool?: boolean;
}

export function controlPlaneFixture(
  setup?: (cp: ControlPlane) => Promise<void> | void,
  teardown?: () => Promise<void>,
  opts: FixtureOptions = {},
): ControlPlaneFixture {
  let cp: ControlPlane | undefined;
  let unavailable: Error | null = null;
  before(async () => {
    try {
      cp = await ControlPlane.start();
    } catch (err) {
      unavailable = err as Error;
      return;
    }
    cp.kubectl(['apply', '-k', CRDS]);
    cp.kubectl(['wait', '--for', 'condition=established', '--timeout=60s', ...CRD_NAMES]);
    if (opts.openPool ?? true) cp.kubectl(['apply', '-f', '-'], OPEN_POOL);
    await setup?.(cp);
  });
  after(async () => {
    await teardown?.();
    await cp?.stop();
  });
  return {
    get cp() {
      if (!cp) throw new Error('no control plane: call need(t) first');
      return cp;
    },
    need(t: TestContext): boolean {
      if (!unavailable) return true;
      if (inCI) throw unavailable;
      t.skip(`no control plane: ${unavailable.message}`);
      return false;
    },
  };
}
