/**
 * SYNs and the connection table (BPF_PROG_TEST_RUN): a SYN is remembered only
 * in half_open, the first non-SYN packet moves its flow into conn_table with
 * the SYN's real, and so a flood of spoofed SYNs pushes no established flow out.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { XdpAction } from '../../src/libbpf/test-run.js';
import { readVipStats } from '../../src/agent/dataplane/counters.js';
import { BalancerHarness } from '../support/balancer-harness.js';
import { requireKernel } from '../support/kernel.js';
import { buildPacket, parseEncapsulated, type PacketSpec } from '../support/packets.js';

/** Small, so that a flood ten times its size runs in a test. */
const CONNECTION_TABLE = 8192;
const FLOOD = 10 * CONNECTION_TABLE + 1;
const VIP = '198.19.0.10';
const REALS = ['198.18.1.1', '198.18.1.2', '198.18.1.3'];
const GROWN = [...REALS, '198.18.1.9'];
const CLIENT = '198.18.100.1';
const vips = (reals: string[]): VipSpec[] => [{ address: VIP, port: 80, protocol: 'TCP', reals: reals.map((address) => ({ address, weight: 1 })) }];

describe('half-open table', () => {
  let h: BalancerHarness | undefined;
  before(() => {
    if (process.getuid?.() !== 0) return;
    h = new BalancerHarness({ connectionTable: CONNECTION_TABLE });
  });
  after(() => h?.close());

  const tcp = (sport: number, extra: Partial<PacketSpec> = {}, src = CLIENT) =>
    buildPacket({ src, dst: VIP, proto: 'tcp', sport, dport: 80, ack: !extra.syn, ...extra });

  /** The real a packet was encapsulated to. */
  function realOf(pkt: Buffer): string {
    const r = h!.run(pkt);
    assert.equal(r.action, XdpAction.TX);
    return parseEncapsulated(r.output).outerDst;
  }

  const entries = () => ({ conn: h!.lb.maps.connTable.keys().length, halfOpen: h!.lb.maps.halfOpen.keys().length });

  test('a SYN enters only half_open; the next packet goes to the SYN\'s real across a ring change, then is in conn_table', (t) => {
    if (!requireKernel(t)) return;
    h!.apply(vips(REALS));
    // Fewer than half_open holds on one CPU: a per-CPU LRU gives each its share (8192 / 8 / 16 CPUs = 64).
    const flows = Array.from({ length: 50 }, (_, i) => 20000 + i);
    const num = h!.dp.vipNum(`${VIP}:80/TCP`)!;
    const newFlowsBefore = readVipStats(h!.lb.maps, num).lruMisses;
    const atSyn = new Map(flows.map((p) => [p, realOf(tcp(p, { syn: true }))]));
    assert.deepEqual(entries(), { conn: 0, halfOpen: 50 }, 'SYNs are in half_open only');

    h!.apply(vips(GROWN));
    // Another client's ACKs show the ring moved (they fill conn_table, not half_open).
    const moved = flows.filter((p) => realOf(tcp(p, {}, '198.18.100.2')) === '198.18.1.9');
    assert.ok(moved.length > 5, `the ring changed: ${moved.length} of 50 new flows go to the new real`);
    for (const p of flows) assert.equal(realOf(tcp(p)), atSyn.get(p), `flow ${p}: its ACK follows its SYN`);
    // New flows count the ring's choices: each connection once (its SYN), not again for its ACK; plus the other client's.
    assert.equal(readVipStats(h!.lb.maps, num).lruMisses - newFlowsBefore, BigInt(2 * flows.length));
    assert.equal(entries().conn, 100, 'the ACKs moved every flow into conn_table (and the other client\'s 50)');
    for (const p of flows) assert.equal(realOf(tcp(p)), atSyn.get(p), `flow ${p}: later packets too`);
  });

  test('a RST is routed, never remembered: live hosts answering a flood\'s SYN-ACKs do not fill the table', (t) => {
    if (!requireKernel(t)) return;
    h!.apply(vips(REALS));
    const before = entries().conn;
    const flows = Array.from({ length: 50 }, (_, i) => 50000 + i);
    for (const p of flows) {
      const r = realOf(tcp(p, { syn: true }, '198.18.100.4'));
      assert.equal(realOf(tcp(p, { rst: true, ack: false }, '198.18.100.4')), r, `flow ${p}: its RST goes where its SYN went`);
    }
    assert.equal(entries().conn, before, 'no RST entered conn_table');
  });

  test(`a flood of ${FLOOD} spoofed SYNs (10x the connection table) pushes no established flow out`, (t) => {
    if (!requireKernel(t)) return;
    h!.apply(vips(REALS));
    const established = Array.from({ length: 300 }, (_, i) => 30000 + i);
    const realOfFlow = new Map(established.map((p) => [p, realOf(tcp(p, { syn: true }))]));
    for (const p of established) assert.equal(realOf(tcp(p)), realOfFlow.get(p));

    for (let i = 0; i < FLOOD; i++) {
      const src = `198.18.${200 + (i >> 16)}.${(i >> 8) & 0xff}`;
      realOf(tcp(1024 + (i & 0xff) * 97, { syn: true }, src));
    }
    // With the ring changed, a flow that lost its entry would move with the ring (about a quarter).
    h!.apply(vips(GROWN));
    const lost = established.filter((p) => realOf(tcp(p)) !== realOfFlow.get(p));
    assert.deepEqual(lost, [], 'established flows that moved after the flood');

    // A real client still connects: SYN, then its ACK to the same real.
    const fresh = Array.from({ length: 50 }, (_, i) => 40000 + i);
    for (const p of fresh) {
      const r = realOf(tcp(p, { syn: true }, '198.18.100.3'));
      assert.equal(realOf(tcp(p, {}, '198.18.100.3')), r, `new connection ${p} completes on its real`);
    }
  });
});
