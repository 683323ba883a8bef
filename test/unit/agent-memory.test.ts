import assert from 'node:assert/strict';
import { test } from 'node:test';
import { schemaBytes } from '../../src/bpf/map-memory.js';
import { BALANCER_MAPS, DEFAULT_CAPACITIES } from '../../src/bpf/maps.js';
import { agentMemory, ASSUMED_NODE_CPUS, mebibytes } from '../../src/controller/agent-memory.js';

const MIB = 2 ** 20;

test('the default capacities: about 406 MiB of maps, a 663 MiB request and a 1109 MiB limit', () => {
  const maps = schemaBytes(BALANCER_MAPS, DEFAULT_CAPACITIES, ASSUMED_NODE_CPUS);
  assert.ok(maps > 400 * MIB && maps < 430 * MIB, `${maps / MIB} MiB`);
  const m = agentMemory();
  assert.deepEqual([mebibytes(m.requestBytes), mebibytes(m.limitBytes)], ['663Mi', '1109Mi']);
});

test('quantities round up to whole MiB', () => {
  assert.equal(mebibytes(MIB), '1Mi');
  assert.equal(mebibytes(MIB + 1), '2Mi');
});
