/**
 * The TypeScript mirror of bpf/include (src/bpf/structs.ts, src/bpf/consts.ts) and the map
 * schema (src/bpf/maps.ts) must match the compiled objects: struct sizes and offsets, enum
 * values, map definitions.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ALL_LAYOUTS, AddrLayout, type StructLayout } from '../../src/bpf/structs.js';
import * as L from '../../src/bpf/consts.js';
import { TRACE_LAYOUTS } from '../../src/bpf/trace-structs.js';
import { L2_LAYOUTS } from '../../src/bpf/l2-structs.js';
import { BACKEND_LAYOUTS } from '../../src/bpf/backend-structs.js';
import { type BackendCapacities, BACKEND_MAPS, BALANCER_MAPS, type MapCapacities, DECAP_MAPS, DEFAULT_CAPACITIES, entriesOf, isPerCpu, MapType, type Schema }
  from '../../src/bpf/maps.js';
import { BACKEND_OBJECT, BALANCER_OBJECT, DECAP_OBJECT, type KernelMapSet, loadBackend, loadBalancer, loadDecap }
  from '../../src/bpf/programs.js';
import { kernelMaxEntries } from '../../src/bpf/pinned-layout.js';
import { Btf } from '../support/btf.js';
import { requireKernel } from '../support/kernel.js';

const strip = (names: Record<string, number>) =>
  Object.fromEntries(Object.entries(names).map(([k, v]) => [k.replace(/^XDPLB_/, ''), v]));

describe('struct layouts match the BTF', () => {
  const btf = new Btf(BALANCER_OBJECT);
  const decapBtf = new Btf(DECAP_OBJECT);
  const backendBtf = new Btf(BACKEND_OBJECT);
  const layouts: [Btf, readonly StructLayout[]][] = [[btf, [...ALL_LAYOUTS, ...TRACE_LAYOUTS, ...L2_LAYOUTS]], [backendBtf, BACKEND_LAYOUTS]];
  for (const [objectBtf, list] of layouts) {
    for (const layout of list) {
      test(`struct ${layout.cName}`, () => {
        const actual = objectBtf.struct(layout.cName);
        assert.equal(layout.size, actual.size, `sizeof(struct ${layout.cName})`);
        assert.deepEqual(layout.offsets, actual.offsets, `offsets of struct ${layout.cName}`);
      });
    }
  }
  test('decap uses the same struct xdplb_addr', () => {
    assert.deepEqual(decapBtf.struct(AddrLayout.cName), btf.struct(AddrLayout.cName));
  });

  test('constants match the C enums', () => {
    assert.deepEqual(strip(btf.enumValues('xdplb_capacity')), {
      MAX_VIPS: L.MAX_VIPS,
      MAX_REALS: L.MAX_REALS,
      RING_SIZE: L.RING_SIZE,
      CONNECTION_TABLE_SIZE: L.CONNECTION_TABLE_SIZE,
      HALF_OPEN_TABLE_DIVISOR: L.HALF_OPEN_TABLE_DIVISOR,
      MAX_DECAP_ADDRS: L.MAX_DECAP_ADDRS,
      MAX_EXT_HDRS: L.MAX_EXT_HDRS,
      MAX_ND_OPTS: L.MAX_ND_OPTS,
      MAX_L4_OFF: L.MAX_L4_OFF,
      MAX_BACKEND_SERVICES: L.MAX_BACKEND_SERVICES,
      BACKEND_FLOW_TABLE_SIZE: L.BACKEND_FLOW_TABLE_SIZE,
      MAX_BACKEND_NODE_SERVICES: L.MAX_BACKEND_NODE_SERVICES,
      NODE_SVC_SLOTS: L.NODE_SVC_SLOTS,
    });
    assert.deepEqual(strip(btf.enumValues('xdplb_flow_const')), { UDP_IDLE_TIMEOUT_S: L.UDP_IDLE_TIMEOUT_S });
    assert.deepEqual(strip(btf.enumValues('xdplb_family')), { FAMILY_V4: L.FAMILY_V4, FAMILY_V6: L.FAMILY_V6 });
    assert.deepEqual(strip(btf.enumValues('xdplb_vip_flag')), {
      VIP_F_HASH_NO_SRC_PORT: L.VIP_F_HASH_NO_SRC_PORT,
      VIP_F_LRU_BYPASS: L.VIP_F_LRU_BYPASS,
      VIP_F_NO_ICMP_ECHO: L.VIP_F_NO_ICMP_ECHO,
      VIP_F_QUIC: L.VIP_F_QUIC,
    });
    assert.deepEqual(strip(btf.enumValues('xdplb_vip_addr_flag')), { VIP_ADDR_F_ICMP_ECHO: L.VIP_ADDR_F_ICMP_ECHO });
    assert.deepEqual(strip(btf.enumValues('xdplb_icmp_const')), L.ICMP_PROTO);
    assert.deepEqual(strip(btf.enumValues('xdplb_quic_const')), L.QUIC_CONST);
    assert.deepEqual(strip(btf.enumValues('xdplb_l2_flag')), { L2_F_ANSWER: L.L2_F_ANSWER });
    assert.deepEqual(strip(btf.enumValues('xdplb_l2_const')), L.L2_PROTO);
    assert.deepEqual(strip(btf.enumValues('xdplb_trace_const')), {
      TRACE_MAX_RULES: L.TRACE_MAX_RULES,
      TRACE_SNAPLEN: L.TRACE_SNAPLEN,
      TRACE_RING_BYTES: L.TRACE_RING_BYTES,
    });
    assert.deepEqual(btf.enumValues('xdplb_trace_path'),
      Object.fromEntries(L.TRACE_PATHS.map((p, i) => [`XDPLB_PATH_${p}`, i])));
    assert.deepEqual(btf.enumValues('xdplb_trace_counter'), {
      ...Object.fromEntries(L.TRACE_COUNTERS.map((c, i) => [`XDPLB_TRACE_${c}`, i])),
      XDPLB_TRACE_COUNTER_MAX: L.TRACE_COUNTERS.length,
    });
    const reasons = strip(btf.enumValues('xdplb_reason'));
    assert.deepEqual(reasons, { ...Object.fromEntries(L.REASONS.map((r, i) => [r, i])), REASON_MAX: L.REASONS.length });
    const decap = strip(decapBtf.enumValues('xdplb_decap_reason'));
    assert.deepEqual(decap, {
      ...Object.fromEntries(L.DECAP_REASONS.map((r, i) => [r, i])),
      DECAP_REASON_MAX: L.DECAP_REASONS.length,
    });
    const backend = Object.fromEntries(Object.entries(backendBtf.enumValues('xdplb_backend_reason'))
      .map(([k, v]) => [k.replace(/^XDPLB_BACKEND_/, ''), v]));
    assert.deepEqual(backend, { ...Object.fromEntries(L.BACKEND_REASONS.map((r, i) => [r, i])), REASON_MAX: L.BACKEND_REASONS.length });
  });
});

const PROGRAMS: [string, string, Schema][] = [
  ['balancer', BALANCER_OBJECT, BALANCER_MAPS],
  ['decap', DECAP_OBJECT, DECAP_MAPS],
  ['backend', BACKEND_OBJECT, BACKEND_MAPS],
];

describe('map definitions match the schema', () => {
  for (const [program, object, schema] of PROGRAMS) {
    test(`${program}: every map's type, flags, key and value types and max_entries`, () => {
      const defs = new Btf(object).mapDefinitions();
      assert.deepEqual(Object.keys(defs).sort(), Object.values(schema).map((m) => m.name).sort(), 'the schema names every map');
      for (const m of Object.values(schema)) {
        const want = { type: m.type, flags: m.flags, key: m.key.cType, value: m.value.cType, maxEntries: entriesOf(m, DEFAULT_CAPACITIES) };
        assert.deepEqual(defs[m.name], want, `map ${m.name}`);
      }
    });
  }

  test('every struct a map holds is one whose layout is checked', () => {
    const checked = new Set([...ALL_LAYOUTS, ...TRACE_LAYOUTS, ...BACKEND_LAYOUTS].map((l) => `struct ${l.cName}`));
    for (const [, , schema] of PROGRAMS) {
      for (const m of Object.values(schema)) {
        for (const c of [m.key, m.value]) if (c.cType.startsWith('struct ')) assert.ok(checked.has(c.cType), `${m.name}: ${c.cType}`);
      }
    }
  });

  test('per-CPU maps are the per-CPU array type', () => {
    const perCpu = Object.values(BALANCER_MAPS).filter(isPerCpu).map((m) => m.name);
    assert.deepEqual(perCpu, ['vip_stats', 'real_stats', 'reason_stats', 'icmp_budget', 'trace_budget', 'trace_stats']);
    assert.ok(isPerCpu(DECAP_MAPS.stats) && !isPerCpu(DECAP_MAPS.addrs));
    assert.deepEqual(Object.values(BACKEND_MAPS).filter(isPerCpu).map((m) => m.name), ['backend_stats']);
  });

  /** What the kernel made of each map: sizes from the codecs, entries from the capacities (per-CPU LRUs rounded to whole CPUs). */
  function checkLoaded(maps: KernelMapSet<Schema>, schema: Schema, capacities: MapCapacities & Partial<BackendCapacities>): void {
    for (const [k, m] of Object.entries(schema)) {
      const map = maps[k]!;
      assert.equal(map.name, m.name);
      assert.deepEqual([map.keySize, map.valueSize, map.maxEntries, map.perCpu], [m.key.size, m.value.size, kernelMaxEntries(m, entriesOf(m, capacities)), isPerCpu(m)],
        `map ${m.name}`);
      if (m.type === MapType.RINGBUF) assert.equal(map.maxEntries, L.TRACE_RING_BYTES);
    }
  }

  test('balancer maps as loaded, at the compiled and at chosen capacities', (t) => {
    if (!requireKernel(t)) return;
    const chosen: MapCapacities = { vips: 3, reals: 7, connectionTable: 1000 };
    for (const capacities of [DEFAULT_CAPACITIES, chosen]) {
      const lb = loadBalancer({ capacity: capacities === DEFAULT_CAPACITIES ? undefined : capacities });
      try {
        checkLoaded(lb.maps, BALANCER_MAPS, capacities);
      } finally {
        lb.object.close();
      }
    }
  });

  test('backend maps at a chosen flow table size', (t) => {
    if (!requireKernel(t)) return;
    const backend = loadBackend({ capacity: { backendFlows: 1000 } });
    try {
      checkLoaded(backend.maps, BACKEND_MAPS, { ...DEFAULT_CAPACITIES, backendFlows: 1000 });
    } finally {
      backend.object.close();
    }
  });

  const compiledSize: [string, () => { maps: KernelMapSet<Schema>; object: { close(): void } }, Schema][] = [
    ['decap', loadDecap, DECAP_MAPS],
    ['backend', loadBackend, BACKEND_MAPS],
  ];
  for (const [program, load, schema] of compiledSize) {
    test(`${program} maps as loaded at the compiled sizes`, (t) => {
      if (!requireKernel(t)) return;
      const loaded = load();
      try {
        checkLoaded(loaded.maps, schema, DEFAULT_CAPACITIES);
      } finally {
        loaded.object.close();
      }
    });
  }
});
