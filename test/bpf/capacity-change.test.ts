/**
 * A capacities change on the kernel's maps: new maps built beside the pinned
 * ones, the old connection table copied (real ids translated, entries of
 * removed reals dropped, what a smaller table cannot hold counted), the
 * program swapped on a veth, the pins moved; and the states a crash leaves,
 * recovered by the next start.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CapacityChange, PROGRAM_PIN, stagingDirOf } from '../../src/agent/capacities/capacity-change.js';
import { Dataplane } from '../../src/agent/dataplane/dataplane.js';
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { BALANCER_MAPS, type MapCapacities, realSlotsFor } from '../../src/bpf/maps.js';
import { type LoadedBalancer, loadBalancer } from '../../src/bpf/programs.js';
import { RING_SIZE } from '../../src/bpf/consts.js';
import { FlowKeyLayout, RealSlotCodec, u32Key } from '../../src/bpf/structs.js';
import { allowedCpus } from '../../src/libbpf/cpus.js';
import { possibleCpus } from '../../src/libbpf/libbpf.js';
import { mapInfo, pinnedMapInfo } from '../../src/libbpf/map-info.js';
import { pinnedProgramId, programId } from '../../src/libbpf/pins.js';
import { testRun, XdpAction } from '../../src/libbpf/test-run.js';
import { attachedXdpId, detachXdp } from '../../src/libbpf/xdp.js';
import { XdpProgram } from '../../src/libbpf/xdp-program.js';
import { ENCAP } from '../support/fixtures.js';
import { ensureBpffs, requireKernel } from '../support/kernel.js';
import { TestNetns } from '../support/netns.js';
import { buildPacket, parseEncapsulated } from '../support/packets.js';

const NETNS = `xdplb-capchange-${process.pid}`;
const PIN_DIR = `/sys/fs/bpf/xdplb-capchange-${process.pid}`;
const STAGING = stagingDirOf(PIN_DIR);
const VETH = 'cc0';
const CLIENT = '198.18.100.1';
const VIP_A = '198.19.3.1';
const VIP_B = '198.19.3.2';
const FLOWS_A = 2000;
const FLOWS_B = 500;
const FIRST_PORT = 10000;
/** Flows the old program starts between the copy and the swap; the new program sees the first NEWER of them first. */
const GAP_PORT = 30000;
const GAP = 100;
const NEWER = 10;

const realsOf = (base: string, n: number, weight = (_i: number) => 1) =>
  Array.from({ length: n }, (_, i) => ({ address: `${base}${i + 1}`, weight: weight(i) }));
const vip = (address: string, reals: VipSpec['reals']): VipSpec => ({ address, port: 80, protocol: 'TCP', reals });

/** Before: A on reals .30.1-4 (ids 1-4), B on .31.1-2 (ids 5-6). */
const OLD_STATE = [vip(VIP_A, realsOf('198.18.30.', 4)), vip(VIP_B, realsOf('198.18.31.', 2))];
/** After: B gone (its flows' reals with it); C first, so A's reals get other ids; A's first real draining. */
const NEW_STATE = [vip('198.19.3.3', realsOf('198.18.32.', 3)), vip(VIP_A, realsOf('198.18.30.', 4, (i) => (i === 0 ? 0 : 1)))];
const OLD_CAPACITY: Partial<MapCapacities> = { vips: 8, reals: realSlotsFor(31), connectionTable: 8192 };
const BIGGER: Partial<MapCapacities> = { vips: 4, reals: realSlotsFor(15), connectionTable: 16384 };
const SMALLER: Partial<MapCapacities> = { ...BIGGER, connectionTable: 1024 };

const program = () => new XdpProgram({ nic: VETH, pinDir: PIN_DIR, pinName: PROGRAM_PIN, owner: { name: 'xdplb-test', detachCommand: 'rm' } });
const ack = (dst: string, sport: number) => buildPacket({ src: CLIENT, dst, proto: 'tcp', sport, dport: 80, ack: true });
/** The real a packet went to (the outer destination), or null when it was not sent. */
function realFor(lb: LoadedBalancer, packet: Buffer): string | null {
  const r = testRun(lb.progFd, packet);
  return r.action === XdpAction.TX ? parseEncapsulated(r.output).outerDst : null;
}
const pinned = (name: string) => pinnedMapInfo(join(PIN_DIR, name));

/** Every entry of a connection table: source port -> the address its real id names in those reals. */
function table(lb: LoadedBalancer): Map<number, string> {
  const out = new Map<number, string>();
  const t = lb.maps.connTable;
  for (const b of t.batches()) {
    for (let i = 0; i < b.count; i++) {
      const key = b.keys.subarray(i * t.keySize, (i + 1) * t.keySize);
      const id = b.values.readUInt32LE(i * t.lookupSize);
      out.set(key.readUInt16BE(FlowKeyLayout.offsets.sport), RealSlotCodec.decode(lb.maps.reals.lookup(u32Key(id))!)?.text ?? `no real (id ${id})`);
    }
  }
  return out;
}

/** An agent's start on the pinned maps: a change if they do not fit, programmed as a cold start, swapped in. */
async function changeTo(capacity: Partial<MapCapacities>, vips: VipSpec[], attach = (lb: LoadedBalancer) => void program().attach(lb.progFd, 'auto')) {
  const change = CapacityChange.prepare({ pinDir: PIN_DIR, nic: VETH, capacity });
  assert.ok(change, 'the pinned maps do not fit');
  const lb = change.loadNew();
  new Dataplane(lb.maps).apply({ encap: ENCAP, vips });
  return { change, lb, result: await change.swap(lb, () => attach(lb)) };
}

describe('a capacities change on the kernel\'s maps', () => {
  let netns: TestNetns | null = null;
  const open: LoadedBalancer[] = [];
  /** Flow (source port) -> real, as the old program chose. */
  const chosen = new Map<number, string>();
  let oldProgram = 0;

  before(() => {
    if (process.getuid?.() !== 0) return;
    ensureBpffs();
    rmSync(PIN_DIR, { recursive: true, force: true });
    rmSync(STAGING, { recursive: true, force: true });
    netns = new TestNetns(NETNS);
    netns.ip('link', 'add', VETH, 'type', 'veth', 'peer', 'name', `${VETH}p`); // both ends stay down: nothing is sent
    netns.enter();
  });
  after(() => {
    for (const lb of open) lb.object.close();
    netns?.remove();
    rmSync(PIN_DIR, { recursive: true, force: true });
    rmSync(STAGING, { recursive: true, force: true });
  });

  test('the old layout: programmed, attached, its connection table filled by the program', (t) => {
    if (!requireKernel(t)) return;
    const lb = loadBalancer({ pinDir: PIN_DIR, capacity: OLD_CAPACITY });
    open.push(lb);
    new Dataplane(lb.maps).apply({ encap: ENCAP, vips: OLD_STATE });
    program().attach(lb.progFd, 'generic');
    oldProgram = programId(lb.progFd);
    for (let i = 0; i < FLOWS_A + FLOWS_B; i++) {
      const port = FIRST_PORT + i;
      const real = realFor(lb, ack(i < FLOWS_A ? VIP_A : VIP_B, port));
      assert.ok(real, `flow ${port} sent`);
      chosen.set(port, real);
    }
    assert.equal(table(lb).size, FLOWS_A + FLOWS_B);
    assert.equal(CapacityChange.prepare({ pinDir: PIN_DIR, nic: VETH, capacity: OLD_CAPACITY }), null, 'the same capacities: adopt, nothing to change');
  });

  test('bigger table, fewer VIPs and reals: entries copied with their reals renumbered, those of removed reals dropped; the gap\'s too, never over newer ones', async (t) => {
    if (!requireKernel(t)) return;
    const oldLb = open[0]!;
    const change = CapacityChange.prepare({ pinDir: PIN_DIR, nic: VETH, capacity: BIGGER })!;
    assert.ok(change.changes.some((c) => c.map === 'conn_table' && c.field === 'maxEntries' && c.pinned === 8192 && c.wanted === 16384));
    const lb = change.loadNew();
    open.push(lb);
    new Dataplane(lb.maps).apply({ encap: ENCAP, vips: NEW_STATE });
    await change.beforeSwap(lb);
    // The old program goes on until the swap: flows it starts now are not in the first copy.
    const gapChosen = new Map<number, string>();
    for (let i = 0; i < GAP; i++) gapChosen.set(GAP_PORT + i, realFor(oldLb, ack(VIP_A, GAP_PORT + i))!);
    program().attach(lb.progFd, 'auto');
    // The new program sees some of them before the gap pass: its own entries (its ring has no draining real) are newer.
    const newerChosen = new Map<number, string>();
    for (let i = 0; i < NEWER; i++) newerChosen.set(GAP_PORT + i, realFor(lb, ack(VIP_A, GAP_PORT + i))!);
    assert.ok([...newerChosen].some(([port, real]) => real !== gapChosen.get(port)), 'a flow the new program saw first went to another real than the old program chose');
    const result = await change.afterSwap(lb, oldProgram);
    assert.deepEqual(result.connections, {
      copied: FLOWS_A + GAP - NEWER, copiedAfterSwap: GAP - NEWER, droppedRealGone: FLOWS_B, droppedTableFull: 0, droppedUnreadable: 0, newerKept: NEWER,
    });
    for (const [port, real] of gapChosen) chosen.set(port, newerChosen.get(port) ?? real);
    assert.equal(result.replaced, oldProgram);
    assert.notEqual(result.program, oldProgram);
    assert.equal(attachedXdpId(VETH, 'generic'), result.program, 'the new program is on the NIC, in the old one\'s mode');
    assert.equal(pinnedProgramId(join(PIN_DIR, PROGRAM_PIN)), result.program);
    assert.equal(existsSync(STAGING), false, 'the staging directory is gone');
    assert.equal(pinned('conn_table')!.maxEntries, 16384);
    assert.equal(pinned('vip_map')!.maxEntries, 4);
    assert.equal(pinned('reals')!.maxEntries, 16);
    assert.equal(pinned('ring')!.maxEntries, 4 * RING_SIZE);
    assert.equal(pinned('conn_table')!.id, mapInfo(lb.maps.connTable.fd).id, 'the pin is the new program\'s map');

    // Each flow of A names, in the new maps, the real the old program chose; ids differ (C's reals came first).
    const copied = table(lb);
    assert.equal(copied.size, FLOWS_A + GAP);
    for (const [port, real] of copied) assert.equal(real, chosen.get(port), `flow ${port}`);
    // And the new program sends them there, also those of the draining real (out of the ring: only the copy knows them).
    const draining = NEW_STATE[1]!.reals[0]!.address;
    let onDraining = 0;
    for (let i = 0; i < FLOWS_A; i++) {
      const port = FIRST_PORT + i;
      assert.equal(realFor(lb, ack(VIP_A, port)), chosen.get(port), `flow ${port} after the change`);
      if (chosen.get(port) === draining) onDraining++;
    }
    assert.ok(onDraining > FLOWS_A / 8, `${onDraining} flows on the draining real`);
  });

  test('a smaller table: as many entries as its per-CPU lists hold are copied, the rest counted as dropped', async (t) => {
    if (!requireKernel(t)) return;
    const { lb, result } = await changeTo(SMALLER, NEW_STATE);
    open.push(lb);
    const holds = Math.floor(1024 / possibleCpus) * allowedCpus().length;
    const copied = Math.min(FLOWS_A + GAP, holds);
    assert.deepEqual(result.connections, {
      copied, copiedAfterSwap: 0, droppedRealGone: 0, droppedTableFull: FLOWS_A + GAP - copied, droppedUnreadable: 0, newerKept: 0,
    });
    assert.equal(table(lb).size, copied, 'nothing copied was evicted by a later copy');
    assert.equal(pinned('conn_table')!.maxEntries, 1024);
    for (const [port, real] of table(lb)) assert.equal(real, chosen.get(port), `flow ${port}`);
  });

  test('a connection table size the kernel rounds (per-CPU lists) is adopted on the next start, not changed again', async (t) => {
    if (!requireKernel(t)) return;
    const odd = { ...SMALLER, connectionTable: 1025 };
    const { lb } = await changeTo(odd, NEW_STATE);
    open.push(lb);
    assert.equal(pinned('conn_table')!.maxEntries, Math.ceil(1025 / possibleCpus) * possibleCpus);
    assert.equal(CapacityChange.prepare({ pinDir: PIN_DIR, nic: VETH, capacity: odd }), null);
    const again = loadBalancer({ pinDir: PIN_DIR, capacity: odd }); // libbpf reuses the pins
    again.object.close();
  });

  test('a crash before the swap: the next start removes the staging directory; the running program and maps were not touched', async (t) => {
    if (!requireKernel(t)) return;
    const running = attachedXdpId(VETH, 'generic');
    const runningTable = pinned('conn_table')!;
    const crashed = CapacityChange.prepare({ pinDir: PIN_DIR, nic: VETH, capacity: BIGGER })!;
    const lb = crashed.loadNew();
    new Dataplane(lb.maps).apply({ encap: ENCAP, vips: NEW_STATE });
    await crashed.beforeSwap(lb); // the new program pinned in staging, the connections copied; then the process dies
    lb.object.close();
    assert.ok(readdirSync(STAGING).includes(PROGRAM_PIN));

    const next = CapacityChange.prepare({ pinDir: PIN_DIR, nic: VETH, capacity: BIGGER });
    assert.ok(next, 'the change is still to be made');
    assert.equal(existsSync(STAGING), false, 'the leftover staging directory was removed');
    assert.equal(attachedXdpId(VETH, 'generic'), running);
    assert.deepEqual(pinned('conn_table'), runningTable);
    const lb2 = next.loadNew();
    open.push(lb2);
    new Dataplane(lb2.maps).apply({ encap: ENCAP, vips: NEW_STATE });
    const result = await next.swap(lb2, () => void program().attach(lb2.progFd, 'auto'));
    assert.equal(result.replaced, running);
    assert.equal(pinned('conn_table')!.maxEntries, 16384);
  });

  test('a crash after the swap, pins half moved: the next start moves the rest; the maps are the live program\'s', async (t) => {
    if (!requireKernel(t)) return;
    const crashed = CapacityChange.prepare({ pinDir: PIN_DIR, nic: VETH, capacity: SMALLER })!;
    const lb = crashed.loadNew();
    open.push(lb);
    new Dataplane(lb.maps).apply({ encap: ENCAP, vips: NEW_STATE });
    await crashed.beforeSwap(lb);
    program().attach(lb.progFd, 'auto');
    renameSync(join(STAGING, 'vip_map'), join(PIN_DIR, 'vip_map')); // one pin moved, then the process dies
    const live = programId(lb.progFd);

    assert.equal(CapacityChange.prepare({ pinDir: PIN_DIR, nic: VETH, capacity: SMALLER }), null, 'nothing left to change');
    assert.equal(existsSync(STAGING), false);
    assert.equal(attachedXdpId(VETH, 'generic'), live);
    assert.equal(pinnedProgramId(join(PIN_DIR, PROGRAM_PIN)), live);
    for (const name of ['conn_table', 'reals', 'ring', 'vip_map']) {
      const { id } = pinned(name)!;
      const mine = lb.maps[Object.entries(BALANCER_MAPS).find(([, m]) => m.name === name)![0] as keyof typeof BALANCER_MAPS];
      assert.equal(id, mapInfo(mine.fd).id, `${name} pinned is the live program's`);
    }
    assert.equal(pinned('conn_table')!.maxEntries, 1024);
  });

  test('a failure before the swap: the old program and maps stay as they were, the error says so', async (t) => {
    if (!requireKernel(t)) return;
    const running = attachedXdpId(VETH, 'generic');
    const runningTable = pinned('conn_table')!;
    await assert.rejects(changeTo(BIGGER, NEW_STATE, () => {
      throw new Error('attach refused');
    }), (err: Error) => /failed before the new program was swapped in: attach refused/.test(err.message) &&
      /were not changed/.test(err.message) && /connection table 1024 -> 16384/.test(err.message));
    assert.equal(existsSync(STAGING), false);
    assert.equal(attachedXdpId(VETH, 'generic'), running);
    assert.deepEqual(pinned('conn_table'), runningTable);
    detachXdp(VETH, 'generic');
  });
});
