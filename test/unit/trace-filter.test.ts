/**
 * Trace filters without a kernel: the syntax the CLI and the agent share
 * (src/api/trace-filter.ts, the /trace query), the program's rules the agent
 * compiles from it, the per-record re-check, and the rule limit. What the
 * program does with the rules is test/bpf/trace.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { get, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { parseTraceRequest, type TraceLine, traceSearchParams } from '../../src/api/trace.js';
import {
  parseClientPrefix,
  parsePositiveInt,
  parseTraceFilter,
  parseVipSelector,
  TraceFilterError,
} from '../../src/api/trace-filter.js';
import { parseIp } from '../../src/lib/ip.js';
import { IPPROTO_TCP, IPPROTO_UDP, TRACE_MAX_RULES, VIP_NUM_NONE } from '../../src/bpf/consts.js';
import { encodeTraceConfig, type RawTraceRecord, TraceConfigLayout, TraceRuleLayout } from '../../src/bpf/trace-structs.js';
import type { InstalledVipRef } from '../../src/agent/dataplane/dataplane.js';
import { compileRules, compileSessionRules, recordMatcher, selectedVips, TraceLimitError } from '../../src/agent/trace/trace-rules.js';
import { serveTrace, type TraceSessions } from '../../src/agent/trace/trace-server.js';
import { TRACE_USAGE, traceCommand } from '../../src/cli/trace-command.js';

const WEB = '198.19.1.10';
const OTHER = '198.19.1.11';
const V6_VIP = '2001:db8:19:1::10';
const CLIENT = '198.18.100.1';
const INSTALLED: InstalledVipRef[] = [
  { id: `${WEB}:80/TCP`, num: 1, address: WEB, port: 80, proto: IPPROTO_TCP },
  { id: `${WEB}:53/UDP`, num: 2, address: WEB, port: 53, proto: IPPROTO_UDP },
  { id: `${OTHER}:80/TCP`, num: 3, address: OTHER, port: 80, proto: IPPROTO_TCP },
  { id: `[${V6_VIP}]:443/TCP`, num: 4, address: V6_VIP, port: 443, proto: IPPROTO_TCP },
];
const byId = (id: string) => INSTALLED.find((v) => v.id === id)!;

/** The message a parse throws, and that it is a TraceFilterError (the endpoint's 400, the CLI's exit 2). */
function refusal(parse: () => unknown): string {
  try {
    parse();
  } catch (err) {
    assert.ok(err instanceof TraceFilterError, `${String(err)} is a TraceFilterError`);
    return err.message;
  }
  assert.fail('accepted');
}

/** A decoded trace record of a TCP packet from src. */
function record(src: string, sport: number, dport: number, vipNum: number | null = null): RawTraceRecord {
  const a = parseIp(src);
  return {
    timestampNs: 0n,
    cpu: 0,
    flow: { family: a.family, src: a.text, srcBytes: a.bytes, dst: WEB, sport, dport, proto: IPPROTO_TCP },
    vipNum,
    realId: 0,
    real: null,
    frameLen: 0,
    outLen: 0,
    reason: 'PASS_NOT_VIP',
    path: 'NONE',
    frameIn: Buffer.alloc(0),
    frameOut: Buffer.alloc(0),
  };
}

describe('filter syntax', () => {
  test('VIP selectors: address, port, protocol in any case, IPv6 in brackets', () => {
    const pick = (text: string) => {
      const s = parseVipSelector(text);
      return [s.address.text, s.port, s.protocol];
    };
    assert.deepEqual(pick(WEB), [WEB, undefined, undefined]);
    assert.deepEqual(pick(`${WEB}:80`), [WEB, 80, undefined]);
    assert.deepEqual(pick(`${WEB}:53/udp`), [WEB, 53, 'UDP']);
    assert.deepEqual(pick('[2001:DB8:19:1:0::10]:443/TCP'), [V6_VIP, 443, 'TCP']);
    assert.deepEqual(pick(V6_VIP), [V6_VIP, undefined, undefined]);
    // Without brackets an IPv6 address with a ":port" is an address.
    assert.deepEqual(pick('2001:db8::1:80'), ['2001:db8::1:80', undefined, undefined]);
  });

  test('VIP selector errors say what is allowed', () => {
    const syntax = 'is not ADDRESS, ADDRESS:PORT or ADDRESS:PORT/PROTO (IPv6 with a port in brackets)';
    assert.equal(refusal(() => parseVipSelector('web')), `vip: "web" ${syntax}`);
    assert.equal(refusal(() => parseVipSelector(`${WEB}/TCP`)), `vip: "${WEB}/TCP" ${syntax}`);
    assert.equal(refusal(() => parseVipSelector('[198.19.1.300]:80')), `vip: "[198.19.1.300]:80" ${syntax}`);
    assert.equal(refusal(() => parseVipSelector(`${WEB}:0`)), `vip ${WEB}:0: "0" is not a port in 1..65535`);
    assert.equal(refusal(() => parseVipSelector(`${WEB}:65536/TCP`)), `vip ${WEB}:65536/TCP: "65536" is not a port in 1..65535`);
    assert.equal(refusal(() => parseVipSelector(`${WEB}:80/SCTP`)), `vip ${WEB}:80/SCTP: protocol "SCTP" is not TCP or UDP`);
  });

  test('client prefixes: an address is its own /32 or /128; the length fits the family', () => {
    const pick = (text: string) => {
      const c = parseClientPrefix(text);
      return [c.address.text, c.prefixLength];
    };
    assert.deepEqual(pick('198.18.100.0/24'), ['198.18.100.0', 24]);
    assert.deepEqual(pick('198.18.100.1'), ['198.18.100.1', 32]);
    assert.deepEqual(pick('0.0.0.0/0'), ['0.0.0.0', 0]);
    assert.deepEqual(pick('2001:db8:100::/48'), ['2001:db8:100::', 48]);
    assert.deepEqual(pick('2001:db8:100::1'), ['2001:db8:100::1', 128]);
    assert.equal(refusal(() => parseClientPrefix('198.18.0.0/40')), 'client 198.18.0.0/40: prefix length "40" is not in 0..32');
    assert.equal(refusal(() => parseClientPrefix('2001:db8::/129')), 'client 2001:db8::/129: prefix length "129" is not in 0..128');
    assert.equal(refusal(() => parseClientPrefix('198.18.0.0/')), 'client 198.18.0.0/: prefix length "" is not in 0..32');
    assert.equal(refusal(() => parseClientPrefix('198.18.0.0/-1')), 'client 198.18.0.0/-1: prefix length "-1" is not in 0..32');
    assert.equal(refusal(() => parseClientPrefix('client/8')), 'client: "client/8" is not an address or ADDRESS/PREFIX-LENGTH');
    assert.equal(refusal(() => parseClientPrefix('198.18.0.0/8/9')), 'client: "198.18.0.0/8/9" is not an address or ADDRESS/PREFIX-LENGTH');
  });

  test('a filter: repeatable VIPs, a client, a port; nothing given traces every packet', () => {
    const f = parseTraceFilter({ vip: [WEB, `${OTHER}:80/TCP`], client: '198.18.100.0/24', port: '443' });
    assert.deepEqual(f.vips.map((v) => v.text), [WEB, `${OTHER}:80/TCP`]);
    assert.equal(f.client?.prefixLength, 24);
    assert.equal(f.port, 443);
    assert.deepEqual(parseTraceFilter({}), { vips: [] });
    assert.equal(refusal(() => parseTraceFilter({ port: '0' })), 'port: "0" is not a port in 1..65535');
    assert.equal(refusal(() => parseTraceFilter({ port: 'http' })), 'port: "http" is not a port in 1..65535');
  });

  test('positive integers (rate, count, seconds): absent is undefined, anything but 1, 2, ... is refused', () => {
    assert.equal(parsePositiveInt('rate', undefined), undefined);
    assert.equal(parsePositiveInt('rate', null), undefined);
    assert.equal(parsePositiveInt('rate', '250'), 250);
    for (const bad of ['0', '-1', '1.5', '1e3', 'ten', '']) {
      assert.equal(refusal(() => parsePositiveInt('--rate', bad)), `--rate: "${bad}" is not a positive integer`);
    }
  });

  test('the /trace query: what the CLI sends is what the agent parses; absent parameters are not sent', () => {
    const params = traceSearchParams({ vip: [WEB, `[${V6_VIP}]:443/TCP`], port: '443', rate: '50', seconds: '10' });
    assert.equal(params.toString(), `vip=${WEB}&vip=%5B${encodeURIComponent(V6_VIP)}%5D%3A443%2FTCP&port=443&rate=50&seconds=10`);
    const request = parseTraceRequest(new URLSearchParams(params.toString()));
    assert.deepEqual(request.filter.vips.map((v) => v.text), [WEB, `[${V6_VIP}]:443/TCP`]);
    assert.deepEqual([request.filter.port, request.filter.client, request.rate, request.count, request.seconds], [443, undefined, 50, undefined, 10]);
    assert.equal(refusal(() => parseTraceRequest(new URLSearchParams('rate=0'))), 'rate: "0" is not a positive integer');
    assert.equal(refusal(() => parseTraceRequest(new URLSearchParams('count=x'))), 'count: "x" is not a positive integer');
    assert.equal(refusal(() => parseTraceRequest(new URLSearchParams('client=198.18.0.0/40&rate=0'))),
      'client 198.18.0.0/40: prefix length "40" is not in 0..32', 'the filter is checked first');
  });
});

describe("the agent's rules", () => {
  test('selected VIPs: an address selects all its ports; a port or protocol narrows; IPv6 by its canonical form', () => {
    const ids = (vip: string[]) => selectedVips(parseTraceFilter({ vip }), INSTALLED).map((v) => v.id);
    assert.deepEqual(ids([WEB]), [`${WEB}:80/TCP`, `${WEB}:53/UDP`]);
    assert.deepEqual(ids([`${WEB}:53`]), [`${WEB}:53/UDP`]);
    assert.deepEqual(ids([`${WEB}:80/UDP`]), []);
    assert.deepEqual(ids([`${WEB}:80/tcp`, OTHER]), [`${WEB}:80/TCP`, `${OTHER}:80/TCP`]);
    assert.deepEqual(ids(['[2001:DB8:19:1:0:0:0:10]:443']), [`[${V6_VIP}]:443/TCP`]);
    assert.deepEqual(ids(['198.19.1.99']), []);
    assert.deepEqual(ids([]), [], 'no VIP named: none selected (the rule matches all packets instead)');
  });

  test('rules: one per selected VIP with the client and port; one for every packet without VIPs; none for VIPs not installed', () => {
    const rules = (input: Parameters<typeof parseTraceFilter>[0]) => compileRules(parseTraceFilter(input), INSTALLED);
    assert.deepEqual(rules({}), [{}]);
    assert.deepEqual(rules({ vip: [WEB], port: '4242' }), [{ port: 4242, vipNum: 1 }, { port: 4242, vipNum: 2 }]);
    assert.deepEqual(rules({ vip: ['198.19.1.99'] }), []);
    const [client] = rules({ client: '2001:db8:100::/48' });
    assert.deepEqual(client, { client: { family: 6, bytes: parseIp('2001:db8:100::').bytes, prefixLength: 48 } });
  });

  test('the encoded rule holds the masked prefix, the mask, the port and the VIP number', () => {
    const rules = compileRules(parseTraceFilter({ vip: [`${OTHER}:80`], client: '198.18.100.77/20', port: '8080' }), INSTALLED);
    const cfg = encodeTraceConfig(rules.map((m) => ({ ...m, cpuRate: 7 })));
    assert.equal(cfg.readUInt32LE(TraceConfigLayout.offsets.rule_count), 1);
    const rule = cfg.subarray(TraceConfigLayout.offsets.rules, TraceConfigLayout.offsets.rules + TraceRuleLayout.size);
    const o = TraceRuleLayout.offsets;
    assert.deepEqual([...rule.subarray(o.client, o.client + 4)], [198, 18, 96, 0], 'client & mask');
    assert.deepEqual([...rule.subarray(o.mask, o.mask + 16)], [255, 255, 240, 0, ...new Array<number>(12).fill(0)]);
    assert.deepEqual([rule.readUInt8(o.family), rule.readUInt16BE(o.port), rule.readUInt32LE(o.vip_num), rule.readUInt32LE(o.cpu_rate)],
      [4, 8080, 3, 7]);
    const any = encodeTraceConfig(compileRules(parseTraceFilter({}), INSTALLED).map((m) => ({ ...m, cpuRate: 1 })));
    assert.equal(any.readUInt32LE(TraceConfigLayout.offsets.rules + o.vip_num), VIP_NUM_NONE, 'no VIP named: any VIP or none');
  });

  test(`the rule limit: the open sessions share the program's ${TRACE_MAX_RULES} rules`, () => {
    // As test/bpf/trace.test.ts opens them: one rule per VIP a session names, one for a session naming none.
    const filters = [{ vip: [`${WEB}:80`] }, { vip: [OTHER] }, { vip: [`${WEB}:80`, OTHER] }, ...[0, 1, 2, 3].map((i) => ({ port: String(8000 + i) }))]
      .map(parseTraceFilter);
    const sessions = (fs: typeof filters) => fs.map((filter) => ({ filter, rate: 1000 }));
    const ruleCount = (fs: typeof filters) => compileSessionRules(sessions(fs), INSTALLED, 2).rules.length;
    assert.equal(ruleCount(filters), TRACE_MAX_RULES);
    assert.throws(() => ruleCount([...filters, parseTraceFilter({ port: '9000' })]),
      (err: Error) => err instanceof TraceLimitError && err.message ===
        `the open trace sessions need 9 rules, the program has ${TRACE_MAX_RULES}: close other traces or name fewer VIPs`);
    assert.throws(() => ruleCount([...filters.slice(1), parseTraceFilter({ vip: [WEB] })]), TraceLimitError,
      'an address of two installed ports costs two rules');
    const notInstalled = [...filters, parseTraceFilter({ vip: ['198.19.1.99'] })];
    assert.equal(ruleCount(notInstalled), 8, 'a VIP not installed costs no rule');
  });

  test('each rule has its own budget: its session\'s rate split over the CPUs and the session\'s rules', () => {
    const a = { filter: parseTraceFilter({ vip: [WEB] }), rate: 1000 }; // two installed ports: two rules
    const b = { filter: parseTraceFilter({ vip: [OTHER] }), rate: 10 };
    const c = { filter: parseTraceFilter({ port: '53' }), rate: 1 };
    const { rules, owners } = compileSessionRules([a, b, c], INSTALLED, 4);
    assert.deepEqual(rules.map((r) => r.cpuRate), [125, 125, 3, 1], '1000 / (4 CPUs x 2 rules); ceil(10 / 4); at least 1');
    assert.deepEqual(owners, [a, a, b, c], 'rule i is owners[i]\'s');
  });
});

describe('the re-check of each record', () => {
  test('a client prefix: the same bits as the program compares, of the same family only', () => {
    const matches = recordMatcher(parseTraceFilter({ client: '198.18.100.0/24' }));
    assert.equal(matches(record('198.18.100.1', 1000, 80), undefined), true);
    assert.equal(matches(record('198.18.100.255', 1000, 80), undefined), true);
    assert.equal(matches(record('198.18.101.1', 1000, 80), undefined), false);
    assert.equal(matches(record('c612:6401::', 1000, 80), undefined), false, 'an IPv6 source with the same first bytes');
    const all = recordMatcher(parseTraceFilter({ client: '0.0.0.0/0' }));
    assert.equal(all(record('203.0.113.9', 1, 2), undefined), true);
    assert.equal(all(record('2001:db8::1', 1, 2), undefined), false);
    const v6 = recordMatcher(parseTraceFilter({ client: '2001:db8:100::/47' }));
    assert.deepEqual(['2001:db8:100::1', '2001:db8:101:ffff::1', '2001:db8:102::1'].map((a) => v6(record(a, 1, 2), undefined)), [true, true, false]);
  });

  test('agrees with the encoded rule for every prefix length', () => {
    const source = parseIp('198.18.100.77');
    for (let len = 0; len <= 32; len++) {
      for (const other of ['198.18.100.76', '198.18.101.77', '70.18.100.77', '198.18.100.77']) {
        const filter = parseTraceFilter({ client: `${other}/${len}` });
        const rule = encodeTraceConfig(compileRules(filter, INSTALLED).map((m) => ({ ...m, cpuRate: 1 }))).subarray(TraceConfigLayout.offsets.rules);
        const o = TraceRuleLayout.offsets;
        const inRule = [...source.bytes].every((b, i) => (b & rule[o.mask + i]!) === rule[o.client + i]);
        assert.equal(recordMatcher(filter)(record(source.text, 1, 2), undefined), inRule, `${source.text} in ${other}/${len}`);
      }
    }
  });

  test('a port is the source or the destination port', () => {
    const matches = recordMatcher(parseTraceFilter({ port: '443' }));
    assert.deepEqual([record(CLIENT, 443, 80), record(CLIENT, 5000, 443), record(CLIENT, 5000, 80)].map((r) => matches(r, undefined)),
      [true, true, false]);
  });

  test("VIPs: the record's installed VIP must be one the filter names", () => {
    const matches = recordMatcher(parseTraceFilter({ vip: [`${WEB}:80/TCP`] }));
    assert.equal(matches(record(CLIENT, 1000, 80, 1), byId(`${WEB}:80/TCP`)), true);
    assert.equal(matches(record(CLIENT, 1000, 53, 2), byId(`${WEB}:53/UDP`)), false);
    assert.equal(matches(record(CLIENT, 1000, 80, 3), byId(`${OTHER}:80/TCP`)), false);
    assert.equal(matches(record(CLIENT, 1000, 80), undefined), false, 'a packet of no VIP');
    const anything = recordMatcher(parseTraceFilter({}));
    assert.equal(anything({ ...record(CLIENT, 0, 0), flow: { ...record(CLIENT, 0, 0).flow, family: 0, src: '' } }, undefined), true,
      'no filter: even a non-IP frame');
  });
});

describe('the /trace endpoint refuses what the filter syntax refuses', () => {
  let server: Server;
  let port: number;
  const opened: unknown[] = [];
  const sessions: TraceSessions = {
    defaultRate: 1000,
    selected: (filter) => selectedVips(filter, INSTALLED),
    open: (opts) => {
      if (opts.filter.port === 9000) throw new TraceLimitError('the open trace sessions need 9 rules, the program has 8');
      opened.push(opts.filter);
      return () => undefined;
    },
  };
  before(async () => {
    server = await serveTrace(sessions, '127.0.0.1:0', 'node-a');
    port = (server.address() as AddressInfo).port;
  });
  after(() => server?.close());

  async function fetchTrace(query: string): Promise<{ status: number; body: string }> {
    const res = await new Promise<IncomingMessage>((resolve, reject) =>
      get(`http://127.0.0.1:${port}/trace?${query}`, resolve).on('error', reject));
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      body += d;
      if (body.includes('\n')) res.destroy(); // a session streams until the client goes
    });
    await once(res, 'close');
    return { status: res.statusCode!, body };
  }

  test('400 with the message for a bad filter or parameter; no session is opened', async () => {
    assert.deepEqual(await fetchTrace('client=198.18.0.0/40'), { status: 400, body: 'client 198.18.0.0/40: prefix length "40" is not in 0..32\n' });
    assert.deepEqual(await fetchTrace(`vip=${WEB}&seconds=0`), { status: 400, body: 'seconds: "0" is not a positive integer\n' });
    assert.deepEqual(opened, []);
  });

  test('409 when the program has no room; 200 and a start line for a good filter', async () => {
    assert.equal((await fetchTrace('port=9000')).status, 409);
    const ok = await fetchTrace(`vip=${WEB}&rate=5`);
    assert.equal(ok.status, 200);
    assert.deepEqual(JSON.parse(ok.body.split('\n')[0]!) as TraceLine,
      { type: 'start', node: 'node-a', vips: [`${WEB}:80/TCP`, `${WEB}:53/UDP`], rate: 5 });
    assert.equal(opened.length, 1);
  });
});

describe('xdplb trace refuses a bad filter before it reaches any agent', () => {
  /** Runs the command in this process, keeping what it writes to stderr. */
  async function run(...args: string[]): Promise<{ code: number; stderr: string }> {
    let stderr = '';
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string | Uint8Array) => {
      stderr += String(chunk);
      return true;
    }) as typeof process.stderr.write;
    try {
      const code = await traceCommand(args);
      return { code, stderr };
    } finally {
      process.stderr.write = write;
    }
  }

  test('exit 2, the message with the flag name, then the usage', async () => {
    for (const [args, message] of [
      [['--client', '198.18.0.0/40'], 'client 198.18.0.0/40: prefix length "40" is not in 0..32'],
      [['--vip', 'web.example'], 'vip: "web.example" is not ADDRESS'],
      [['--port', '70000'], 'port: "70000" is not a port in 1..65535'],
      [['--rate', '0'], '--rate: "0" is not a positive integer'],
      [['--duration', '1.5'], '--duration: "1.5" is not a positive integer'],
    ] as const) {
      const r = await run(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.startsWith(`xdplb trace: ${message}`), r.stderr);
      assert.ok(r.stderr.includes(TRACE_USAGE), 'the usage follows');
    }
  });
});
