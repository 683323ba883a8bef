import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mapBytes, schemaBytes } from '../../src/bpf/map-memory.js';
import { RING_SIZE } from '../../src/bpf/consts.js';
import { BALANCER_MAPS, DEFAULT_CAPACITIES } from '../../src/bpf/maps.js';

const KIB = 2 ** 10;

test('a VIP of capacity costs its ring: RING_SIZE u32 slots, each rounded to 8 bytes by the kernel (512 KiB)', () => {
  const ring = (vips: number) => mapBytes(BALANCER_MAPS.ring, vips * RING_SIZE, 1);
  assert.ok(Math.abs(ring(2) - ring(1) - 512 * KIB) <= 8, `${ring(2) - ring(1)} bytes per VIP`);
});

test('a connection table entry costs the kernel\'s element header, key and value, and its hash bucket', () => {
  const table = (entries: number) => mapBytes(BALANCER_MAPS.connTable, entries, 2);
  // Below a power of two only the elements grow: a 48-byte header, the 40-byte key, the 4-byte value rounded to 8.
  assert.equal(table(1 << 20) - table((1 << 20) - 2), 2 * 96);
  // The LRU's per-CPU lists: the kernel rounds the entries up to a multiple of the CPUs.
  assert.equal(mapBytes(BALANCER_MAPS.connTable, 1001, 4), mapBytes(BALANCER_MAPS.connTable, 1004, 4));
});

test('per-CPU maps grow with the CPUs; the rest does not', () => {
  const perCpu = schemaBytes(BALANCER_MAPS, DEFAULT_CAPACITIES, 2) - schemaBytes(BALANCER_MAPS, DEFAULT_CAPACITIES, 1);
  assert.ok(perCpu > 64 * KIB && perCpu < 96 * KIB, `${perCpu} bytes per CPU at the default capacities`);
});
