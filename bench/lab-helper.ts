/**
 * Runs inside a lab namespace for the lab benchmark (spawned through nsenter):
 *   swap NIC PROGRAM PIN_DIR  detach what is on NIC, attach a floor program natively (maps pinned in PIN_DIR)
 *   seen PIN_DIR              frames the counted floor handled; prints {seen}
 *   gen NIC FRAMES DST_MAC [VIP [OUTER_SRC OUTER_DST]]
 *                             send FRAMES generated frames out of NIC: UDP from the lab's client to VIP:53
 *                             (default the lab's VIP4), inside an outer IPv4 header when OUTER_* are given
 *                             (as a balancer sends it to a backend); prints {frames, ms}
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ifIndex } from '../src/libbpf/libbpf.js';
import { BpfObject } from '../src/libbpf/bpf-object.js';
import { attachedProgram } from '../src/libbpf/pins.js';
import { BPF_F_TEST_XDP_LIVE_FRAMES, testRun } from '../src/libbpf/test-run.js';
import { attachXdp, detachXdp } from '../src/libbpf/xdp.js';
import { buildPacket, encapsulate } from '../test/support/packets.js';
import { CLIENT4, VIP4 } from '../test/lab/lab.js';

const BUILD = fileURLToPath(new URL('../../bench/bpf/build/', import.meta.url));
/** pktgen.bpf.c's template sizes: UDP, and UDP behind an outer IPv4 header. */
const PKTGEN_LEN = 64;
const IPV4_HLEN = 20;
const PKTGEN_IPIP_LEN = PKTGEN_LEN + IPV4_HLEN;
const UDP_CSUM_OFF = 40;
const GEN_SPORT = 10000;
const GEN_DPORT = 53;
/** struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex. */
const XDP_MD_SIZE = 24;
const XDP_MD_DATA_END = 4;
const XDP_MD_INGRESS_IFINDEX = 12;

const [cmd, nic, arg, extra, genVip, outerSrc, outerDst] = process.argv.slice(2);
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
  const udp = buildPacket({
    src: CLIENT4, dst: genVip ?? VIP4, proto: 'udp', sport: GEN_SPORT, dport: GEN_DPORT,
    payload: Buffer.alloc(PKTGEN_LEN - 42), srcMac: link.address, dstMac: dstMac!,
  });
  udp.writeUInt16BE(0, UDP_CSUM_OFF); // UDP checksum 0 (none): the port changes per frame
  const ipip = outerSrc !== undefined && outerDst !== undefined;
  const packet = ipip ? encapsulate(udp, outerSrc, outerDst) : udp;
  if (packet.length !== (ipip ? PKTGEN_IPIP_LEN : PKTGEN_LEN)) throw new Error(`template is ${packet.length} bytes`);
  const tmpl = ipip ? 'pktgen_ipip_tmpl' : 'pktgen_tmpl';
  const gen = BpfObject.load(`${BUILD}pktgen.bpf.o`, [{ name: tmpl, perCpu: false }, { name: 'pktgen_count', perCpu: true }]);
  gen.map(tmpl).update(Buffer.alloc(4), packet);
  const ctx = Buffer.alloc(XDP_MD_SIZE);
  ctx.writeUInt32LE(packet.length, XDP_MD_DATA_END);
  ctx.writeUInt32LE(ifIndex(nic), XDP_MD_INGRESS_IFINDEX);
  const start = process.hrtime.bigint();
  testRun(gen.programFd(ipip ? 'pktgen_ipip' : 'pktgen'), packet, { repeat: frames, flags: BPF_F_TEST_XDP_LIVE_FRAMES, ctx });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  // What was sent, counted by the generator: an interrupted run is run again whole (testRun), so it can exceed FRAMES.
  const sent = (gen.map('pktgen_count').lookupPerCpu(Buffer.alloc(4)) ?? []).reduce((a, b) => a + b.readBigUInt64LE(0), 0n);
  process.stdout.write(`${JSON.stringify({ frames: Number(sent), ms })}\n`);
  gen.close();
} else {
  throw new Error(`unknown command ${cmd}`);
}
