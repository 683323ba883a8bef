/**
 * The XdpAddressPool CRD on a real kube-apiserver: a valid pool is accepted
 * with its defaults and listed by kubectl get xdpap; bad CIDRs, non-canonical
 * CIDRs, overlapping CIDRs within a pool and a missing namespaceSelector are
 * refused with a message that names the field. The example pools and RBAC
 * apply, and grant what the README says.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { controlPlaneFixture } from './control-plane/fixture.js';

const deployFile = (path: string) => fileURLToPath(new URL(`../../../deploy/${path}`, import.meta.url));

const pool = (name: string, spec: string) =>
  `apiVersion: xdplb.dev/v1alpha1\nkind: XdpAddressPool\nmetadata: {name: ${name}}\nspec:\n${spec}\n`;
const ALL_NAMESPACES = '  namespaceSelector: {}';

/** [what, spec, text the error must hold]: each one bad field of an otherwise valid pool. */
const INVALID: readonly (readonly [string, string, string])[] = [
  ['not a CIDR', `  cidrs: [198.19.0.7]\n${ALL_NAMESPACES}`, 'must be an IPv4 or IPv6 CIDR'],
  ['prefix too long', `  cidrs: [198.19.0.0/33]\n${ALL_NAMESPACES}`, 'must be an IPv4 or IPv6 CIDR'],
  ['garbage', `  cidrs: [shop]\n${ALL_NAMESPACES}`, 'must be an IPv4 or IPv6 CIDR'],
  ['host bits set (IPv4)', `  cidrs: [198.19.0.1/24]\n${ALL_NAMESPACES}`, 'must be written as its network address'],
  ['host bits set (IPv6)', `  cidrs: ['2001:db8:19::1/64']\n${ALL_NAMESPACES}`, 'must be written as its network address'],
  ['loopback', `  cidrs: [127.0.0.0/8]\n${ALL_NAMESPACES}`, 'must be global unicast'],
  ['link-local', `  cidrs: ['fe80::/64']\n${ALL_NAMESPACES}`, 'must be global unicast'],
  ['everything', `  cidrs: [0.0.0.0/0]\n${ALL_NAMESPACES}`, 'must be global unicast'],
  ['overlapping CIDRs', `  cidrs: [198.19.0.0/24, 198.19.0.128/25]\n${ALL_NAMESPACES}`, 'must not overlap each other'],
  ['no CIDRs', `  cidrs: []\n${ALL_NAMESPACES}`, 'spec.cidrs'],
  ['no namespaceSelector', '  cidrs: [198.19.0.0/24]', 'spec.namespaceSelector'],
  ['bad balancer name', `  cidrs: [198.19.0.0/24]\n${ALL_NAMESPACES}\n  balancers: [Edge_1]`, 'spec.balancers[0]'],
  ['In without values', `  cidrs: [198.19.0.0/24]\n  namespaceSelector: {matchExpressions: [{key: tenant, operator: In}]}`, 'In and NotIn need values'],
  ['autoAssign not a boolean', `  cidrs: [198.19.0.0/24]\n${ALL_NAMESPACES}\n  autoAssign: sometimes`, 'spec.autoAssign'],
];

describe('XdpAddressPool CRD on a real kube-apiserver', () => {
  const f = controlPlaneFixture((cp) => {
    cp.kubectl(['wait', '--for', 'condition=established', '--timeout=60s', 'crd/xdpaddresspools.xdplb.dev']);
  }, undefined, { openPool: false });

  test('a valid pool is accepted with its defaults, and listed by kubectl get xdpap', (t) => {
    if (!f.need(t)) return;
    const { cp } = f;
    cp.kubectl(['apply', '-f', '-'], pool('shop', "  cidrs: [198.19.0.0/24, '2001:db8:19::/64', 198.19.1.7/32]\n  namespaceSelector: {matchLabels: {xdplb.dev/tenant: shop}}"));
    const spec = JSON.parse(cp.kubectl(['get', 'xdpap', 'shop', '-o', 'jsonpath={.spec}'])) as Record<string, unknown>;
    assert.deepEqual(spec, {
      cidrs: ['198.19.0.0/24', '2001:db8:19::/64', '198.19.1.7/32'],
      namespaceSelector: { matchLabels: { 'xdplb.dev/tenant': 'shop' } },
      autoAssign: true,
    });
    cp.kubectl(['apply', '-f', '-'], pool('edge', '  cidrs: [198.18.0.0/16]\n  namespaceSelector: {}\n  balancers: [edge]\n  autoAssign: false'));
    const table = cp.kubectl(['get', 'xdpap']);
    assert.match(table, /^NAME\s+CIDRS\s+AUTOASSIGN\s+ACCEPTED\s+INUSE\s+AGE$/m);
    assert.match(table, /^edge\s+\["198\.18\.0\.0\/16"\]\s+false\s+\d+s$/m);
    assert.match(cp.kubectl(['get', 'xdplb']), /xdpaddresspool\.xdplb\.dev\/shop/, 'in the xdplb category');
  });

  test(`${INVALID.length} invalid pools are refused, each naming the field and the rule`, (t) => {
    if (!f.need(t)) return;
    const { cp } = f;
    for (const [what, spec, text] of INVALID) {
      const err = cp.kubectlError(['apply', '--dry-run=server', '-f', '-'], pool('bad', spec));
      assert.match(err, /is invalid|Invalid value|Required value|Unsupported value/, `${what}: not a validation error: ${err}`);
      assert.ok(err.includes('spec.'), `${what}: the error names no field: ${err}`);
      assert.ok(err.includes(text), `${what}: the error does not say "${text}": ${err}`);
    }
    assert.match(cp.kubectlError(['get', 'xdpap', 'bad']), /NotFound/);
  });

  test('the example pools apply; the controller may read pools and write their status, a tenant may not touch them', (t) => {
    if (!f.need(t)) return;
    const { cp } = f;
    cp.kubectl(['create', 'namespace', 'shop']);
    for (const file of ['namespace.yaml', 'rbac-controller.yaml', 'examples/rbac-address-pools.yaml']) cp.kubectl(['apply', '-f', deployFile(file)]);
    cp.kubectl(['delete', 'xdpap', '--all']);
    cp.kubectl(['apply', '-f', deployFile('examples/xdpaddresspool.yaml')]);
    assert.equal(cp.kubectl(['get', 'xdpap', 'shop', '-o', 'jsonpath={.spec.cidrs}']), '["198.19.0.0/24","2001:db8:19::/64"]');
    assert.equal(cp.kubectl(['get', 'xdpap', 'edge', '-o', 'jsonpath={.spec.autoAssign}']), 'false');
    const can = (as: string[], ...what: string[]) => {
      try {
        return cp.kubectl(['auth', 'can-i', ...as, ...what]).trim();
      } catch (err) {
        return ((err as { stdout?: string }).stdout ?? '').trim() || String((err as { stderr?: string }).stderr);
      }
    };
    const controller = ['--as', 'system:serviceaccount:xdplb-system:xdplb-controller'];
    for (const verb of ['get', 'list', 'watch']) {
      assert.equal(can(controller, verb, 'xdpaddresspools.xdplb.dev'), 'yes', `controller ${verb} pools`);
      for (const r of ['namespaces', 'nodes', 'services', 'servicecidrs.networking.k8s.io']) assert.equal(can(controller, verb, r), 'yes', `controller ${verb} ${r}`);
    }
    assert.equal(can(controller, 'patch', 'xdpaddresspools.xdplb.dev', '--subresource=status'), 'yes');
    assert.equal(can(controller, 'create', 'xdpaddresspools.xdplb.dev'), 'no');
    assert.equal(can(controller, 'patch', 'xdpaddresspools.xdplb.dev'), 'no', 'the controller never changes a pool spec');
    const admin = ['--as', 'alice', '--as-group', 'pool-admins'];
    cp.kubectl(['create', 'clusterrolebinding', 'pool-admins', '--clusterrole', 'xdplb-pool-admin', '--group', 'pool-admins']);
    assert.equal(can(admin, 'create', 'xdpaddresspools.xdplb.dev'), 'yes');
    assert.equal(can(admin, 'patch', 'namespaces/shop'), 'yes');
    const tenant = ['--as', 'bob', '--as-group', 'shop-team'];
    assert.equal(can(tenant, 'create', 'loadbalancervips.xdplb.dev', '-n', 'shop'), 'yes');
    assert.equal(can(tenant, 'create', 'loadbalancervips.xdplb.dev', '-n', 'default'), 'no');
    for (const verb of ['create', 'patch', 'delete']) assert.equal(can(tenant, verb, 'xdpaddresspools.xdplb.dev'), 'no', `tenant ${verb} pools`);
    assert.equal(can(tenant, 'patch', 'namespaces/shop'), 'no', 'a tenant cannot relabel its namespace into another pool');
  });
});
