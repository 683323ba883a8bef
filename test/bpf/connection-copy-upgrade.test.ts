/**
 * An upgrade from an agent whose struct flow_value was the real id only
 * (4 bytes): its pinned connection table is another layout, so the new agent
 * copies it (capacity-change.ts), and each copied entry gets atime_s = now.
 * Otherwise every copied UDP flow would look idle since boot and re-hash.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { copyConnections } from '../../src/agent/capacities/connections.js';
import { FAMILY_V4 } from '../../src/bpf/consts.js';
import { MapType } from '../../src/bpf/maps.js';
import { type LoadedBalancer, loadBalancer } from '../../src/bpf/programs.js';
import { FlowKeyLayout, FlowValueLayout } from '../../src/bpf/structs.js';
import { BpfMap } from '../../src/libbpf/bpf-map.js';
import { closeFd } from '../../src/libbpf/pins.js';
import { monotonicSeconds } from '../../src/libbpf/ktime.js';
import { testRun, XdpAction } from '../../src/libbpf/test-run.js';
import { Dataplane } from '../../src/agent/dataplane/dataplane.js';
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { parseIp } from '../../src/lib/ip.js';
import { ENCAP } from '../support/fixtures.js';
import { requireKernel } from '../support/kernel.js';
import { buildPacket, parseEncapsulated } from '../support/packets.js';

/** struct flow_value as it was: __u32 real_id. */
const OLD_FLOW_VALUE_SIZE = 4;
const VIP = '198.19.0.10';
const CLIENT = '198.18.100.1';
const REALS = ['198.18.1.1', '198.18.1.2', '198.18.1.3'];
const VIPS: VipSpec[] = [{ address: VIP, port: 53, protocol: 'UDP', reals: REALS.map((address) => ({ address, weight: 1 })) }];
const FLOWS = 100;
const FIRST_PORT = 7000;
const PROTO_UDP = 17;

const udp = (sport: number) => buildPacket({ src: CLIENT, dst: VIP, proto: 'udp', sport, dport: 53 });
function flowKey(sport: number): Buffer {
  const k = Buffer.alloc(FlowKeyLayout.size);
  parseIp(CLIENT).bytes.copy(k, FlowKeyLayout.offsets.src);
  parseIp(VIP).bytes.copy(k, FlowKeyLayout.offsets.dst);
  k.writeUInt16BE(sport, FlowKeyLayout.offsets.sport);
  k.writeUInt16BE(53, FlowKeyLayout.offsets.dport);
  k.writeUInt8(PROTO_UDP, FlowKeyLayout.offsets.proto);
  k.writeUInt8(FAMILY_V4, FlowKeyLayout.offsets.family);
  return k;
}

describe('connection copy from the real-id-only flow_value', () => {
  let lb: LoadedBalancer | undefined;
  let old: BpfMap | undefined;
  let dp: Dataplane | undefined;
  before(() => {
    if (process.getuid?.() !== 0) return;
    lb = loadBalancer({ capacity: { connectionTable: 4096 } });
    dp = new Dataplane(lb.maps);
    dp.apply({ encap: ENCAP, vips: VIPS });
    old = BpfMap.create('conn_table', MapType.LRU_HASH, FlowKeyLayout.size, OLD_FLOW_VALUE_SIZE, 4096);
  });
  after(() => {
    lb?.object.close();
    if (old) closeFd(old.fd);
  });

  const realOf = (pkt: Buffer) => {
    const r = testRun(lb!.progFd, pkt);
    assert.equal(r.action, XdpAction.TX);
    return parseEncapsulated(r.output).outerDst;
  };
  const idOf = (address: string) => dp!.realId(address)!;

  test('each flow keeps the real the old table gave it, and is not taken for idle', async (t) => {
    if (!requireKernel(t)) return;
    // The old table pins each flow to a real the ring would not pick, so that only the copy can send it there.
    const pinnedTo = new Map<number, string>();
    const value = Buffer.alloc(OLD_FLOW_VALUE_SIZE);
    for (let i = 0; i < FLOWS; i++) {
      const port = FIRST_PORT + i;
      const ring = realOf(udp(port));
      const other = REALS[(REALS.indexOf(ring) + 1) % REALS.length]!;
      pinnedTo.set(port, other);
      value.writeUInt32LE(idOf(other), 0);
      old!.update(flowKey(port), value);
    }
    for (const k of lb!.maps.connTable.keys()) lb!.maps.connTable.delete(k); // the ring's picks above

    const { result } = await copyConnections({ connTable: old!, reals: lb!.maps.reals }, { connTable: lb!.maps.connTable, reals: lb!.maps.reals });
    assert.deepEqual({ read: result.read, copied: result.copied, unreadable: result.unreadable }, { read: FLOWS, copied: FLOWS, unreadable: 0 });
    for (const [port, real] of pinnedTo) {
      const v = lb!.maps.connTable.lookup(flowKey(port))!;
      assert.ok(Math.abs(v.readUInt32LE(FlowValueLayout.offsets.atime_s) - monotonicSeconds()) <= 1, `flow ${port}: atime_s is now`);
      assert.equal(realOf(udp(port)), real, `flow ${port} stays on its real`);
    }
  });
});
