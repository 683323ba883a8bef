/**
 * A test environment opened once for a describe block (before) and taken
 * down after it: `need(t)` says whether a test can run. Without it a test
 * skips with the reason outside CI, and fails in CI, which must run it.
 * `open` takes down what it made if it fails half way.
 */
import { after, before, type TestContext } from 'node:test';
import { inCI } from './kernel.js';

export interface Environment<T> {
  readonly env: T;
  need(t: TestContext): boolean;
}

export function environment<T extends { down(): Promise<void> }>(what: string, open: () => Promise<T>): Environment<T> {
  let env: T | undefined;
  let unavailable: Error | null = null;
  before(async () => {
    try {
      env = await open();
    } catch (err) {
      unavailable = err as Error;
    }
  });
  after(async () => {
    await env?.down();
  });
  return {
    get env(): T {
      if (!env) throw new Error(`no ${what}: call need(t) first`);
      return env;
    },
    need(t: TestContext): boolean {
      if (!unavailable) return true;
      if (inCI) throw unavailable;
      t.skip(`no ${what}: ${unavailable.message}`);
      return false;
    },
  };
}
