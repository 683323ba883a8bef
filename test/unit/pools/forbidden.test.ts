import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Service, V1ServiceCIDR } from '@kubernetes/client-node';
import { toNumeric } from '../../../src/controller/pools/cidr.js';
import { forbiddenAddresses, NOTHING_FORBIDDEN } from '../../../src/controller/pools/forbidden.js';
import { node } from './pool-fixtures.js';

const at = (text: string) => toNumeric(text);

describe('forbidden addresses', () => {
  const nodes = [
    node('worker-1', [['InternalIP', '198.18.1.11'], ['InternalIP', '2001:db8:1::11'], ['Hostname', 'worker-1'], ['ExternalIP', '198.18.200.1']], ['198.18.64.0/24', '2001:db8:64:1::/64']),
    node('worker-2', [['InternalIP', '198.18.1.12']], ['198.18.65.0/24']),
  ];
  const serviceCIDRs: V1ServiceCIDR[] = [{ metadata: { name: 'kubernetes' }, spec: { cidrs: ['198.18.96.0/20', '2001:db8:96::/108'] } }];
  const services: V1Service[] = [
    { metadata: { namespace: 'default', name: 'kubernetes' }, spec: { clusterIP: '198.18.128.1', clusterIPs: ['198.18.128.1'] } },
    { metadata: { namespace: 'shop', name: 'headless' }, spec: { clusterIP: 'None' } },
  ];
  const f = forbiddenAddresses({ nodes, serviceCIDRs, services });

  test('node addresses, each with the node and the kind', () => {
    assert.equal(f.reasonFor(at('198.18.1.11')), "is node worker-1's address (InternalIP)");
    assert.equal(f.reasonFor(at('198.18.200.1')), "is node worker-1's address (ExternalIP)");
    assert.equal(f.reasonFor(at('2001:DB8:1:0::11')), "is node worker-1's address (InternalIP)");
    assert.equal(f.reasonFor(at('198.18.1.12')), "is node worker-2's address (InternalIP)");
    assert.equal(f.reasonFor(at('198.18.1.13')), undefined);
  });

  test('pod CIDRs, the whole range', () => {
    assert.equal(f.reasonFor(at('198.18.64.0')), "is in node worker-1's pod CIDR 198.18.64.0/24");
    assert.equal(f.reasonFor(at('198.18.65.255')), "is in node worker-2's pod CIDR 198.18.65.0/24");
    assert.equal(f.reasonFor(at('2001:db8:64:1:ffff::1')), "is in node worker-1's pod CIDR 2001:db8:64:1::/64");
    assert.equal(f.reasonFor(at('198.18.66.0')), undefined);
  });

  test('the Service range from ServiceCIDRs, and the ClusterIPs of the Services given', () => {
    assert.equal(f.reasonFor(at('198.18.100.7')), 'is in the Service range 198.18.96.0/20 (ServiceCIDR kubernetes)');
    assert.equal(f.reasonFor(at('2001:db8:96::f:ffff')), 'is in the Service range 2001:db8:96::/108 (ServiceCIDR kubernetes)');
    assert.equal(f.reasonFor(at('2001:db8:96::10:0')), undefined);
    assert.equal(f.reasonFor(at('198.18.128.1')), 'is the ClusterIP of Service default/kubernetes');
    assert.equal(f.ranges.length, 10, '4 node addresses + 3 pod CIDRs + 2 Service CIDRs + 1 ClusterIP; the hostname and "None" skipped');
  });

  test('nested ranges: the most specific reason; coveringEnd jumps past all of them', () => {
    const g = forbiddenAddresses({
      nodes: [node('n', [['InternalIP', '198.18.0.200']], ['198.18.0.128/25']), node('wide', [], ['198.18.0.0/23'])],
    });
    assert.equal(g.reasonFor(at('198.18.0.200')), "is node n's address (InternalIP)");
    assert.equal(g.reasonFor(at('198.18.0.201')), "is in node n's pod CIDR 198.18.0.128/25");
    assert.equal(g.reasonFor(at('198.18.0.5')), "is in node wide's pod CIDR 198.18.0.0/23");
    assert.equal(g.coveringEnd(at('198.18.0.200')), at('198.18.1.255').value);
    assert.equal(g.coveringEnd(at('198.18.2.0')), undefined);
    // A later, narrower range must not hide an earlier wide one that also holds the address.
    assert.equal(g.reasonFor(at('198.18.1.7')), "is in node wide's pod CIDR 198.18.0.0/23");
  });

  test('a podCIDR with host bits is taken as its network; garbage is skipped', () => {
    const g = forbiddenAddresses({ nodes: [node('n', [['InternalIP', 'not-an-ip']], ['198.18.7.9/24', 'junk'])] });
    assert.equal(g.reasonFor(at('198.18.7.1')), "is in node n's pod CIDR 198.18.7.0/24");
    assert.equal(g.ranges.length, 1);
  });

  test('nothing forbidden', () => {
    assert.equal(NOTHING_FORBIDDEN.reasonFor(at('198.18.0.1')), undefined);
    assert.equal(NOTHING_FORBIDDEN.coveringEnd(at('2001:db8::1')), undefined);
  });
});
