/** Pinned maps survive the process that made them; XDP attach, replace and detach on a real interface. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync, existsSync, readdirSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { loadBalancer, loadDecap } from '../../src/bpf/programs.js';
import { LibbpfError } from '../../src/libbpf/libbpf.js';
import { attachXdp, attachedXdpId, detachXdp } from '../../src/libbpf/xdp.js';
import { Dataplane } from '../../src/agent/dataplane/dataplane.js';
import { ENCAP } from '../support/balancer-harness.js';
import { ensureBpffs, requireKernel } from '../support/kernel.js';

const PIN_DIR = `/sys/fs/bpf/xdplb-test-${process.pid}`;
const VETH = `xt${process.pid % 100000}a`;
const PEER = `xt${process.pid % 100000}b`;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

const VIPS = [{ address: '198.19.2.1', port: 80, protocol: 'TCP' as const, reals: [{ address: '198.18.8.1', weight: 1 }] }];

describe('pinning and attaching', () => {
  after(() => {
    if (existsSync(PIN_DIR)) rmSync(PIN_DIR, { recursive: true, force: true });
    try {
      ip('link', 'del', VETH);
    } catch {
      /* not created or already gone */
    }
  });

  test('maps pinned by one load are reused, with their contents, by the next', (t) => {
    if (!requireKernel(t)) return;
    ensureBpffs();
    const first = loadBalancer({ pinDir: PIN_DIR, capacity: { connectionTable: 4096 } });
    new Dataplane(first.maps).apply({ encap: ENCAP, vips: VIPS });
    first.object.close();
    assert.ok(readdirSync(PIN_DIR).includes('vip_map'));

    const second = loadBalancer({ pinDir: PIN_DIR, capacity: { connectionTable: 4096 } });
    try {
      assert.equal(second.maps.vips.keys().length, 1, 'the VIP programmed before the restart is still there');
      assert.equal(second.maps.connTable.maxEntries, 4096);
    } finally {
      second.object.unpinMaps();
      second.object.close();
    }
    assert.deepEqual(readdirSync(PIN_DIR), []);
  });

  test('a pinned map of another layout is refused with a clear error', (t) => {
    if (!requireKernel(t)) return;
    ensureBpffs();
    const a = loadBalancer({ pinDir: PIN_DIR, capacity: { connectionTable: 4096 } });
    a.object.close();
    try {
      assert.throws(() => loadBalancer({ pinDir: PIN_DIR, capacity: { connectionTable: 8192 } }),
        (err: unknown) => err instanceof LibbpfError && /bpf_object__load failed/.test(err.message) && /remove it to start fresh/.test(err.message));
    } finally {
      rmSync(PIN_DIR, { recursive: true, force: true });
    }
  });

  test('attach in generic and native mode, replace atomically, detach', (t) => {
    if (!requireKernel(t)) return;
    // Both ends stay down: nothing is sent anywhere.
    ip('link', 'add', VETH, 'type', 'veth', 'peer', 'name', PEER);
    const lb = loadBalancer({ capacity: { connectionTable: 4096 } });
    const dc = loadDecap();
    try {
      for (const mode of ['generic', 'native'] as const) {
        assert.equal(attachedXdpId(VETH, mode), 0);
        attachXdp(VETH, lb.progFd, { mode });
        const id = attachedXdpId(VETH, mode);
        assert.ok(id > 0);
        assert.throws(() => attachXdp(VETH, dc.progFd, { mode }), /EBUSY|EEXIST/, 'a second attach must not silently replace');
        assert.throws(() => attachXdp(VETH, dc.progFd, { mode, replaceFd: dc.progFd }), /bpf_xdp_attach/, 'replace checks the old program');
        attachXdp(VETH, dc.progFd, { mode, replaceFd: lb.progFd });
        const replaced = attachedXdpId(VETH, mode);
        assert.ok(replaced > 0 && replaced !== id);
        detachXdp(VETH, mode);
        assert.equal(attachedXdpId(VETH, mode), 0);
      }
      assert.throws(() => attachXdp('nosuchnic0', lb.progFd, { mode: 'generic' }), /network interface "nosuchnic0" does not exist/);
    } finally {
      lb.object.close();
      dc.object.close();
      ip('link', 'del', VETH);
    }
  });
});
