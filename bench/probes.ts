/**
 * Health probe traffic at 1000 VIPs x 100 backends (issue 15): the targets
 * divided with the real Rendezvous over N balancer nodes (healthTargets, as
 * cluster-health.ts does), and the real Prober with its Schedule driving one
 * node's share (the node given the most targets) on a simulated clock: the
 * prober's tick every PROBE_TICK_MS of simulated time, run back to back, so
 * the CPU time measured is the prober's work and nothing else's. Its io is a
 * fake network whose reals all answer: each SYN (a frame of buildProbeFrame)
 * is answered with a SYN-ACK on the next tick, so every probe succeeds and
 * ends with the prober's RST. Frames and bytes are counted as they would go
 * on the wire.
 *
 * The floor is the same loop with the prober's scheduling and state taken
 * out: per tick, the answers read and parsed, a RST built for each, and as
 * many SYNs built and sent (same builder, same random ISN and flow label) as
 * the prober sent in that tick, to targets taken in turn. Both runs carry the
 * same fake network.
 */
import { randomInt } from 'node:crypto';
import os from 'node:os';
import { HEALTH_CHECK_DEFAULTS, healthTargetKey } from '../src/api/health-check.js';
import { healthTargets, type HealthVip } from '../src/agent/health/health-targets.js';
import { buildProbeFrame, ETH_HLEN, parseSegment, type ProbeEncap, TCP_ACK, TCP_RST, TCP_SYN } from '../src/agent/health/probe-packet.js';
import type { ProbeIo } from '../src/agent/health/probe-socket.js';
import { DEFAULT_PROBE_PORTS, PROBE_TICK_MS, Prober, type ProbeTarget } from '../src/agent/health/prober.js';
import { DEFAULT_MAX_PROBES_PER_SECOND } from '../src/agent/health/schedule.js';
import { hashKey, Rendezvous } from '../src/lib/rendezvous.js';
import { collector, retainedHeap, timeMs } from './stats.js';

const VIPS = Number(process.env.XDPLB_BENCH_PROBE_VIPS ?? 1000);
const BACKENDS = 100;
const NODE_COUNTS = [1, 4, 16];
/** Simulated: one interval (and more) before the window, so every target has had its first round. */
const WARMUP_MS = Number(process.env.XDPLB_BENCH_PROBE_WARMUP_MS ?? 30_000);
const WINDOW_MS = Number(process.env.XDPLB_BENCH_PROBE_WINDOW_MS ?? 60_000);
const BURST_WINDOW_MS = 100;
/** The window is measured in chunks of this much simulated time, the floor run after each. */
const CHUNK_MS = 10_000;
const ENCAP: ProbeEncap = { srcMac: '02:00:00:00:90:01', nextHopMac: '02:00:00:00:90:02', srcV4: '198.18.0.1', srcV6: '2001:db8::1' };
const ETH_P_IPV6 = 0x86dd;
const PROTO_IPV6 = 41;
const IPV4_HLEN = 20;
const IPV6_HLEN = 40;
/** An Ethernet frame is padded to 60 bytes (64 with its FCS); preamble, FCS and gap (24 bytes a frame) are not counted. */
const MIN_FRAME = 60;
const wire = (len: number) => Math.max(MIN_FRAME, len);
const SEQ_SPACE = 2 ** 32;
const US_PER_S = 1e6;

type Kind = 'syn' | 'synAck' | 'rst';

/**
 * The network and the reals: counts each frame the prober sends and answers
 * each SYN as a real would, with the SYN-ACK (DSR: a plain IP packet from
 * VIP:port to the probe's source, the MSS option only, as the SYN offered no
 * other) that the prober reads on its next tick.
 */
class FakeNetwork implements ProbeIo {
  readonly frames = { syn: 0, synAck: 0, rst: 0 };
  readonly bytes = { syn: 0, synAck: 0, rst: 0 };
  /** The last time each real (its IPv4 address as a number) was sent a SYN, and the longest gap seen. */
  readonly lastSyn = new Map<number, number>();
  longestGapMs = 0;
  now = 0;
  private queue: Buffer[] = [];

  send(frame: Buffer): void {
    const outerV6 = frame.readUInt16BE(12) === ETH_P_IPV6;
    const outerLen = outerV6 ? IPV6_HLEN : IPV4_HLEN;
    const innerV6 = frame[ETH_HLEN + 6] === PROTO_IPV6 && outerV6;
    const inner = frame.subarray(ETH_HLEN + outerLen);
    const ihl = innerV6 ? IPV6_HLEN : IPV4_HLEN;
    if (inner[ihl + 13]! & TCP_RST) {
      this.count('rst', frame.length);
      return;
    }
    this.count('syn', frame.length);
    if (!outerV6) {
      const real = frame.readUInt32BE(ETH_HLEN + 16);
      const last = this.lastSyn.get(real);
      if (last !== undefined && this.now - last > this.longestGapMs) this.longestGapMs = this.now - last;
      this.lastSyn.set(real, this.now);
    }
    const reply = Buffer.from(inner);
    const [src, dst, len] = innerV6 ? [8, 24, 16] : [12, 16, 4];
    inner.copy(reply, src, dst, dst + len);
    inner.copy(reply, dst, src, src + len);
    reply.writeUInt16BE(inner.readUInt16BE(ihl + 2), ihl);
    reply.writeUInt16BE(inner.readUInt16BE(ihl), ihl + 2);
    reply.writeUInt32BE(0x1234_5678, ihl + 4);
    reply.writeUInt32BE((inner.readUInt32BE(ihl + 4) + 1) % SEQ_SPACE, ihl + 8);
    reply[ihl + 13] = TCP_SYN | TCP_ACK;
    this.count('synAck', ETH_HLEN + reply.length);
    this.queue.push(reply);
  }

  receive(): Buffer[] {
    const q = this.queue;
    this.queue = [];
    return q;
  }

  close(): void {}

  private count(kind: Kind, len: number): void {
    this.frames[kind]++;
    this.bytes[kind] += wire(len);
  }
}

/** 1000 VIPs with one TCP port and the default healthCheck, 100 distinct IPv4 reals each. */
function cluster(): HealthVip[] {
  return Array.from({ length: VIPS }, (_, v) => ({
    name: `bench/vip-${v}`,
    address: `198.19.${v >> 8}.${v & 255}`,
    ports: [{ port: 80, protocol: 'TCP' as const }],
    backends: Array.from({ length: BACKENDS }, (_, b) => {
      const n = v * BACKENDS + b;
      return { ip: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}` };
    }),
  }));
}

interface Window {
  cpuUs: number;
  probes: number;
  /** SYNs sent per tick, in order. */
  perTick: number[];
}

/** Ticks fn every PROBE_TICK_MS of simulated time from..to; the CPU time and SYNs of the ticks. */
function runTicks(net: FakeNetwork, fromMs: number, toMs: number, tick: () => void): Window {
  const perTick: number[] = [];
  const synsBefore = net.frames.syn;
  const cpu = process.cpuUsage();
  for (net.now = fromMs; net.now < toMs; net.now += PROBE_TICK_MS) {
    const s = net.frames.syn;
    tick();
    perTick.push(net.frames.syn - s);
  }
  const used = process.cpuUsage(cpu);
  return { cpuUs: used.user + used.system, probes: net.frames.syn - synsBefore, perTick };
}

/** The floor: SYNs and RSTs built and sent as the prober's, per tick as many as it sent, without its schedule or state; run a chunk at a time. */
function floorLoop(targets: readonly ProbeTarget[]): (perTick: readonly number[]) => Window {
  const net = new FakeNetwork();
  const { lo, hi } = DEFAULT_PROBE_PORTS;
  let port: number = lo;
  let next = 0;
  let inFlight: { t: ProbeTarget; port: number; isn: number }[] = [];
  let now = 0;
  return (perTick) => {
    let i = 0;
    now += perTick.length * PROBE_TICK_MS;
    return runTicks(net, now - perTick.length * PROBE_TICK_MS, now, () => {
    const answers = net.receive();
    for (let a = 0; a < answers.length; a++) {
      const s = parseSegment(answers[a]!)!;
      const o = inFlight[a]!;
      if (s.ack !== (o.isn + 1) % SEQ_SPACE) throw new Error('floor: an answer out of order');
      net.send(buildProbeFrame({ src: ENCAP.srcV4!, srcPort: o.port, vip: o.t.vip, vipPort: o.t.check.port, real: o.t.real, flags: TCP_RST,
        seq: s.ack }, ENCAP, hashKey(`${o.t.key}|${o.port}`)));
    }
    inFlight = [];
    for (let k = perTick[i++]!; k > 0; k--) {
      const t = targets[next++ % targets.length]!;
      const isn = randomInt(SEQ_SPACE);
      port = port >= hi ? lo : port + 1;
      net.send(buildProbeFrame({ src: ENCAP.srcV4!, srcPort: port, vip: t.vip, vipPort: t.check.port, real: t.real, flags: TCP_SYN, seq: isn },
        ENCAP, hashKey(`${t.key}|${port}`)));
      inFlight.push({ t, port, isn });
    }
    });
  };
}

/** The fake network's own share of both: the same number of probes' SYN and RST frames (built beforehand) sent through it, answers read. */
function networkAlone(targets: readonly ProbeTarget[], probes: number): Window {
  const frames = targets.slice(0, 1024).map((t, i) => {
    const seg = { src: ENCAP.srcV4!, srcPort: DEFAULT_PROBE_PORTS.lo + i, vip: t.vip, vipPort: t.check.port, real: t.real, seq: 1 };
    return { syn: buildProbeFrame({ ...seg, flags: TCP_SYN }, ENCAP), rst: buildProbeFrame({ ...seg, flags: TCP_RST }, ENCAP) };
  });
  const net = new FakeNetwork();
  const cpu = process.cpuUsage();
  for (let i = 0; i < probes; i++) {
    const f = frames[i % frames.length]!;
    net.now = i;
    net.send(f.syn);
    net.receive();
    net.send(f.rst);
  }
  const used = process.cpuUsage(cpu);
  return { cpuUs: used.user + used.system, probes, perTick: [] };
}

interface NodeResult {
  nodes: number;
  targets: number;
  range: [number, number];
  divideMs: number;
  setTargetsMs: number;
  setSameMs: number;
  heapBytes: number;
  window: Window;
  floor: Window;
  /** Per chunk of the window: the prober's CPU per probe over the floor's. */
  ratios: number[];
  network: Window;
  net: FakeNetwork;
  longestGapMs: number;
  probedInWindow: number;
}

function runNodes(vips: readonly HealthVip[], n: number, gc: () => void, warmupMs = WARMUP_MS, windowMs = WINDOW_MS): NodeResult {
  const names = Array.from({ length: n }, (_, i) => `balancer-${i}`);
  const rdv = new Rendezvous(names);
  const share = new Map(names.map((name) => [name, 0]));
  for (const v of vips) for (const b of v.backends) {
    const owner = rdv.ownerOf(healthTargetKey(v.name, b.ip))!;
    share.set(owner, share.get(owner)! + 1);
  }
  const [node] = [...share].sort((a, b) => b[1] - a[1])[0]!;
  let targets: ProbeTarget[] = [];
  const divideMs = timeMs(() => {
    targets = healthTargets(vips, (key) => rdv.ownerOf(key) === node).targets;
  });
  const net = new FakeNetwork();
  const prober = new Prober({ io: net, encap: () => ENCAP, now: () => net.now });
  let setTargetsMs = 0;
  const heapBytes = retainedHeap(gc, () => {
    setTargetsMs = timeMs(() => prober.setTargets(targets));
    return prober;
  }).bytes;
  const setSameMs = timeMs(() => prober.setTargets(targets));
  runTicks(net, 0, warmupMs, () => prober.tick());
  const framesBefore = { ...net.frames };
  const bytesBefore = { ...net.bytes };
  net.longestGapMs = 0; // gaps that end in the window (lastSyn keeps the warm-up's SYNs)
  // The window in chunks, each replayed by the floor right after: both see the same machine, and the chunks' ratios show the spread.
  const floorRun = floorLoop(targets);
  const window: Window = { cpuUs: 0, probes: 0, perTick: [] };
  const floor: Window = { cpuUs: 0, probes: 0, perTick: [] };
  const ratios: number[] = [];
  for (let at = warmupMs; at < warmupMs + windowMs; at += CHUNK_MS) {
    const w = runTicks(net, at, Math.min(at + CHUNK_MS, warmupMs + windowMs), () => prober.tick());
    const f = floorRun(w.perTick);
    ratios.push((w.cpuUs / w.probes) / (f.cpuUs / f.probes));
    for (const [sum, part] of [[window, w], [floor, f]] as const) {
      sum.cpuUs += part.cpuUs;
      sum.probes += part.probes;
      sum.perTick.push(...part.perTick);
    }
  }
  const probedInWindow = [...net.lastSyn.values()].filter((t) => t >= warmupMs).length;
  const c = prober.counts;
  // The path timed: every probe sent as a SYN, answered and ended by the prober's RST (only the last tick's still in flight);
  // nothing refused, timed out or unsent.
  if (c.refused || c.timeout || c.notSent || c.sent !== net.frames.syn || net.frames.rst !== c.success
    || c.sent - c.success !== window.perTick.at(-1)) {
    throw new Error(`probes at N=${n}: not every probe succeeded as a handshake (${JSON.stringify({ counts: c, frames: net.frames })})`);
  }
  for (const k of Object.keys(net.frames) as Kind[]) {
    net.frames[k] -= framesBefore[k];
    net.bytes[k] -= bytesBefore[k];
  }
  const longestGapMs = net.longestGapMs;
  prober.stop();
  const network = networkAlone(targets, window.probes);
  const counts = [...share.values()];
  return { nodes: n, targets: targets.length, range: [Math.min(...counts), Math.max(...counts)], divideMs, setTargetsMs, setSameMs,
    heapBytes, window, floor, ratios, network, net, longestGapMs, probedInWindow };
}

/** The largest number of probes in any BURST_WINDOW_MS (a sliding window of ticks). */
function peak(perTick: readonly number[]): number {
  const w = Math.round(BURST_WINDOW_MS / PROBE_TICK_MS);
  let sum = 0;
  let best = 0;
  for (let i = 0; i < perTick.length; i++) {
    sum += perTick[i]! - (i >= w ? perTick[i - w]! : 0);
    if (sum > best) best = sum;
  }
  return best;
}

/** Frame sizes of one probe per tunnel kind (SYN and RST as the prober builds them; the real's SYN-ACK is not tunnelled). */
function frameSizes(): string[] {
  const kinds = [
    { name: 'IPv4 in IPv4', vip: '198.19.0.1', real: '10.0.0.1', src: ENCAP.srcV4!, inner: IPV4_HLEN },
    { name: 'IPv6 in IPv6', vip: '2001:db8:19::1', real: '2001:db8:10::1', src: ENCAP.srcV6!, inner: IPV6_HLEN },
    { name: 'IPv4 in IPv6', vip: '198.19.0.1', real: '2001:db8:10::1', src: ENCAP.srcV4!, inner: IPV4_HLEN },
  ];
  return kinds.map((k) => {
    const seg = { src: k.src, srcPort: 61000, vip: k.vip, vipPort: 80, real: k.real, seq: 1 };
    const syn = buildProbeFrame({ ...seg, flags: TCP_SYN }, ENCAP).length;
    const rst = buildProbeFrame({ ...seg, flags: TCP_RST }, ENCAP).length;
    const synAck = ETH_HLEN + k.inner + (syn - rst) + 20; // inner IP header + TCP with the MSS option
    return `| ${k.name} | ${wire(syn)} | ${wire(synAck)} | ${wire(rst)} | ${wire(syn) + wire(synAck) + wire(rst)} |`;
  });
}

export function probeTraffic(): string {
  const gc = collector();
  const vips = cluster();
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  runNodes(vips, NODE_COUNTS.at(-1)!, gc, 5000, 5000); // compiles the code paths first: the first N measured is not the JIT's
  const results = NODE_COUNTS.map((n) => runNodes(vips, n, gc));
  const seconds = WINDOW_MS / 1000;
  const interval = HEALTH_CHECK_DEFAULTS.intervalSeconds;
  const traffic = results.map((r) => {
    const rate = r.window.probes / seconds;
    const wanted = r.targets / interval;
    const frames = (r.net.frames.syn + r.net.frames.synAck + r.net.frames.rst) / seconds;
    const bytes = (r.net.bytes.syn + r.net.bytes.synAck + r.net.bytes.rst) / seconds;
    const skipped = Math.max(0, 1 - rate / wanted);
    return `| ${r.nodes} | ${r.targets} (${r.range[0]}–${r.range[1]}) | ${wanted.toFixed(0)} | ${rate.toFixed(0)} | ${(skipped * 100).toFixed(0)}% `
      + `| ${(r.targets / rate).toFixed(1)} s (longest ${(r.longestGapMs / 1000).toFixed(1)} s; ${r.targets - r.probedInWindow} not in the window) `
      + `| ${peak(r.window.perTick)} (${(rate * BURST_WINDOW_MS / 1000).toFixed(0)}) | ${frames.toFixed(0)} | ${(bytes / 1000).toFixed(0)} kB/s = ${(bytes * 8 / 1e6).toFixed(2)} Mbit/s |`;
  });
  const cost = results.map((r) => {
    const per = r.window.cpuUs / r.window.probes;
    const floorPer = r.floor.cpuUs / r.floor.probes;
    const core = r.window.cpuUs / (WINDOW_MS * 1000);
    const netPer = r.network.cpuUs / r.network.probes;
    return `| ${r.nodes} | ${r.divideMs.toFixed(0)} ms | ${r.setTargetsMs.toFixed(0)} / ${r.setSameMs.toFixed(0)} ms | ${per.toFixed(1)} µs | ${floorPer.toFixed(1)} µs `
      + `| ${(per / floorPer).toFixed(2)}x (${Math.min(...r.ratios).toFixed(2)}–${Math.max(...r.ratios).toFixed(2)}) | ${netPer.toFixed(1)} µs | ${((per - netPer) / (floorPer - netPer)).toFixed(2)}x | ${(core * 100).toFixed(1)}% | ${(r.heapBytes / 2 ** 20).toFixed(1)} MB (${(r.heapBytes / r.targets).toFixed(0)} B/target) |`;
  });
  return [
    `Health probe traffic: ${VIPS} VIPs x ${BACKENDS} IPv4 backends, default healthCheck (${interval} s interval, TCP), divided with Rendezvous over N nodes; the real Prober drives the node with the largest share on a simulated clock (a tick every ${PROBE_TICK_MS} ms), ${WARMUP_MS / 1000} s of warm-up, then a ${seconds} s window; every real answers. Cap ${DEFAULT_MAX_PROBES_PER_SECOND} probes/s per node. Load average at the start: ${load}.`,
    '',
    '| N nodes | targets on this node (range over nodes) | wanted probes/s | sent probes/s | rounds skipped | each target probed every | peak probes in 100 ms (flat) | frames/s | on the wire |',
    '| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |',
    ...traffic,
    '',
    `The agent's cost for that node: dividing (healthTargets with Rendezvous), setTargets (all new / unchanged), CPU per probe over the window (process.cpuUsage; the tick's work, SYN + RST built, the answer parsed) against the floor (the same frames built and answers parsed per tick, no schedule or state; run after each ${CHUNK_MS / 1000} s of the window, the range is the chunks' ratios), the fake network's own share of both (its SYN-ACKs built, frames counted), CPU share of one core at real time, heap the prober's state retains.`,
    '',
    '| N nodes | divide | setTargets | prober CPU/probe | floor CPU/probe | vs floor | fake network alone | vs floor, network taken out | of one core | prober heap |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...cost,
    '',
    'Bytes per probe on the wire (frames padded to 60 bytes; preamble, FCS and gap not counted):',
    '',
    '| tunnel | SYN | SYN-ACK | RST | a probe |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...frameSizes(),
  ].join('\n');
}
