/** The in-memory maps behave as the kernel's do, and the schema's codecs round-trip. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BALANCER_MAPS, balancerHandles, DECAP_MAPS, memoryMaps, realSlotsFor, usableRealIds } from '../../src/bpf/maps.js';
import { MAX_REALS, RING_SIZE } from '../../src/bpf/consts.js';
import { MemoryMap } from '../../src/libbpf/memory-map.js';
import { indexKey } from '../../src/libbpf/raw-map.js';
import { parseIp } from '../../src/lib/ip.js';

const array = (over: Partial<ConstructorParameters<typeof MemoryMap>[0]> = {}) =>
  new MemoryMap({ name: 'a', kind: 'array', keySize: 4, valueSize: 4, maxEntries: 8, perCpu: false, cpus: 2, ...over });
const hash = (maxEntries = 2) => new MemoryMap({ name: 'h', kind: 'hash', keySize: 2, valueSize: 1, maxEntries, perCpu: false, cpus: 2 });

describe('in-memory maps', () => {
  test('an array holds every index from the start, zero-filled, and cannot delete', () => {
    const m = array();
    assert.deepEqual(m.lookup(indexKey(7)), Buffer.alloc(4));
    assert.equal(m.lookup(indexKey(8)), null);
    assert.throws(() => m.update(indexKey(8), Buffer.alloc(4)), /out of 0\.\.7/);
    assert.throws(() => m.delete(indexKey(1)), /cannot be deleted/);
    assert.equal(m.keys().length, 8);
  });

  test('a hash holds what was written, up to max_entries', () => {
    const m = hash();
    m.update(Buffer.from([0, 1]), Buffer.from([1]));
    m.update(Buffer.from([0, 2]), Buffer.from([2]));
    m.update(Buffer.from([0, 2]), Buffer.from([3]));
    assert.throws(() => m.update(Buffer.from([0, 3]), Buffer.from([4])), /full at 2 entries/);
    assert.deepEqual(m.keys(), [Buffer.from([0, 1]), Buffer.from([0, 2])]);
    assert.deepEqual(m.lookup(Buffer.from([0, 2])), Buffer.from([3]));
    assert.equal(m.delete(Buffer.from([0, 1])), true);
    assert.equal(m.delete(Buffer.from([0, 1])), false);
    assert.equal(m.lookup(Buffer.from([0, 1])), null);
    assert.throws(() => m.lookup(Buffer.from([1])), /key is 1 bytes, the map takes 2/);
  });

  test('writes are counted and journalled in order; unchanged slots are not writes', () => {
    const journal: string[] = [];
    const m = array({ name: 'ring', maxEntries: 10, journal });
    m.update(indexKey(0), Buffer.alloc(4));
    assert.equal(m.writeU32Slots(2, Uint32Array.from([5, 0, 6])), 2);
    assert.equal(m.writeU32Slots(2, Uint32Array.from([5, 0, 6])), 0);
    assert.deepEqual([...m.readU32Slots(1, 5)], [0, 5, 0, 6, 0]);
    assert.equal(m.writes, 3);
    assert.deepEqual(journal, ['update ring', 'slots ring']);
    assert.throws(() => m.readU32Slots(8, 3), /slots 8\.\.10 out of 0\.\.9/);
  });

  test('per-CPU values: one 8-byte aligned copy per CPU', () => {
    const m = array({ valueSize: 12, perCpu: true, cpus: 3 });
    assert.equal(m.lookupSize, 3 * 16);
    const all = Buffer.alloc(m.lookupSize);
    all.writeUInt32LE(7, 16);
    m.update(indexKey(1), all);
    assert.deepEqual(m.lookupPerCpu(indexKey(1))!.map((b) => b.readUInt32LE(0)), [0, 7, 0]);
    assert.deepEqual(m.lookupPerCpu(indexKey(1))!.map((b) => b.length), [12, 12, 12]);
  });

  test('array ranges read values back to back', () => {
    const m = array();
    m.update(indexKey(3), Buffer.from([1, 2, 3, 4]));
    assert.deepEqual(m.lookupArrayRange(2, 3), Buffer.from([0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0]));
  });
});

describe('the map schema', () => {
  test('in-memory maps are sized by the schema and the capacities', () => {
    const maps = memoryMaps(BALANCER_MAPS, { vips: 3, reals: 9, connectionTable: 100 });
    assert.deepEqual([maps.vips.maxEntries, maps.vipAddrs.maxEntries, maps.vipStats.maxEntries, maps.ring.maxEntries], [3, 3, 3, 3 * RING_SIZE]);
    assert.deepEqual([maps.reals.maxEntries, maps.realStats.maxEntries, maps.connTable.maxEntries], [9, 9, 100]);
    assert.deepEqual([maps.realStats.perCpu, maps.reals.perCpu], [true, false]);
    assert.equal(memoryMaps(DECAP_MAPS).addrs.keySize, 20);
  });

  test('real id 0 is reserved: a reals map of N slots holds N - 1 reals', () => {
    assert.equal(usableRealIds(MAX_REALS), 4095);
    assert.equal(realSlotsFor(4095), MAX_REALS);
  });

  test('typed handles encode and decode with the schema\'s codecs', () => {
    const m = balancerHandles(memoryMaps(BALANCER_MAPS, { vips: 2 }));
    const key = { address: parseIp('2001:db8::7'), port: 443, proto: 17 };
    m.vips.set(key, { flags: 1, vipNum: 1 });
    assert.deepEqual(m.vips.get(key), { flags: 1, vipNum: 1 });
    assert.deepEqual(m.vips.keys(), [key]);
    m.reals.set(5, parseIp('198.18.0.5'));
    assert.equal(m.reals.get(5), parseIp('198.18.0.5'));
    assert.deepEqual(m.reals.range(4, 2), [null, parseIp('198.18.0.5')]);
    const ctl = { nextHopMac: '02:00:00:00:00:fe', srcMac: '02:00:00:00:00:01', srcV4: parseIp('198.18.0.1'), srcV6: undefined, maxPktSize: 1500 };
    m.ctl.set(0, ctl);
    assert.deepEqual(m.ctl.get(0), ctl);
    assert.ok(m.ctl.same(ctl, { ...ctl, nextHopMac: '02:00:00:00:00:FE' }));
    m.vipStats.set(1, { packets: 2n, bytes: 3n, lruMisses: 4n });
    assert.deepEqual(m.vipStats.getPerCpu(1), [{ packets: 2n, bytes: 3n, lruMisses: 4n }, { packets: 2n, bytes: 3n, lruMisses: 4n }]);
    m.vipStats.clear(1);
    assert.deepEqual(m.vipStats.getPerCpu(1)![0], { packets: 0n, bytes: 0n, lruMisses: 0n });
    const slots = new Uint32Array(RING_SIZE).fill(5);
    assert.equal(m.ring.write(1, slots), RING_SIZE);
    assert.deepEqual(m.ring.read(1), slots);
    assert.equal(m.ring.read(0)[0], 0);
  });
});
