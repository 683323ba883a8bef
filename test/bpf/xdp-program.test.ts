/** One program's life on a NIC: attach, replace our own, refuse a foreign program or a mode change, detach only ours. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmdirSync, rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { type LoadedDecap, loadDecap } from '../../src/bpf/programs.js';
import { pinnedProgramId } from '../../src/libbpf/pins.js';
import { attachedXdpId, attachXdp, detachXdp } from '../../src/libbpf/xdp.js';
import { XdpProgram } from '../../src/libbpf/xdp-program.js';
import { ensureBpffs, requireKernel } from '../support/kernel.js';
import { TestNetns } from '../support/netns.js';

const NETNS = `xdplb-xdpprog-${process.pid}`;
const PIN_DIR = `/sys/fs/bpf/xdplb-xdpprog-${process.pid}`;
const VETH = 'xp0';
const PEER = 'xp1';
/** Above what a veth can run native XDP with (a frame must fit a page). */
const JUMBO_MTU = 9000;
const OWNER = { name: 'xdplb-test', detachCommand: 'xdplb-test detach' };

const ourProgram = () => new XdpProgram({ nic: VETH, pinDir: PIN_DIR, pinName: 'test_prog', owner: OWNER });

describe('an XDP program on a NIC', () => {
  let netns: TestNetns | null = null;
  let first: LoadedDecap;
  let second: LoadedDecap;

  before(() => {
    if (process.getuid?.() !== 0) return;
    ensureBpffs();
    netns = new TestNetns(NETNS);
    // Both ends stay down: nothing is sent anywhere.
    netns.ip('link', 'add', VETH, 'type', 'veth', 'peer', 'name', PEER);
    netns.enter();
    first = loadDecap();
    second = loadDecap();
  });
  after(() => {
    first?.object.close();
    second?.object.close();
    netns?.remove();
    if (existsSync(PIN_DIR)) rmSync(PIN_DIR, { recursive: true, force: true });
  });

  /** Leaves the veth with nothing attached and no pins, whatever a test did. */
  function reset(): void {
    for (const mode of ['native', 'generic'] as const) if (attachedXdpId(VETH, mode)) detachXdp(VETH, mode);
    rmSync(PIN_DIR, { recursive: true, force: true });
  }

  test('attaches and pins, then replaces its own program in place', (t) => {
    if (!requireKernel(t)) return;
    reset();
    const program = ourProgram();
    const attached = program.attach(first.progFd, 'generic');
    assert.deepEqual(attached, { mode: 'generic', replaced: null, failed: [] });
    const firstId = attachedXdpId(VETH, 'generic');
    assert.ok(firstId > 0);
    assert.equal(pinnedProgramId(program.pinPath), firstId, 'the pin names the attached program');

    const again = program.attach(second.progFd, 'auto');
    const secondId = attachedXdpId(VETH, 'generic');
    assert.deepEqual(again, { mode: 'generic', replaced: firstId, failed: [] }, 'auto keeps the mode of the program it replaces');
    assert.ok(secondId > 0 && secondId !== firstId);
    assert.equal(pinnedProgramId(program.pinPath), secondId);
    reset();
  });

  test('a mode change of its own program: the old one off, the new one on in the asked mode, the gap measured; back and forth', (t) => {
    if (!requireKernel(t)) return;
    reset();
    const program = ourProgram();
    program.attach(first.progFd, 'generic');
    const id = attachedXdpId(VETH, 'generic');
    const changed = program.attach(second.progFd, 'native');
    assert.equal(changed.mode, 'native');
    assert.equal(changed.replaced, id);
    assert.equal(changed.modeChange?.from, 'generic');
    assert.ok(changed.modeChange!.gapMicros >= 0);
    t.diagnostic(`generic -> native: the NIC ran no program for ${changed.modeChange!.gapMicros} µs`);
    assert.equal(attachedXdpId(VETH, 'generic'), 0);
    const nativeId = attachedXdpId(VETH, 'native');
    assert.ok(nativeId > 0);
    assert.equal(pinnedProgramId(program.pinPath), nativeId, 'the pin names the program now attached');
    assert.equal(program.attach(first.progFd, 'generic').modeChange?.from, 'native');
    assert.equal(attachedXdpId(VETH, 'native'), 0);
    assert.ok(attachedXdpId(VETH, 'generic') > 0);
    reset();
  });

  test('a foreign program is refused naming its id, and detach and remove leave it attached', (t) => {
    if (!requireKernel(t)) return;
    reset();
    attachXdp(VETH, first.progFd, { mode: 'generic' });
    const foreign = attachedXdpId(VETH, 'generic');
    const program = ourProgram();
    for (const mode of ['auto', 'generic', 'native'] as const) {
      assert.throws(() => program.attach(second.progFd, mode), (err: Error) =>
        err.message.startsWith(`another XDP program (id ${foreign}) is attached to ${VETH} in generic mode: xdplb-test will not replace a program it did not attach`)
        && err.message.includes(`ip link set dev ${VETH} xdpgeneric off`));
    }
    assert.equal(attachedXdpId(VETH, 'generic'), foreign, 'the foreign program was not replaced');
    assert.ok(!existsSync(program.pinPath), 'nothing pinned for a refused attach');

    assert.deepEqual(program.detach(), { detached: false, foreign });
    assert.deepEqual(program.remove(), { detached: false, foreign });
    assert.equal(attachedXdpId(VETH, 'generic'), foreign, 'detach left the foreign program attached');
    assert.ok(!existsSync(PIN_DIR), 'remove took the pins all the same');
    reset();
  });

  test('detach takes its own program off; remove also takes the pins', (t) => {
    if (!requireKernel(t)) return;
    reset();
    const program = ourProgram();
    program.attach(first.progFd, 'generic');
    assert.deepEqual(program.remove(), { detached: true, foreign: null });
    assert.equal(attachedXdpId(VETH, 'generic'), 0);
    assert.ok(!existsSync(PIN_DIR));
    assert.deepEqual(program.remove(), { detached: false, foreign: null }, 'removing twice is harmless');
  });

  test('remove takes the empty parents attach created, and stops at one another balancer still uses', (t) => {
    if (!requireKernel(t)) return;
    reset();
    const nested = (balancer: string) => new XdpProgram({ nic: VETH, pinDir: `${PIN_DIR}/xdplb/${balancer}`, pinName: 'test_prog', owner: OWNER });
    nested('a').attach(first.progFd, 'generic');
    mkdirSync(`${PIN_DIR}/xdplb/b`);
    nested('a').remove();
    assert.ok(!existsSync(`${PIN_DIR}/xdplb/a`));
    assert.ok(existsSync(`${PIN_DIR}/xdplb/b`), 'another balancer\'s directory stays');
    rmdirSync(`${PIN_DIR}/xdplb/b`);
    nested('a').attach(first.progFd, 'generic');
    nested('a').remove();
    assert.ok(!existsSync(PIN_DIR), 'every parent attach created is gone');
    assert.ok(existsSync('/sys/fs/bpf'), 'the mount point stays');
  });

  test('auto falls back to generic where native cannot attach; an explicit native fails', (t) => {
    if (!requireKernel(t)) return;
    reset();
    netns!.ip('link', 'set', 'dev', PEER, 'mtu', String(JUMBO_MTU));
    netns!.ip('link', 'set', 'dev', VETH, 'mtu', String(JUMBO_MTU));
    try {
      const program = ourProgram();
      assert.throws(() => program.attach(first.progFd, 'native'), /bpf_xdp_attach\(xp0, native\)/);
      assert.throws(() => program.attach(first.progFd, 'auto', ['native']), /bpf_xdp_attach\(xp0, native\)/, 'no fallback unless asked');
      const attached = program.attach(first.progFd, 'auto');
      assert.equal(attached.mode, 'generic');
      assert.deepEqual(attached.failed.map((f) => f.mode), ['native']);
      assert.match(attached.failed[0]!.err, /bpf_xdp_attach\(xp0, native\)/);
      assert.ok(attachedXdpId(VETH, 'generic') > 0);
    } finally {
      reset();
    }
  });
});
