/**
 * The README is where an operator looks up a reason they saw in a metric or
 * in xdplb trace: every reason the program can give must have its line there.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { REASONS, TRACE_PATHS, verdictOf } from '../../src/api/verdicts.js';

const README = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');

test('every verdict reason has a README line: name, metric label, verdict, cause, what to check', () => {
  const rows = new Map<string, string[]>();
  for (const line of README.split('\n')) {
    const m = /^\| `([A-Z_]+)` \| `([a-z_]+)` \| (TX|PASS|DROP) \| ([^|]+) \|([^|]*)\|$/.exec(line);
    if (m) rows.set(m[1]!, m.slice(2));
  }
  assert.deepEqual([...rows.keys()].sort(), [...REASONS].sort(), 'the verdict reason table lists exactly the reasons of enum xdplb_reason');
  for (const reason of REASONS) {
    const [label, verdict, cause, check] = rows.get(reason)!;
    assert.equal(label, reason.toLowerCase(), `${reason}: metric label`);
    assert.equal(verdict!.toLowerCase(), verdictOf(reason), `${reason}: verdict`);
    assert.ok(cause!.trim().length > 10, `${reason}: cause`);
    if (reason !== 'TX_ENCAP') assert.ok(check!.trim().length > 5, `${reason}: what to check`);
  }
});

test('every trace path is explained in the README', () => {
  for (const path of TRACE_PATHS) assert.match(README, new RegExp(`\`${path.toLowerCase()}\``), `path ${path.toLowerCase()}`);
});
