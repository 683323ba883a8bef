/**
 * The CRDs on a real kube-apiserver: valid objects are accepted with their
 * defaults; invalid LoadBalancerVips and XdpBalancers are refused with a
 * message that names the field.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { controlPlaneFixture } from './control-plane/fixture.js';

const vip = (spec: string, name = 'v') =>
  `apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: ${name}, namespace: default}\nspec:\n${spec}\n`;
const sel = '  backendSelector: {matchLabels: {app: web}}';
const OK_PORTS = '  ports: [{port: 80}]';

/** [what is wrong, spec, the field the message must name] */
const INVALID: [string, string, string][] = [
  ['not an IP', `  address: 198.19.0.300\n${OK_PORTS}\n${sel}`, 'spec.address'],
  ['a prefix, not an address', `  address: 198.19.0.10/32\n${OK_PORTS}\n${sel}`, 'spec.address'],
  ['loopback', `  address: 127.0.0.1\n${OK_PORTS}\n${sel}`, 'spec.address'],
  ['multicast', `  address: 224.0.0.1\n${OK_PORTS}\n${sel}`, 'spec.address'],
  ['IPv6 link-local', `  address: fe80::1\n${OK_PORTS}\n${sel}`, 'spec.address'],
  ['unspecified', `  address: "::"\n${OK_PORTS}\n${sel}`, 'spec.address'],
  ['no address', `${OK_PORTS}\n${sel}`, 'spec.address'],
  ['port 0', `  address: 198.19.0.10\n  ports: [{port: 0}]\n${sel}`, 'spec.ports[0].port'],
  ['port 65536', `  address: 198.19.0.10\n  ports: [{port: 65536}]\n${sel}`, 'spec.ports[0].port'],
  ['port not an integer', `  address: 198.19.0.10\n  ports: [{port: 80.5}]\n${sel}`, 'spec.ports[0].port'],
  ['duplicate port (after defaulting TCP)', `  address: 198.19.0.10\n  ports: [{port: 80, protocol: TCP}, {port: 80}]\n${sel}`, 'spec.ports[1]'],
  ['unknown protocol', `  address: 198.19.0.10\n  ports: [{port: 80, protocol: SCTP}]\n${sel}`, 'spec.ports[0].protocol'],
  ['no ports', `  address: 198.19.0.10\n  ports: []\n${sel}`, 'spec.ports'],
  ['too many ports', `  address: 198.19.0.10\n  ports: [${Array.from({ length: 17 }, (_, i) => `{port: ${1000 + i}}`).join(', ')}]\n${sel}`, 'spec.ports'],
  ['empty selector', `  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector: {}`, 'spec.backendSelector'],
  ['no selector', `  address: 198.19.0.10\n${OK_PORTS}`, 'spec.backendSelector'],
  ['In without values', `  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector: {matchExpressions: [{key: app, operator: In}]}`, 'spec.backendSelector.matchExpressions[0]'],
  ['unknown operator', `  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector: {matchExpressions: [{key: app, operator: Like, values: [w]}]}`, 'spec.backendSelector.matchExpressions[0].operator'],
  ['bad balancer name', `  address: 198.19.0.10\n  balancer: Bad_Name\n${OK_PORTS}\n${sel}`, 'spec.balancer'],
  ['hashing option not a boolean', `  address: 198.19.0.10\n${OK_PORTS}\n${sel}\n  hashing: {ignoreSourcePort: "yes"}`, 'spec.hashing.ignoreSourcePort'],
];

describe('CRDs on a real kube-apiserver', () => {
  const f = controlPlaneFixture();

  test('valid VIPs are accepted with their defaults, and listed by kubectl get lbvip', (t) => {
    if (!f.need(t)) return;
    const { cp } = f;
    cp.kubectl(['apply', '-f', '-'], vip(`  address: 198.19.0.10\n  ports: [{port: 80}, {port: 53, protocol: UDP}]\n${sel}`, 'web4'));
    cp.kubectl(['apply', '-f', '-'], vip(`  address: 2001:db8:19::10\n${OK_PORTS}\n${sel}\n  hashing: {ignoreSourcePort: true}\n  lruBypass: true`, 'web6'));
    const spec = JSON.parse(cp.kubectl(['get', 'lbvip', 'web4', '-n', 'default', '-o', 'jsonpath={.spec}'])) as Record<string, unknown>;
    assert.equal(spec.balancer, 'default');
    assert.deepEqual(spec.ports, [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }]);
    const table = cp.kubectl(['get', 'lbvip', '-n', 'default']);
    assert.match(table, /^NAME\s+ADDRESS\s+PORTS\s+BACKENDS\s+PROGRAMMED\s+READY\s+AGE/m);
    assert.match(table, /^web6\s+2001:db8:19::10\s+80\s/m);
  });

  test(`${INVALID.length} invalid VIPs are refused, each naming the field`, (t) => {
    if (!f.need(t)) return;
    const { cp } = f;
    assert.ok(INVALID.length >= 15);
    for (const [what, spec, field] of INVALID) {
      const err = cp.kubectlError(['apply', '--dry-run=server', '-f', '-'], vip(spec, 'bad'));
      assert.ok(err.includes('is invalid') || err.includes('Invalid value') || err.includes('Required value') || err.includes('Unsupported value'), `${what}: not a validation error: ${err}`);
      assert.ok(err.includes(field), `${what}: the error does not name ${field}: ${err}`);
    }
    assert.match(cp.kubectlError(['get', 'lbvip', 'bad', '-n', 'default']), /NotFound/);
  });

  test('XdpBalancer: defaults filled in, bad fields refused', (t) => {
    if (!f.need(t)) return;
    const { cp } = f;
    cp.kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: default}\nspec: {image: "xdplb:dev"}\n');
    const spec = JSON.parse(cp.kubectl(['get', 'xdpb', 'default', '-o', 'jsonpath={.spec}'])) as Record<string, unknown>;
    assert.deepEqual(spec, { image: 'xdplb:dev', xdpMode: 'auto', metricsPort: 9641, drainSeconds: 60, capacities: { vips: 512, reals: 4095, connectionTable: 1048576 } });
    const err = cp.kubectlError(['apply', '--dry-run=server', '-f', '-'],
      'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: bad}\nspec: {image: "", xdpMode: turbo, capacities: {vips: 0}, metricsPort: 70000}\n');
    for (const field of ['spec.image', 'spec.xdpMode', 'spec.capacities.vips', 'spec.metricsPort']) assert.ok(err.includes(field), `${field}: ${err}`);
  });
});
