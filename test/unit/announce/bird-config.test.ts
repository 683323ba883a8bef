import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCommunity } from '../../../src/agent/announce/bgp-settings.js';
import { type BirdConfigInput, peerProtocolName, renderBirdConfig } from '../../../src/agent/announce/bird-config.js';

const base = (over: Partial<BirdConfigInput> = {}): BirdConfigInput => ({
  routerId: '198.18.21.2',
  localAsn: 64512,
  peers: [{ address: '198.18.21.1', asn: 64500, families: ['IPv4'] }],
  communities: [],
  announce: [],
  ...over,
});

/** The lines of one `protocol KIND NAME { ... }` block. */
function block(config: string, header: string): string[] {
  const lines = config.split('\n');
  const start = lines.indexOf(`${header} {`);
  assert.ok(start >= 0, `no block "${header}" in:\n${config}`);
  const end = lines.indexOf('}', start);
  return lines.slice(start + 1, end).map((l) => l.trim());
}

test('router id, local ASN and one bgp protocol per peer, named after its address', () => {
  const config = renderBirdConfig(base({
    peers: [{ address: '198.18.21.1', asn: 64500, families: ['IPv4'] }, { address: '2001:db8:21::1', asn: 64501, port: 1179, families: ['IPv6'] }],
  }));
  assert.match(config, /^router id 198\.18\.21\.2;$/m);
  assert.deepEqual(block(config, 'protocol bgp xdplb_peer_198_18_21_1').slice(0, 2), ['local as 64512;', 'neighbor 198.18.21.1 as 64500;']);
  assert.deepEqual(block(config, 'protocol bgp xdplb_peer_2001_db8_21__1').slice(0, 2), ['local as 64512;', 'neighbor 2001:db8:21::1 port 1179 as 64501;']);
  assert.equal(peerProtocolName('2001:DB8:21:0::1'), 'xdplb_peer_2001_db8_21__1', 'any spelling of an address: one name, one session');
});

test('the static protocols hold exactly the VIPs to announce, as /32 and /128, deduplicated; nothing goes to the kernel', () => {
  const config = renderBirdConfig(base({ announce: ['198.19.0.11', '2001:db8:19::10', '198.19.0.10', '198.19.0.10', '2001:DB8:19:0::10'] }));
  assert.deepEqual(block(config, 'protocol static xdplb_vips4'), ['ipv4;', 'route 198.19.0.10/32 blackhole;', 'route 198.19.0.11/32 blackhole;']);
  assert.deepEqual(block(config, 'protocol static xdplb_vips6'), ['ipv6;', 'route 2001:db8:19::10/128 blackhole;']);
  assert.doesNotMatch(config, /protocol kernel/);
  const empty = renderBirdConfig(base());
  assert.deepEqual(block(empty, 'protocol static xdplb_vips4'), ['ipv4;'], 'nothing to announce: no route, the sessions stay');
});

test('only the VIP routes are exported, with the communities; nothing is imported', () => {
  const communities = ['65000:100', '65000:1:2'].map((c) => parseCommunity(c)!);
  const config = renderBirdConfig(base({ communities, announce: ['198.19.0.10'] }));
  const filter = block(config, 'filter xdplb_export');
  assert.deepEqual(filter, [
    'if proto != "xdplb_vips4" && proto != "xdplb_vips6" then reject;',
    'bgp_community.add((65000, 100));',
    'bgp_large_community.add((65000, 1, 2));',
    'accept;',
  ]);
  const peer = block(config, 'protocol bgp xdplb_peer_198_18_21_1');
  assert.ok(peer.includes('import none;'));
  assert.ok(peer.includes('export filter xdplb_export;'));
  assert.ok(peer.includes('next hop self;'));
});

test('an MD5 password goes in quotes; one BIRD cannot quote is refused, naming the peer', () => {
  const config = renderBirdConfig(base({ peers: [{ address: '198.18.21.1', asn: 64500, families: ['IPv4'], password: 's3cret pass' }] }));
  assert.ok(block(config, 'protocol bgp xdplb_peer_198_18_21_1').includes('password "s3cret pass";'));
  assert.throws(() => renderBirdConfig(base({ peers: [{ address: '198.18.21.1', asn: 64500, families: ['IPv4'], password: 'a"b' }] })),
    /password of peer 198\.18\.21\.1 contains a quote/);
});

test('a session of one family carrying the other: extended next hop for IPv4 over IPv6, the node\'s IPv6 address for IPv6 over IPv4', () => {
  const config = renderBirdConfig(base({
    peers: [{ address: '2001:db8:21::1', asn: 64500, families: ['IPv4', 'IPv6'] }, { address: '198.18.21.1', asn: 64500, families: ['IPv6'] }],
    nextHopV6: '2001:db8:21::2',
  }));
  const v6peer = block(config, 'protocol bgp xdplb_peer_2001_db8_21__1').join('\n');
  assert.match(v6peer, /ipv4 \{\nimport none;\nexport filter xdplb_export;\nextended next hop on;/);
  assert.match(block(config, 'protocol bgp xdplb_peer_198_18_21_1').join('\n'), /ipv6 \{\nimport none;\nexport filter xdplb_export;\nnext hop address 2001:db8:21::2;/);
  assert.throws(() => renderBirdConfig(base({ peers: [{ address: '198.18.21.1', asn: 64500, families: ['IPv6'] }] })), /node has none/);
});

test('the same input renders the same text, whatever the order of peers and VIPs (an unchanged state reloads nothing)', () => {
  const peers = [{ address: '198.18.22.1', asn: 1, families: ['IPv4' as const] }, { address: '198.18.21.1', asn: 1, families: ['IPv4' as const] }];
  const a = renderBirdConfig(base({ peers, announce: ['198.19.0.2', '198.19.0.1'] }));
  const b = renderBirdConfig(base({ peers: [...peers].reverse(), announce: ['198.19.0.1', '198.19.0.2'] }));
  assert.equal(a, b);
});

test('BFD: one bfd protocol holds the timers, every bgp protocol says bfd on; without it, neither', () => {
  const peers = [{ address: '198.18.21.1', asn: 64500, families: ['IPv4' as const] }, { address: '2001:db8:21::1', asn: 64500, families: ['IPv6' as const] }];
  const config = renderBirdConfig(base({ peers, bfd: { intervalMs: 300, multiplier: 3 } }));
  assert.deepEqual(block(config, 'protocol bfd xdplb_bfd'), ['interface "*" {', 'interval 300 ms;', 'multiplier 3;', '};']);
  for (const name of ['xdplb_peer_198_18_21_1', 'xdplb_peer_2001_db8_21__1']) {
    assert.ok(block(config, `protocol bgp ${name}`).some((l) => l.startsWith('bfd on;')), name);
  }
  const plain = renderBirdConfig(base({ peers }));
  assert.doesNotMatch(plain, /protocol bfd|bfd on/);
});

test('a reload for new VIPs or new BFD timers leaves every bgp protocol as it was (BIRD restarts only protocols whose text changed)', () => {
  const peers = [{ address: '198.18.21.1', asn: 64500, families: ['IPv4' as const, 'IPv6' as const] }];
  const protocols = (config: string) => {
    const blocks = new Map<string, string[]>();
    for (const header of config.split('\n').filter((l) => /^protocol (bgp|bfd|static) /.test(l))) blocks.set(header, block(config, header.replace(/ \{$/, '')));
    return blocks;
  };
  const before = protocols(renderBirdConfig(base({ peers, nextHopV6: '2001:db8:21::2', bfd: { intervalMs: 300, multiplier: 3 }, announce: ['198.19.0.10'] })));
  const vips = protocols(renderBirdConfig(base({ peers, nextHopV6: '2001:db8:21::2', bfd: { intervalMs: 300, multiplier: 3 }, announce: ['198.19.0.11', '2001:db8:19::10'] })));
  const timers = protocols(renderBirdConfig(base({ peers, nextHopV6: '2001:db8:21::2', bfd: { intervalMs: 50, multiplier: 5 }, announce: ['198.19.0.10'] })));
  const changed = (a: Map<string, string[]>, b: Map<string, string[]>) => [...a.keys()].filter((k) => JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k)));
  assert.deepEqual(changed(before, vips), ['protocol static xdplb_vips4 {', 'protocol static xdplb_vips6 {']);
  assert.deepEqual(changed(before, timers), ['protocol bfd xdplb_bfd {']);
});
