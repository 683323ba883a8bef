import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentEndpoints, nodeReport } from '../../../src/agent/announce/node-report.js';
import type { ServingTls } from '../../../src/lib/serving-tls.js';

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

test('the endpoints an entry publishes: only those served with the certificate beyond loopback, with its fingerprint', () => {
  const tls: ServingTls = { cert: '', key: '', fingerprint256: 'AB:'.repeat(31) + 'CD', selfSigned: true };
  assert.deepEqual(agentEndpoints('198.18.0.5', tls, { metricsAddress: '0.0.0.0:9641', metricsTls: tls, traceAddress: '0.0.0.0:9642', traceTls: tls }),
    { address: '198.18.0.5', metricsPort: 9641, tracePort: 9642, certificateSHA256: tls.fingerprint256 });
  assert.deepEqual(agentEndpoints('198.18.0.5', tls, { metricsAddress: '0.0.0.0:9641', metricsTls: tls, traceAddress: '127.0.0.1:9642', traceTls: tls }),
    { address: '198.18.0.5', metricsPort: 9641, certificateSHA256: tls.fingerprint256 }, 'a loopback trace endpoint is nobody else\'s to reach');
  assert.equal(agentEndpoints('198.18.0.5', tls, { metricsAddress: '127.0.0.1:9641', traceAddress: '' }), undefined, 'nothing served with TLS');
  const entry = nodeReport('node-a', { endpoints: { address: '2001:db8::5', tracePort: 9642, certificateSHA256: tls.fingerprint256 } });
  assert.deepEqual(entry, { node: 'node-a', endpoints: { address: '2001:db8::5', tracePort: 9642, certificateSHA256: tls.fingerprint256 } });
});
