/** Programming the backend program's maps in tests, and reading what it counted. */
import assert from 'node:assert/strict';
import { type BackendFlow, podServiceEntry, type PodService } from '../../src/bpf/backend-structs.js';
import { BACKEND_MAPS, typedMap } from '../../src/bpf/maps.js';
import type { BackendMapSet } from '../../src/bpf/programs.js';
import type { BackendReason } from '../../src/bpf/consts.js';
import { readBackendReasons } from '../../src/agent/dataplane/counters.js';

/** Writes a pod service's backend_svcs entry. */
export function addPodService(maps: BackendMapSet, s: PodService): void {
  typedMap(BACKEND_MAPS.services, maps.services).set(...podServiceEntry(s));
}

/** The backend_flows table with its codecs. */
export const backendFlows = (maps: BackendMapSet) => typedMap(BACKEND_MAPS.flows, maps.flows);
export type { BackendFlow };

/** Runs fn and checks that it moved exactly one reason counter, by `packets`. */
export function expectCounted<T>(maps: BackendMapSet, reason: BackendReason, fn: () => T, packets = 1n): T {
  const before = readBackendReasons(maps);
  const out = fn();
  const after = readBackendReasons(maps);
  for (const k of Object.keys(after) as BackendReason[]) {
    assert.equal(after[k] - before[k], k === reason ? packets : 0n, `backend counter ${k}`);
  }
  return out;
}
