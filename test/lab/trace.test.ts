/**
 * xdplb trace against a running agent with real traffic: the CLI runs on the
 * balancer node like an operator would run it, records match the packets the
 * program counted, other VIPs stay silent, and tcpdump reads the pcap file.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TraceEvent } from '../../src/api/trace.js';
import { requireKernel } from '../support/kernel.js';
import { watchTrace, XDPLB_CLI } from '../support/trace-process.js';
import { sample, type Samples } from '../support/prometheus.js';
import { type Balancer, CLIENT4, Lab, labVips, VIP4 } from './lab.js';
import { type ConnectResult } from './client-results.js';

describe('lab: xdplb trace on a balancer node', () => {
  let lab: Lab;
  let lb: Balancer;
  let dir: string;
  before(async () => {
    if (process.getuid?.() !== 0) return;
    dir = mkdtempSync(join(tmpdir(), 'xdplb-lab-trace-'));
    lab = await Lab.up({ routing: 'static' }); // tests steer traffic with routeVia
    lab.writeVips(labVips(lab));
    lb = lab.balancers[0]!;
    lab.routeVia([lb]); // every flow through the traced node
    await lab.startAgent(lb);
  });
  after(async () => {
    await lab?.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Starts xdplb trace in the node's namespace, as an operator on the node would. */
  const startTrace = (args: string[]) => watchTrace(lab.spawnNode(lb.ns, XDPLB_CLI, ['trace', ...args]));

  const vipPackets = (m: Samples, vip: string) => sample(m, 'xdplb_vip_packets_total', { vip });
  const emitted = (m: Samples) => sample(m, 'xdplb_trace_records_total', { result: 'emitted' });

  test('one VIP traced: a record per packet of it, with the real that answered; none for other VIPs; pcap opens in tcpdump', async (t) => {
    if (!requireKernel(t)) return;
    const pcap = join(dir, 'vip4.pcap');
    const before = await lab.metrics(lb);
    const trace = await startTrace(['--vip', `${VIP4}:80/TCP`, '--json', '--pcap', pcap]);
    const n = 12;
    const r = await lab.clientRun<ConnectResult>({ mode: 'connect', vip: VIP4, port: 80, count: n, concurrency: 4 });
    const udp = await lab.clientRun<{ failures: number }>({ mode: 'udp', vip: VIP4, port: 53, sourcePorts: [40001, 40002] });
    await new Promise((res) => setTimeout(res, 300)); // the agent polls the ring every 20 ms
    const { code, out, err } = await trace.stop();
    const afterM = await lab.metrics(lb);
    assert.equal(code, 0, err);
    assert.equal(r.failures, 0, r.errors.join(', '));
    assert.equal(udp.failures, 0);

    const events = out.trim().split('\n').map((l) => JSON.parse(l) as TraceEvent);
    const packets = vipPackets(afterM, `${VIP4}:80/TCP`) - vipPackets(before, `${VIP4}:80/TCP`);
    assert.equal(events.length, packets, 'one record per packet the program counted for the VIP');
    assert.ok(events.length >= n * 3, `${events.length} records for ${n} connections`);
    assert.ok(events.every((e) => e.vip === `${VIP4}:80/TCP` && e.dst === VIP4 && e.dport === 80 && e.src === CLIENT4));
    assert.ok(events.every((e) => e.reason === 'tx_encap' && e.verdict === 'tx'), 'every packet of the VIP was encapsulated');
    assert.equal(vipPackets(afterM, `${VIP4}:53/UDP`) - vipPackets(before, `${VIP4}:53/UDP`), 2, 'the UDP VIP saw its packets');

    // Each connection: one real for all its packets, and the reals' shares are what the client saw.
    const realOf = new Map<number, Set<string>>();
    for (const e of events) realOf.set(e.sport, (realOf.get(e.sport) ?? new Set()).add(e.real!));
    assert.equal(realOf.size, n, 'one flow per connection');
    assert.ok([...realOf.values()].every((s) => s.size === 1), 'a flow keeps its real');
    const byAddress: Record<string, number> = {};
    for (const s of realOf.values()) for (const a of s) byAddress[a] = (byAddress[a] ?? 0) + 1;
    const byName = Object.fromEntries(Object.entries(byAddress).map(([a, c]) => [lab.reals.find((x) => x.v4 === a)!.name, c]));
    assert.deepEqual(byName, r.byReal);
    const paths = new Set(events.map((e) => e.path));
    assert.ok(paths.has('ring_new_flow') && paths.has('half_open_hit') && paths.has('lru_hit'), `paths: ${[...paths].join(', ')}`);

    const dump = execFileSync('tcpdump', ['-nn', '-r', pcap], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = dump.trim().split('\n');
    assert.equal(lines.length, events.length * 2, 'each packet before and after encapsulation');
    const encapsulated = lines.filter((l) => new RegExp(`^\\S+ IP ${lb.v4.replace(/\./g, '\\.')} > 198\\.18\\.\\d+\\.\\d+: IP ${CLIENT4.replace(/\./g, '\\.')}\\.\\d+ > ${VIP4.replace(/\./g, '\\.')}\\.80: `).test(l));
    assert.equal(encapsulated.length, events.length, `IPIP frames in:\n${lines.slice(0, 4).join('\n')}`);
    assert.match(err, new RegExp(`${events.length} packets traced, ${events.length * 2} frames written`));
    assert.equal(emitted(afterM) - emitted(before), events.length);
  });

  test('the readable form, a client match, and tracing off once the CLI is gone', async (t) => {
    if (!requireKernel(t)) return;
    const trace = await startTrace(['--client', `${CLIENT4}/32`, '--port', '80', '--count', '3']);
    const r = await lab.clientRun<ConnectResult>({ mode: 'connect', vip: VIP4, port: 80, count: 2, concurrency: 1 });
    assert.equal(r.failures, 0);
    const { code, out, err } = await trace.done();
    assert.equal(code, 0, err);
    const lines = out.trim().split('\n');
    assert.equal(lines.length, 3, out);
    const pattern = new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{6} cpu\\d+ TCP ${CLIENT4.replace(/\./g, '\\.')}:\\d+ > ${VIP4.replace(/\./g, '\\.')}:80  vip ${VIP4.replace(/\./g, '\\.')}:80/TCP real 198\\.18\\.\\d+\\.\\d+ (ring_new_flow|half_open_hit|lru_hit)  TX tx_encap  \\d+ -> \\d+ bytes$`);
    for (const l of lines) assert.match(l, pattern);

    const before = await lab.metrics(lb);
    await lab.clientRun<ConnectResult>({ mode: 'connect', vip: VIP4, port: 80, count: 5, concurrency: 1 });
    const afterM = await lab.metrics(lb);
    assert.equal(emitted(afterM), emitted(before), 'no session: no records');
    assert.equal(sample(afterM, 'xdplb_trace_records_total', { result: 'rate_limited' }), sample(before, 'xdplb_trace_records_total', { result: 'rate_limited' }));
  });

  test('a client match shows what did not get through: a datagram dropped as fragments, a SYN to a port that is no VIP', async (t) => {
    if (!requireKernel(t)) return;
    const trace = await startTrace(['--client', `${CLIENT4}/32`, '--verdict', 'drop', '--verdict', 'pass', '--json', '--count', '4']);
    // 3000 bytes over the client's 1500-byte MTU: three fragments. Then one SYN to port 81.
    const send = `const s = require('node:dgram').createSocket('udp4'); s.send(Buffer.alloc(3000, 1), 53, '${VIP4}', () => {
      s.close(); const c = require('node:net').connect(81, '${VIP4}'); c.on('error', () => {}); setTimeout(() => process.exit(0), 500); });`;
    await lab.runNode(lab.client, '-e', [send]);
    const { code, out, err } = await trace.done();
    assert.equal(code, 0, err);
    const events = out.trim().split('\n').map((l) => JSON.parse(l) as TraceEvent);
    assert.deepEqual(events.map((e) => [e.proto, e.dst, e.vip, e.verdict, e.reason]), [
      ['UDP', VIP4, null, 'drop', 'drop_fragment'],
      ['UDP', VIP4, null, 'drop', 'drop_fragment'],
      ['UDP', VIP4, null, 'drop', 'drop_fragment'],
      ['TCP', VIP4, null, 'drop', 'drop_vip_no_port'],
    ]);
    assert.equal(events[3]!.dport, 81);
  });

  test('errors say what was wrong', async (t) => {
    if (!requireKernel(t)) return;
    const bad = await lab.runNode(lb.ns, XDPLB_CLI, ['trace', '--client', '198.18.0.0/40']).then(() => '', (e: Error) => e.message);
    assert.match(bad, /client 198\.18\.0\.0\/40: prefix length "40" is not in 0\.\.32/);
    const noAgent = await lab.runNode(lb.ns, XDPLB_CLI, ['trace', '--agent', 'http://127.0.0.1:1']).then(() => '', (e: Error) => e.message);
    assert.match(noAgent, /cannot reach the agent at http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
  });
});
