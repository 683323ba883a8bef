import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiProbe, answered } from '../../../src/agent/announce/api-probe.js';
import { parseReply } from '../../../src/agent/announce/bird-client.js';
import { parseBfdSessions, parseSessions } from '../../../src/agent/announce/bird-status.js';

// Captured from BIRD 2.0.12 (`show protocols all` on a lab balancer node), trimmed.
const SHOW_PROTOCOLS_ALL = `2002-Name       Proto      Table      State  Since         Info
1002-device1    Device     ---        up     20:20:01.253  
1006-
1002-xdplb_vips4 Static     master4    up     20:20:01.253  
1006-  Channel ipv4
       Routes:         2 imported, 0 exported, 2 preferred
 
1002-xdplb_peer_198_18_21_1 BGP        ---        up     20:20:05.099  Established   
1006-  BGP state:          Established
       Neighbor address: 198.18.21.1
       Neighbor AS:      64500
     Channel ipv4
       State:          UP
       Routes:         0 imported, 2 exported, 0 preferred
 
1002-xdplb_peer_2001_db8_22__1 BGP        ---        start  20:20:01.253  Active        Socket: Connection refused
1006-  BGP state:          Active
       Neighbor address: 2001:db8:22::1
     Channel ipv6
       State:          DOWN
 
1002-upstream   BGP        ---        up     20:20:05.099  Established   
1006-  BGP state:          Established
 
0000 
`;

test('reply lines: codes, continuation lines, and the last line that ends a reply', () => {
  assert.deepEqual(parseReply('0002-Reading configuration from /run/bird.conf\n0003 Reconfigured\n'), {
    lines: [{ code: 2, text: 'Reading configuration from /run/bird.conf' }, { code: 3, text: 'Reconfigured' }],
    done: true,
  });
  assert.equal(parseReply('1002-a\n b\n').done, false, 'more to come');
  assert.deepEqual(parseReply('8002 /run/bird.conf, line 3: syntax error\n').lines, [{ code: 8002, text: '/run/bird.conf, line 3: syntax error' }]);
});

test('sessions: the agent\'s bgp protocols with state, neighbor and routes exported; others are ignored', () => {
  const sessions = parseSessions(parseReply(SHOW_PROTOCOLS_ALL).lines);
  assert.deepEqual(sessions, [
    { protocol: 'xdplb_peer_198_18_21_1', neighbor: '198.18.21.1', bgpState: 'Established', established: true, exportedRoutes: 2, info: 'Established' },
    { protocol: 'xdplb_peer_2001_db8_22__1', neighbor: '2001:db8:22::1', bgpState: 'Active', established: false, exportedRoutes: 0, info: 'Active Socket: Connection refused' },
  ]);
});

// Captured from BIRD 2.0.12 (`show bfd sessions`): a node's bfd protocol, its peers' sessions up, then the peer gone.
const SHOW_BFD_SESSIONS_UP = '1020-xdplb_bfd:\n IP address                Interface  State      Since         Interval  Timeout\n' +
  ' 198.18.98.1               eth0       Up         00:13:02.034    0.300    0.900\n' +
  ' 2001:db8:98::1            eth0       Up         00:13:02.034    0.300    0.900\n0000 \n';
const SHOW_BFD_SESSIONS_DOWN = '1020-xdplb_bfd:\n IP address                Interface  State      Since         Interval  Timeout\n' +
  ' 198.18.98.1               eth0       Down       00:13:19.997    1.000    0.000\n' +
  ' 2001:db8:098:0::1         eth0       Down       00:13:19.996    1.000    0.000\n1020-other:\n' +
  ' IP address                Interface  State      Since         Interval  Timeout\n' +
  ' 198.18.99.1               eth1       Up         00:13:02.034    0.300    0.900\n0000 \n';

test('BFD sessions: each peer address (canonical) with its state, from the agent\'s bfd protocol only', () => {
  assert.deepEqual([...parseBfdSessions(parseReply(SHOW_BFD_SESSIONS_UP).lines)], [['198.18.98.1', 'Up'], ['2001:db8:98::1', 'Up']]);
  assert.deepEqual([...parseBfdSessions(parseReply(SHOW_BFD_SESSIONS_DOWN).lines)], [['198.18.98.1', 'Down'], ['2001:db8:98::1', 'Down']]);
  assert.equal(parseBfdSessions(parseReply('0000 \n').lines).size, 0);
});

test('the API probe: any HTTP answer counts; silence past the bound is a problem, 0 turns the check off', () => {
  assert.ok(answered({ object: {} }));
  assert.ok(answered({ error: Object.assign(new Error('HTTP-Code: 403'), { code: 403 }) }), 'a refusal is an answer');
  assert.ok(!answered({ error: new Error('connect ECONNREFUSED') }));
  let now = 0;
  const probe = new ApiProbe(() => Promise.resolve({ object: {} }), 120, 10_000, () => now);
  now = 119_000;
  assert.equal(probe.problem(), null);
  now = 121_000;
  assert.match(probe.problem()!, /no answer for 121 s \(more than --bgp-api-loss-seconds 120\)/);
  probe.sawAnswer();
  assert.equal(probe.problem(), null);
  const off = new ApiProbe(() => Promise.resolve({ object: {} }), 0, 10_000, () => now);
  now = 10_000_000;
  assert.equal(off.problem(), null);
});
