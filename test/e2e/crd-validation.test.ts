/**
 * The CRDs on a real kube-apiserver: valid objects are accepted with their
 * defaults; invalid LoadBalancerVips and XdpBalancers are refused with a
 * message that names the field.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { controlPlaneFixture } from './control-plane/fixture.js';
import { INVALID_VIPS, OK_PORTS, sel, vipManifest } from './invalid-vips.js';

const vip = (spec: string, name = 'v') => vipManifest(spec, name, 'default');
const INVALID = INVALID_VIPS;

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
    assert.equal(spec.delivery, 'Node', 'delivery defaults to Node: the backend node decapsulates, the pods need nothing');
    const table = cp.kubectl(['get', 'lbvip', '-n', 'default']);
    assert.match(table, /^NAME\s+ADDRESS\s+ALLOWED\s+PORTS\s+BACKENDS\s+PROGRAMMED\s+READY\s+AGE/m);
    // Every column but the name and age comes from status, which the controller writes (the address only once a pool allows it:
    // test/e2e/pools.test.ts); no controller runs here.
    assert.match(table, /^web6\s+\d+s$/m);
    // Agents select their balancer's VIPs by a field selector on spec.balancer.
    assert.deepEqual(cp.kubectl(['get', 'lbvip', '-A', '--field-selector', 'spec.balancer=default', '-o', 'jsonpath={.items[*].metadata.name}']).split(' ').sort(), ['web4', 'web6']);
    assert.equal(cp.kubectl(['get', 'lbvip', '-A', '--field-selector', 'spec.balancer=edge', '-o', 'name']), '');
  });

  test('targetPort and delivery Node are accepted; targetPort is left out unless given', (t) => {
    if (!f.need(t)) return;
    const { cp } = f;
    cp.kubectl(['apply', '-f', '-'], vip(`  address: 198.19.0.11\n  ports: [{port: 80, targetPort: 8080}, {port: 443}]\n  delivery: Node\n${sel}`, 'mapped'));
    const spec = JSON.parse(cp.kubectl(['get', 'lbvip', 'mapped', '-n', 'default', '-o', 'jsonpath={.spec}'])) as Record<string, unknown>;
    assert.equal(spec.delivery, 'Node');
    assert.deepEqual(spec.ports, [{ port: 80, targetPort: 8080, protocol: 'TCP' }, { port: 443, protocol: 'TCP' }]);
    // A targetPort that differs with delivery InPod is accepted by the API server: the controller refuses it with a
    // condition (TargetPortNeedsNodeDelivery), which the user sees on the VIP, rather than the write failing.
    cp.kubectl(['apply', '--dry-run=server', '-f', '-'], vip(`  address: 198.19.0.11\n  ports: [{port: 80, targetPort: 8080}]\n  delivery: InPod\n${sel}`, 'inpod'));
    cp.kubectl(['delete', 'lbvip', 'mapped', '-n', 'default']);
  });

  test('selectors with any label Kubernetes allows are accepted', (t) => {
    if (!f.need(t)) return;
    const labels = '{app.kubernetes.io/name: web, tier: "", Version_2.x: "v1.2-rc_3", example.com/a-b.c: X}';
    f.cp.kubectl(['apply', '--dry-run=server', '-f', '-'], vip(`  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector:\n    matchLabels: ${labels}\n` +
      '    matchExpressions: [{key: example.com/canary, operator: NotIn, values: ["", "yes"]}]', 'labels'));
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

  test('CEL refusals name the value, not its type', (t) => {
    if (!f.need(t)) return;
    const refuse = (spec: string) => f.cp.kubectlError(['apply', '--dry-run=server', '-f', '-'], vip(spec, 'bad'));
    assert.match(refuse(`  address: 198.19.0.300\n${OK_PORTS}\n${sel}`), /spec\.address: Invalid value: .*"198\.19\.0\.300" is not an IPv4 or IPv6 address/);
    assert.match(refuse(`  address: 127.0.0.1\n${OK_PORTS}\n${sel}`), /"127\.0\.0\.1" is not a global unicast address/);
    assert.match(refuse(`  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector: {matchExpressions: [{key: tier, operator: Exists, values: [a]}]}`),
      /spec\.backendSelector\.matchExpressions\[0\]: Invalid value: .*key "tier": Exists takes no values/);
    assert.match(refuse(`  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector: {matchLabels: {app: web, "my app": web}}`),
      /spec\.backendSelector\.matchLabels: Invalid value: .*not label keys .*such as "my app"/);
  });

  test('kubectl explain describes every field, with its default', (t) => {
    if (!f.need(t)) return;
    const explain = (path: string) => f.cp.kubectl(['explain', path]);
    assert.match(explain('lbvip.spec.address'), /The virtual IP, IPv4 or IPv6/);
    assert.match(explain('lbvip.spec.ports.protocol'), /TCP or UDP\. Default TCP\./);
    // kubectl explain wraps lines: compare with whitespace folded.
    const folded = (path: string) => explain(path).replace(/\s+/g, ' ');
    assert.match(folded('lbvip.spec.ports.targetPort'), /translated to on the backend node .*Default: the same as port\. .*TargetPortNeedsNodeDelivery/);
    assert.match(folded('lbvip.spec.delivery'), /Node - the backend node's datapath .*InPod - each pod decapsulates .*Default Node\./);
    assert.match(explain('lbvip.status.backends.draining'), /keeps its connections, gets no new ones/);
    assert.match(explain('xdpb.spec.drainSeconds'), /Default 60\./);
    assert.match(explain('xdpb.spec.tolerations.operator'), /Equal \(key and value match\)/);
  });

  test('XdpBalancer: defaults filled in, bad fields refused', (t) => {
    if (!f.need(t)) return;
    const { cp } = f;
    cp.kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: default}\nspec: {image: "xdplb:dev"}\n');
    const spec = JSON.parse(cp.kubectl(['get', 'xdpb', 'default', '-o', 'jsonpath={.spec}'])) as Record<string, unknown>;
    assert.deepEqual(spec, { image: 'xdplb:dev', xdpMode: 'auto', metricsPort: 9641, drainSeconds: 60, backendAddressing: 'Node',
      capacities: { vips: 512, reals: 4095, connectionTable: 1048576 } });
    const err = cp.kubectlError(['apply', '--dry-run=server', '-f', '-'],
      'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: bad}\n' +
      'spec: {image: "", xdpMode: turbo, capacities: {vips: 0}, metricsPort: 70000, nodeSelector: {"edge node": "yes please"}, bpfCapability: ALL}\n');
    for (const field of ['spec.image', 'spec.xdpMode', 'spec.capacities.vips', 'spec.metricsPort', 'spec.nodeSelector', 'spec.bpfCapability']) assert.ok(err.includes(field), `${field}: ${err}`);
    const balancer = (name: string) => `apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: ${name}}\nspec: {image: "xdplb:dev"}\n`;
    // The name is its agent pods' label value (63 at most; test/e2e/controller-edges.test.ts applies such a DaemonSet) and VIPs' spec.balancer.
    cp.kubectl(['apply', '--dry-run=server', '-f', '-'], balancer('a'.repeat(63)));
    assert.match(cp.kubectlError(['apply', '--dry-run=server', '-f', '-'], balancer('a'.repeat(64))), /"a{64}" is invalid: .*metadata\.name: at most 63 characters/);
    assert.match(cp.kubectlError(['apply', '--dry-run=server', '-f', '-'], balancer('edge.one')), /"edge\.one" is invalid: .*metadata\.name: must be a DNS label/);
    assert.match(err, /spec\.nodeSelector\.edge node: Invalid value: "yes please"/, 'the bad value is named');
    // CEL rules run only once the schema's own checks pass: the bad key alone.
    assert.match(cp.kubectlError(['apply', '--dry-run=server', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: bad}\n' +
      'spec: {image: "xdplb:dev", nodeSelector: {"edge node": "yes"}}\n'), /spec\.nodeSelector: Invalid value: .*not label keys .*such as "edge node"/);
    // L2 mode: its lease defaulted and bounded; a VIP is announced one way, not by BGP and L2 both.
    cp.kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: lan}\nspec: {image: "xdplb:dev", l2: {}}\n');
    assert.equal(cp.kubectl(['get', 'xdpb', 'lan', '-o', 'jsonpath={.spec.l2.leaseSeconds}']), '10');
    assert.match(cp.kubectlError(['apply', '--dry-run=server', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: bad}\n' +
      'spec: {image: "xdplb:dev", l2: {leaseSeconds: 1}}\n'), /spec\.l2\.leaseSeconds: Invalid value: 1: spec\.l2\.leaseSeconds in body should be greater than or equal to 3/);
    assert.match(cp.kubectlError(['apply', '--dry-run=server', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: bad}\n' +
      'spec: {image: "xdplb:dev", l2: {}, bgp: {localASN: 64512, peers: [{address: 198.18.21.1, asn: 64500}]}}\n'), /give bgp or l2, not both/);
    cp.kubectl(['delete', 'xdpb', 'lan']);
    // BFD: {} turns it on with its defaults; timers out of bounds are refused, naming the field.
    const bgp = (bfd: string) => 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: routed}\n' +
      `spec: {image: "xdplb:dev", bgp: {localASN: 64512, peers: [{address: 198.18.21.1, asn: 64500}], bfd: ${bfd}}}\n`;
    cp.kubectl(['apply', '-f', '-'], bgp('{}'));
    assert.equal(cp.kubectl(['get', 'xdpb', 'routed', '-o', 'jsonpath={.spec.bgp.bfd}']), '{"minIntervalMilliseconds":300,"multiplier":3}');
    const bfdErr = cp.kubectlError(['apply', '--dry-run=server', '-f', '-'], bgp('{minIntervalMilliseconds: 5, multiplier: 256}'));
    assert.match(bfdErr, /spec\.bgp\.bfd\.minIntervalMilliseconds: Invalid value: 5/);
    assert.match(bfdErr, /spec\.bgp\.bfd\.multiplier: Invalid value: 256/);
    assert.match(cp.kubectl(['explain', 'xdpb.spec.bgp.bfd.multiplier']), /Packets missed in a row before a session is declared down\. Default 3\./);
    cp.kubectl(['delete', 'xdpb', 'routed']);
  });
});
