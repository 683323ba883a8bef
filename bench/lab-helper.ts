/**
 * Runs inside a lab namespace for the lab benchmark (spawned through nsenter):
 *   swap NIC PROGRAM PIN_DIR  detach what is on NIC, attach a floor program natively (maps pinned in PIN_DIR)
 *   seen PIN_DIR              frames the counted floor handled; prints {seen}
 *   gen NIC FRAMES DST_MAC    send FRAMES generated frames out of NIC; prints {frames, ms}
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ifIndex } from '../src/libbpf/libbpf.js';
import { BpfObject } from '../src/libbpf/bpf-object.js';
import { attachedProgram } from '../src/libbpf/pins.js';
import { BPF_F_TEST_XDP_LIVE_FRAMES, testRun } from '../src/libbpf/test-run.js';
import { attachXdp, detachXdp } from '../src/libbpf/xdp.js';
import { buildPacket } from '../test/support/packets.js';

const BUILD = fileURLToPath(new URL('../../bench/bpf/build/', import.meta.url));
const PKTGEN_LEN = 64;
/** struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex. */
const XDP_MD_SIZE = 24;
const XDP_MD_DATA_END = 4;
const XDP_MD_INGRESS_IFINDEX = 12;

const [cmd, nic, arg, extra] = process.argv.slice(2);
if (!nic) throw new Error('usage: swap NIC PROGRAM PIN_DIR | seen PIN_DIR | gen NIC FRAMES DST_MAC');
const floorMaps = [{ name: 'floor_seen', perCpu: true }];

if (cmd === 'swap') {
  const current = attachedProgram(nic);
  if (current) detachXdp(nic, current.mode);
  const floors = BpfObject.load(`${BUILD}floors.bpf.o`, floorMaps, { pinDir: extra });
  attachXdp(nic, floors.programFd(arg!), { mode: 'native' });
  floors.close();
} else if (cmd === 'seen') {
  const floors = BpfObject.load(`${BUILD}floors.bpf.o`, floorMaps, { pinDir: nic });
  const perCpu = floors.map('floor_seen').lookupPerCpu(Buffer.alloc(4)) ?? [];
  process.stdout.write(`${JSON.stringify({ seen: Number(perCpu.reduce((a, b) => a + b.readBigUInt64LE(0), 0n)) })}\n`);
  floors.close();
} else if (cmd === 'gen') {
  const dstMac = extra;
  const frames = Number(arg);
  const link = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'dev', nic], { encoding: 'utf8' }))[0] as { address: string };
  const packet = buildPacket({
    src: '198.18.10.2', dst: '198.19.0.10', proto: 'udp', sport: 10000, dport: 53,
    payload: Buffer.alloc(PKTGEN_LEN - 42), srcMac: link.address, dstMac: dstMac!,
  });
  packet.writeUInt16BE(0, 40); // UDP checksum 0 (none): the port changes per frame
  if (packet.length !== PKTGEN_LEN) throw new Error(`template is ${packet.length} bytes`);
  const gen = BpfObject.load(`${BUILD}pktgen.bpf.o`, [{ name: 'pktgen_tmpl', perCpu: false }, { name: 'pktgen_count', perCpu: true }]);
  gen.map('pktgen_tmpl').update(Buffer.alloc(4), packet);
  const ctx = Buffer.alloc(XDP_MD_SIZE);
  ctx.writeUInt32LE(packet.length, XDP_MD_DATA_END);
  ctx.writeUInt32LE(ifIndex(nic), XDP_MD_INGRESS_IFINDEX);
  const start = process.hrtime.bigint();
  testRun(gen.programFd('pktgen'), packet, { repeat: frames, flags: BPF_F_TEST_XDP_LIVE_FRAMES, ctx });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  process.stdout.write(`${JSON.stringify({ frames, ms })}\n`);
  gen.close();
} else {
  throw new Error(`unknown command ${cmd}`);
}
