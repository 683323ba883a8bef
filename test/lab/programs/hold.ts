/**
 * Brings up a lab or a control plane, prints what it made as JSON, then waits
 * to be interrupted (the interrupt test checks that nothing is left).
 * argv[2]: 'lab' | 'control-plane'
 */
import { ControlPlane } from '../../e2e/control-plane/control-plane.js';
import { Lab } from '../lab.js';

const what = process.argv[2];
if (what === 'lab') {
  const lab = await Lab.up({ tag: `intr${process.pid}`, reals: 1 });
  process.stdout.write(`${JSON.stringify({ tag: lab.tag, pinRoot: lab.pinRoot, workDir: lab.workDir })}\n`);
} else {
  const cp = await ControlPlane.start();
  process.stdout.write(`${JSON.stringify({ dir: cp.dir, server: cp.server })}\n`);
}
setInterval(() => undefined, 1 << 30); // until a signal
