import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FileSource } from '../../src/agent/sources/file-source.js';
import { ConfigError, parseStandaloneConfig, toVipSpecs } from '../../src/agent/sources/standalone-config.js';

const GOOD = `
vips:
  - name: web
    address: 198.19.0.10
    ports: [{ port: 80, protocol: TCP }, { port: 53, protocol: UDP }]
    hashing: { ignoreSourcePort: true }
    reals:
      - { address: 198.18.1.1, weight: 2 }
      - { address: 198.18.1.2 }
  - name: web6
    address: 2001:db8:19::10
    ports: [{ port: 443 }]
    lruBypass: true
    icmpEcho: false
    reals: []
`;

function problemsOf(text: string): string[] {
  try {
    parseStandaloneConfig(text, 'vips.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems.map((p) => `${p.path}: ${p.reason}`);
  }
  return [];
}

describe('standalone VIP file', () => {
  test('a valid file becomes one dataplane VIP per port', () => {
    const vips = parseStandaloneConfig(GOOD, 'vips.yaml');
    assert.deepEqual(toVipSpecs(vips), [
      { address: '198.19.0.10', port: 80, protocol: 'TCP', hashNoSrcPort: true, lruBypass: false, icmpEcho: true, quicConnectionIdRouting: false, reals: [{ address: '198.18.1.1', weight: 2 }, { address: '198.18.1.2', weight: 1 }] },
      { address: '198.19.0.10', port: 53, protocol: 'UDP', hashNoSrcPort: true, lruBypass: false, icmpEcho: true, quicConnectionIdRouting: false, reals: [{ address: '198.18.1.1', weight: 2 }, { address: '198.18.1.2', weight: 1 }] },
      { address: '2001:db8:19::10', port: 443, protocol: 'TCP', hashNoSrcPort: false, lruBypass: true, icmpEcho: false, quicConnectionIdRouting: false, reals: [] },
    ]);
    assert.deepEqual(parseStandaloneConfig('', 'empty.yaml'), []);
    const quic = parseStandaloneConfig(`
vips:
  - name: quic
    address: 198.19.0.30
    ports: [{ port: 443, protocol: UDP }, { port: 443, protocol: TCP }]
    quicConnectionIdRouting: true
    reals: [{ address: 198.18.1.1, quicServerId: 7 }]
`, 'vips.yaml');
    assert.deepEqual(toVipSpecs(quic).map((s) => [s.protocol, s.quicConnectionIdRouting, s.reals]), [
      ['UDP', true, [{ address: '198.18.1.1', weight: 1, quicServerId: 7 }]],
      ['TCP', false, [{ address: '198.18.1.1', weight: 1, quicServerId: 7 }]],
    ], 'the flag reaches the UDP port only');
  });

  test('every problem is reported with its path', () => {
    const bad = `
vips:
  - name: Web
    address: 198.19.0.300
    ports: [{ port: 0 }, { port: 80, protocol: SCTP }, { port: 81 }, { port: 81 }]
    reals: [{ address: nope, weight: -1 }, { address: 198.18.1.1, quicServerId: 16384 }, { address: 198.18.1.2, quicServerId: 5 }, { address: 198.18.1.3, quicServerId: 5 }]
    icmpEcho: "no"
    quicConnectionIdRouting: 1
    colour: blue
  - name: b
    address: 198.19.0.1
    ports: []
    reals: {}
`;
    const problems = problemsOf(bad);
    for (const needle of [
      'vips[0].name: "Web" is not a lowercase DNS-style name',
      'vips[0].address: "198.19.0.300" is not an IPv4 or IPv6 address',
      'vips[0].ports[0].port: 0 is not an integer in 1..65535',
      'vips[0].ports[1].protocol: "SCTP" is not TCP or UDP',
      'vips[0].ports[3]: 81/TCP is listed twice',
      'vips[0].reals[0].address: "nope" is not an IPv4 or IPv6 address',
      'vips[0].reals[0].weight: -1 is not a number >= 0',
      'vips[0].icmpEcho: must be true or false',
      'vips[0].quicConnectionIdRouting: must be true or false',
      'vips[0].reals[1].quicServerId: 16384 is not an integer in 1..16383',
      "vips[0].reals[3].quicServerId: 5 is also reals[2]'s: an id names one real",
      'vips[0].colour: unknown field',
      'vips[1].ports: must be a list of 1 to 16 ports',
      'vips[1].reals: must be a list',
    ]) {
      assert.ok(problems.some((p) => p.startsWith(needle)), `missing "${needle}" in:\n${problems.join('\n')}`);
    }
    assert.match(problemsOf('vips: [')[0]!, /^\(document\): not valid YAML/);
    assert.match(problemsOf('- 1')[0]!, /must be a mapping/);
  });

  test('the watcher applies valid changes and keeps the state on a bad one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xdplb-file-source-'));
    const file = join(dir, 'vips.yaml');
    try {
      writeFileSync(file, GOOD);
      const seen: string[][] = [];
      const rejected: Error[] = [];
      const source = new FileSource(file, {
        onVips: (vips) => seen.push(vips.map((v) => v.name)),
        onRejected: (err) => rejected.push(err),
      });
      assert.deepEqual((await source.start()).map((v) => v.name), ['web', 'web6']);
      const replace = (text: string) => {
        writeFileSync(`${file}.new`, text);
        renameSync(`${file}.new`, file); // as editors and ConfigMap updates do
      };
      const waitFor = async (cond: () => boolean) => {
        const deadline = Date.now() + 5000;
        while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await source.settled();
        assert.ok(cond(), 'timed out waiting for the watcher');
      };
      replace(GOOD.replace('name: web6', 'name: web-six'));
      await waitFor(() => seen.length === 1);
      assert.deepEqual(seen[0], ['web', 'web-six']);
      replace('vips:\n  - name: x\n    address: 1.2.3\n');
      await waitFor(() => rejected.length === 1);
      assert.ok(rejected[0] instanceof ConfigError);
      assert.equal(seen.length, 1, 'a rejected file is not handed on');
      writeFileSync(file, GOOD); // in place, no rename
      await waitFor(() => seen.length === 2);
      assert.deepEqual(seen[1], ['web', 'web6']);
      source.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
