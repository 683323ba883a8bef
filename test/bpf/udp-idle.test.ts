/**
 * UDP flows in the connection table (BPF_PROG_TEST_RUN): each entry carries
 * when its flow last sent (atime_s, seconds of the monotonic clock), and a
 * flow idle for over UDP_IDLE_TIMEOUT_S takes the ring again. The test ages
 * an entry by rewriting its atime_s rather than by waiting.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { UDP_IDLE_TIMEOUT_S } from '../../src/bpf/consts.js';
import { FlowValueLayout } from '../../src/bpf/structs.js';
import { monotonicSeconds } from '../../src/libbpf/ktime.js';
import { XdpAction } from '../../src/libbpf/test-run.js';
import { BalancerHarness } from '../support/balancer-harness.js';
import { requireKernel } from '../support/kernel.js';
import { buildPacket, parseEncapsulated } from '../support/packets.js';

const VIP = '198.19.0.10';
const REALS = ['198.18.1.1', '198.18.1.2', '198.18.1.3'];
const CLIENT = '198.18.100.1';
const VIPS: VipSpec[] = [
  { address: VIP, port: 53, protocol: 'UDP', reals: REALS.map((address) => ({ address, weight: 1 })) },
  { address: VIP, port: 80, protocol: 'TCP', reals: REALS.map((address) => ({ address, weight: 1 })) },
];
/** The program reads a coarse clock: allow it a second either way. */
const CLOCK_SLACK_S = 1;

describe('UDP idle expiry', () => {
  let h: BalancerHarness | undefined;
  before(() => {
    if (process.getuid?.() !== 0) return;
    h = new BalancerHarness({ connectionTable: 4096 });
    h.apply(VIPS);
  });
  after(() => h?.close());

  const udp = (sport: number) => buildPacket({ src: CLIENT, dst: VIP, proto: 'udp', sport, dport: 53, payload: Buffer.alloc(20, 1) });
  function realOf(pkt: Buffer): string {
    const r = h!.run(pkt);
    assert.equal(r.action, XdpAction.TX);
    return parseEncapsulated(r.output).outerDst;
  }
  /** The one entry the table has (each test starts from an empty table). */
  function onlyEntry(): { key: Buffer; realId: number; atime: number } {
    const keys = h!.lb.maps.connTable.keys();
    assert.equal(keys.length, 1, 'one flow in the table');
    const v = h!.lb.maps.connTable.lookup(keys[0]!)!;
    return { key: keys[0]!, realId: v.readUInt32LE(FlowValueLayout.offsets.real_id), atime: v.readUInt32LE(FlowValueLayout.offsets.atime_s) };
  }
  function setEntry(key: Buffer, realId: number, atime: number): void {
    const v = Buffer.alloc(FlowValueLayout.size);
    v.writeUInt32LE(realId, FlowValueLayout.offsets.real_id);
    v.writeUInt32LE(atime, FlowValueLayout.offsets.atime_s);
    h!.lb.maps.connTable.update(key, v);
  }
  /** The id the dataplane gave a real. */
  const idOf = (address: string) => h!.dp.realId(address)!;
  const clearTable = () => {
    for (const k of h!.lb.maps.connTable.keys()) h!.lb.maps.connTable.delete(k);
  };

  test('a UDP entry is stamped when its flow sends; within the timeout it is kept, beyond it the ring decides again', (t) => {
    if (!requireKernel(t)) return;
    clearTable();
    const ring = realOf(udp(5000));
    const first = onlyEntry();
    assert.equal(first.realId, idOf(ring));
    assert.ok(Math.abs(first.atime - monotonicSeconds()) <= CLOCK_SLACK_S, `atime_s ${first.atime}, now ${monotonicSeconds()}`);

    // Pinned to another real, recently active: the entry wins over the ring, and its time moves on.
    const other = REALS.find((r) => r !== ring)!;
    setEntry(first.key, idOf(other), monotonicSeconds() - (UDP_IDLE_TIMEOUT_S - 5));
    assert.equal(realOf(udp(5000)), other, 'a flow active within the timeout keeps its real');
    assert.ok(Math.abs(onlyEntry().atime - monotonicSeconds()) <= CLOCK_SLACK_S, 'and its entry is stamped again');

    // Idle for longer than the timeout: the ring's real, and the entry says so.
    setEntry(first.key, idOf(other), monotonicSeconds() - (UDP_IDLE_TIMEOUT_S + 5));
    assert.equal(realOf(udp(5000)), ring, 'an idle flow follows the ring');
    const renewed = onlyEntry();
    assert.equal(renewed.realId, idOf(ring));
    assert.ok(Math.abs(renewed.atime - monotonicSeconds()) <= CLOCK_SLACK_S);
  });

  test('TCP entries carry no time and never expire', (t) => {
    if (!requireKernel(t)) return;
    clearTable();
    const tcp = buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 6000, dport: 80, ack: true });
    const ring = realOf(tcp);
    const entry = onlyEntry();
    assert.equal(entry.atime, 0);
    const other = REALS.find((r) => r !== ring)!;
    setEntry(entry.key, idOf(other), 0);
    assert.equal(realOf(tcp), other, 'an old TCP entry still holds its flow');
  });
});
