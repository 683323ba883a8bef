/**
 * The TypeScript mirror of bpf/include (src/bpf/structs.ts, src/bpf/consts.ts) must match the
 * compiled objects: struct sizes and offsets, enum values, map definitions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ALL_LAYOUTS, AddrLayout, FlowKeyLayout, FlowValueLayout, VipKeyLayout, VipMetaLayout, VipStatsLayout,
  RealStatsLayout, CtlConfigLayout, U32_BYTES, U64_BYTES } from '../../src/bpf/structs.js';
import * as L from '../../src/bpf/consts.js';
import { TRACE_LAYOUTS, TraceBudgetLayout, TraceConfigLayout } from '../../src/bpf/trace-structs.js';
import { BALANCER_OBJECT, DECAP_OBJECT, type LoadedBalancer, type LoadedDecap, loadBalancer, loadDecap }
  from '../../src/bpf/programs.js';
import { Btf } from '../support/btf.js';
import { requireKernel } from '../support/kernel.js';

const strip = (names: Record<string, number>) =>
  Object.fromEntries(Object.entries(names).map(([k, v]) => [k.replace(/^XDPLB_/, ''), v]));

describe('struct layouts match the BTF', () => {
  const btf = new Btf(BALANCER_OBJECT);
  const decapBtf = new Btf(DECAP_OBJECT);
  for (const layout of [...ALL_LAYOUTS, ...TRACE_LAYOUTS]) {
    test(`struct ${layout.cName}`, () => {
      const actual = btf.struct(layout.cName);
      assert.equal(layout.size, actual.size, `sizeof(struct ${layout.cName})`);
      assert.deepEqual(layout.offsets, actual.offsets, `offsets of struct ${layout.cName}`);
    });
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
      MAX_DECAP_ADDRS: L.MAX_DECAP_ADDRS,
      MAX_EXT_HDRS: L.MAX_EXT_HDRS,
    });
    assert.deepEqual(strip(btf.enumValues('xdplb_family')), { FAMILY_V4: L.FAMILY_V4, FAMILY_V6: L.FAMILY_V6 });
    assert.deepEqual(strip(btf.enumValues('xdplb_vip_flag')), {
      VIP_F_HASH_NO_SRC_PORT: L.VIP_F_HASH_NO_SRC_PORT,
      VIP_F_LRU_BYPASS: L.VIP_F_LRU_BYPASS,
    });
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
  });
});

describe('map definitions match the codecs', () => {
  let lb: LoadedBalancer | undefined;
  let decap: LoadedDecap | undefined;
  before(() => {
    if (process.getuid?.() !== 0) return;
    lb = loadBalancer();
    decap = loadDecap();
  });
  after(() => {
    lb?.object.close();
    decap?.object.close();
  });

  test('balancer maps', (t) => {
    if (!requireKernel(t)) return;
    const m = lb!.maps;
    const expect: [typeof m.vips, number, number, number][] = [
      [m.vips, VipKeyLayout.size, VipMetaLayout.size, L.MAX_VIPS],
      [m.vipAddrs, AddrLayout.size, U32_BYTES, L.MAX_VIPS],
      [m.reals, U32_BYTES, AddrLayout.size, L.MAX_REALS],
      [m.ring, U32_BYTES, U32_BYTES, L.MAX_VIPS * L.RING_SIZE],
      [m.connTable, FlowKeyLayout.size, FlowValueLayout.size, L.CONNECTION_TABLE_SIZE],
      [m.ctl, U32_BYTES, CtlConfigLayout.size, 1],
      [m.vipStats, U32_BYTES, VipStatsLayout.size, L.MAX_VIPS],
      [m.realStats, U32_BYTES, RealStatsLayout.size, L.MAX_REALS],
      [m.reasonStats, U32_BYTES, U64_BYTES, L.REASONS.length],
      [m.traceCtl, U32_BYTES, TraceConfigLayout.size, 1],
      [m.traceBudget, U32_BYTES, TraceBudgetLayout.size, 1],
      [m.traceStats, U32_BYTES, U64_BYTES, L.TRACE_COUNTERS.length],
      [m.traceRing, 0, 0, L.TRACE_RING_BYTES],
    ];
    for (const [map, key, value, max] of expect) {
      assert.deepEqual([map.keySize, map.valueSize, map.maxEntries], [key, value, max], `map ${map.name}`);
    }
  });

  test('decap maps', (t) => {
    if (!requireKernel(t)) return;
    const m = decap!.maps;
    assert.deepEqual([m.addrs.keySize, m.addrs.valueSize, m.addrs.maxEntries], [AddrLayout.size, U32_BYTES, L.MAX_DECAP_ADDRS]);
    assert.deepEqual([m.stats.keySize, m.stats.valueSize, m.stats.maxEntries], [U32_BYTES, U64_BYTES, L.DECAP_REASONS.length]);
  });
});
