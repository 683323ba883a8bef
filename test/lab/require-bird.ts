/** Gate for lab tests that route by BGP: they need BIRD 2 (Debian's bird2) besides root and BPF. */
import { execFileSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { inCI, requireKernel } from '../support/kernel.js';

function birdMissing(): string | null {
  try {
    execFileSync('bird', ['--version'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'BIRD 2 is not installed (Debian: apt-get install bird2)';
  }
}

/** True when the test may go on; skips outside CI, fails in CI, with the reason. */
export function requireBird(t: TestContext): boolean {
  if (!requireKernel(t)) return false;
  const missing = birdMissing();
  if (!missing) return true;
  if (inCI) throw new Error(`this test routes by BGP and CI must run it: ${missing}`);
  t.skip(missing);
  return false;
}

/** For before() hooks, which have no test context: whether BGP lab tests can run here. */
export const birdAvailable = (): boolean => process.getuid?.() === 0 && birdMissing() === null;
