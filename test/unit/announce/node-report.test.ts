import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nodeReport } from '../../../src/agent/announce/node-report.js';

test('the node\'s status entry: BGP sessions by peer with their state and routes sent, what it announces or why it withdrew; L2 counts', () => {
  const bgp = {
    announced: ['198.19.0.10', '198.19.0.11'], withdrawnBecause: null, bfd: true,
    sessions: [
      { protocol: 'xdplb_peer_198_18_22_1', neighbor: '198.18.22.1', bgpState: 'Active', established: false, exportedRoutes: 0, info: 'Socket: Connection refused', bfdState: 'Down' },
      { protocol: 'xdplb_peer_198_18_21_1', neighbor: '198.18.21.1', bgpState: 'Established', established: true, exportedRoutes: 2, info: '', bfdState: 'Up' },
    ],
  };
  assert.deepEqual(nodeReport('lb1', { bgp }), {
    node: 'lb1',
    bgp: {
      announced: 2,
      sessions: [
        { peer: '198.18.21.1', state: 'Established', established: true, routesSent: 2, bfd: 'Up' },
        { peer: '198.18.22.1', state: 'Active', established: false, routesSent: 0, bfd: 'Down', info: 'Socket: Connection refused' },
      ],
    },
  });
  assert.equal(nodeReport('lb1', { bgp: { ...bgp, withdrawnBecause: 'stopping' } }).bgp?.withdrawn, 'stopping');
  assert.deepEqual(nodeReport('lb2', { l2: { answering: ['198.19.0.10'], announcementsSent: 3, announceErrors: 0 } }), { node: 'lb2', l2: { answering: 1 } });
});
