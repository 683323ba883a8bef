import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BgpSettingsError, bfdTimers, parseBgpSettings, parseCommunity, peerFamilies } from '../../../src/agent/announce/bgp-settings.js';
import { connectedPeers, inSubnet } from '../../../src/agent/announce/connected-peers.js';

test('valid settings pass; a peer carries its own address\'s family unless told otherwise', () => {
  const s = parseBgpSettings(JSON.stringify({
    localASN: 4200000000, routerID: '198.18.21.2', communities: ['65000:100', '4200000000:1:2'],
    peers: [{ address: '198.18.21.1', asn: 64500 }, { address: '2001:db8:21::1', asn: 64500, port: 1179, addressFamilies: ['IPv4', 'IPv6'], passwordFile: '/etc/p' }],
  }));
  assert.deepEqual(peerFamilies(s.peers[0]!), ['IPv4']);
  assert.deepEqual(peerFamilies(s.peers[1]!), ['IPv4', 'IPv6']);
});

test('every problem is named at once, with the field and what to write', () => {
  const err = (() => {
    try {
      parseBgpSettings(JSON.stringify({
        localASN: 0, routerID: '2001:db8::1', communities: ['65536:1', 'no'],
        peers: [{ address: 'router', asn: 64500 }, { address: '198.18.21.1', asn: -1, port: 70000, addressFamilies: ['IPX'] }, { address: '198.18.21.1', asn: 1 }],
      }));
    } catch (e) {
      return e as BgpSettingsError;
    }
    throw new Error('accepted');
  })();
  assert.ok(err instanceof BgpSettingsError);
  const all = err.problems.join('\n');
  for (const expected of [
    /localASN: 0 is not an AS number/, /routerID: "2001:db8::1" is not an IPv4 address/, /peers\[0\]\.address: "router"/,
    /peers\[1\]\.asn: -1/, /peers\[1\]\.port: 70000/, /peers\[1\]\.addressFamilies: "IPX"/, /198\.18\.21\.1 is listed twice/,
    /communities: "65536:1"/, /communities: "no"/,
  ]) assert.match(all, expected);
  assert.throws(() => parseBgpSettings('{'), /not JSON/);
  assert.throws(() => parseBgpSettings('{"localASN": 1, "peers": []}'), /list at least one peer/);
});

test('communities: standard ASN:VALUE in 16 bits each, large in 32 bits each', () => {
  assert.deepEqual(parseCommunity('65535:0'), { kind: 'standard', parts: [65535, 0] });
  assert.deepEqual(parseCommunity('4294967295:1:0'), { kind: 'large', parts: [4294967295, 1, 0] });
  for (const bad of ['65536:1', '1', '1:2:3:4', '4294967296:1:1', 'a:b', '-1:1']) assert.equal(parseCommunity(bad), null, bad);
});

test('a node peers only with the routers on its own subnets', () => {
  assert.ok(inSubnet('198.18.21.1', { local: '198.18.21.2', prefixlen: 24 }));
  assert.ok(!inSubnet('198.18.22.1', { local: '198.18.21.2', prefixlen: 24 }));
  assert.ok(inSubnet('198.18.21.129', { local: '198.18.21.130', prefixlen: 25 }));
  assert.ok(!inSubnet('198.18.21.1', { local: '198.18.21.130', prefixlen: 25 }));
  assert.ok(inSubnet('2001:db8:21::1', { local: '2001:db8:21::2', prefixlen: 64 }));
  assert.ok(!inSubnet('198.18.21.1', { local: '2001:db8:21::2', prefixlen: 0 }), 'never across families');
  const peers = ['198.18.21.1', '198.18.22.1', '2001:db8:21::1', '2001:db8:22::1'].map((address) => ({ address, asn: 64500 }));
  const { connected, elsewhere } = connectedPeers(peers, [{ local: '198.18.21.2', prefixlen: 24 }, { local: '2001:db8:21::2', prefixlen: 64 }]);
  assert.deepEqual(connected.map((p) => p.address), ['198.18.21.1', '2001:db8:21::1']);
  assert.deepEqual(elsewhere.map((p) => p.address), ['198.18.22.1', '2001:db8:22::1']);
});

test('bfd: an object, {} for the defaults (300 ms, 3); intervals and multipliers out of bounds are refused, naming the field', () => {
  const peers = [{ address: '198.18.21.1', asn: 64500 }];
  assert.deepEqual(bfdTimers(parseBgpSettings(JSON.stringify({ localASN: 1, peers, bfd: {} })).bfd!), { intervalMs: 300, multiplier: 3 });
  assert.deepEqual(bfdTimers(parseBgpSettings(JSON.stringify({ localASN: 1, peers, bfd: { minIntervalMilliseconds: 10, multiplier: 255 } })).bfd!),
    { intervalMs: 10, multiplier: 255 });
  assert.equal(parseBgpSettings(JSON.stringify({ localASN: 1, peers })).bfd, undefined, 'absent: no BFD');
  const refused = (bfd: unknown) => {
    try {
      parseBgpSettings(JSON.stringify({ localASN: 1, peers, bfd }));
    } catch (e) {
      return (e as BgpSettingsError).problems.join('\n');
    }
    throw new Error(`accepted ${JSON.stringify(bfd)}`);
  };
  assert.match(refused(true), /bfd: give an object/);
  assert.match(refused([]), /bfd: give an object/);
  assert.match(refused({ minIntervalMilliseconds: 9 }), /bfd\.minIntervalMilliseconds: 9 is not a whole number of milliseconds from 10 to 10000/);
  assert.match(refused({ minIntervalMilliseconds: 10001 }), /bfd\.minIntervalMilliseconds: 10001/);
  assert.match(refused({ minIntervalMilliseconds: 2.5 }), /bfd\.minIntervalMilliseconds: 2\.5/);
  const both = refused({ multiplier: 0, minIntervalMilliseconds: '300' });
  assert.match(both, /bfd\.multiplier: 0 is not a whole number from 1 to 255/);
  assert.match(both, /bfd\.minIntervalMilliseconds: 300/);
  assert.match(refused({ multiplier: 256 }), /bfd\.multiplier: 256/);
});
