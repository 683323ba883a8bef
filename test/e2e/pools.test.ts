/**
 * Address pools decide who may claim an address, against a real
 * kube-apiserver with the controller running: a namespace a pool allows and
 * one it does not; assignment (lowest free, never twice, released on
 * deletion, stable across a controller restart); node addresses, pod CIDRs
 * and the Service range refused whatever the pools say; overlapping pools
 * refused; a pool change that takes an address away reported on the VIP,
 * not silently replaced; pool status counting the addresses in use.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { XdpAddressPool } from '../../src/api/addresspool.js';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import { Controller } from '../../src/controller/controller.js';
import { controlPlaneFixture } from './control-plane/fixture.js';
import { condition, eventsOf, getVip, kubeConfigFrom, waitUntil } from './control-plane/objects.js';
import { poolManifest } from './pool-manifests.js';

const AGENT_NS = 'xdplb-system';
const SHOP = { matchLabels: { 'xdplb.dev/tenant': 'shop' } };

describe('address pools on a real kube-apiserver', () => {
  let controller: Controller;
  const startController = async (kubeconfig: string) => {
    controller = new Controller(kubeConfigFrom(kubeconfig), { namespace: AGENT_NS, identity: 'test' });
    await controller.start();
  };
  const f = controlPlaneFixture(
    async (cp) => {
      for (const ns of ['shop', 'blog', AGENT_NS]) cp.kubectl(['create', 'namespace', ns]);
      cp.kubectl(['label', 'namespace', 'shop', 'xdplb.dev/tenant=shop']);
      cp.kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: default}\nspec: {image: registry.example/xdplb:1}\n');
      cp.kubectl(['apply', '-f', '-'], poolManifest('shop', ['198.19.0.0/24', '2001:db8:19::/64'], SHOP));
      await startController(cp.kubeconfig);
    },
    async () => {
      await controller?.stop();
    },
    { openPool: false },
  );
  const kubectl = (args: string[], input?: string) => f.cp.kubectl(args, input);
  /** A VIP; address undefined: assigned. */
  const lbvip = (ns: string, name: string, address?: string, extra = '') => kubectl(['apply', '-f', '-'],
    `apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: ${name}, namespace: ${ns}}\n`
    + `spec: {${address ? `address: "${address}", ` : ''}ports: [{port: 80}], backendSelector: {matchLabels: {app: web}}${extra}}\n`);
  const allowedCond = (v: LoadBalancerVip) => condition(v, 'AddressAllowed');
  const decided = (ns: string, name: string, what: string, ok: (v: LoadBalancerVip) => boolean = () => true) =>
    waitUntil(`${ns}/${name}: ${what}`, () => getVip(f.cp, ns, name),
      (v) => v.status?.observedGeneration === v.metadata.generation && allowedCond(v) !== undefined && ok(v));
  const pool = (name: string) => JSON.parse(kubectl(['get', 'xdpap', name, '-o', 'json'])) as XdpAddressPool;

  test('a namespace the pool selects may use its addresses; another may not, and its VIP says why and is programmed nowhere', async (t) => {
    if (!f.need(t)) return;
    lbvip('shop', 'allowed', '198.19.0.10');
    const ok = await decided('shop', 'allowed', 'allowed');
    assert.deepEqual([allowedCond(ok)!.status, allowedCond(ok)!.reason], ['True', 'InPool']);
    assert.equal(ok.status!.address, '198.19.0.10');
    assert.equal(ok.status!.addressPool, 'shop');

    lbvip('blog', 'refused', '198.19.0.11');
    const no = await decided('blog', 'refused', 'refused');
    assert.deepEqual([allowedCond(no)!.status, allowedCond(no)!.reason], ['False', 'NamespaceNotAllowed']);
    assert.equal(allowedCond(no)!.message,
      '198.19.0.11 is in pool shop, whose namespaceSelector does not select namespace blog; no pool allows namespace blog for balancer default');
    assert.equal(condition(no, 'Programmed')!.reason, 'AddressNotAllowed');
    assert.equal(condition(no, 'Ready')!.status, 'False');
    assert.equal(no.status!.addressPool, undefined);
    // The printer column shows it; the Event too.
    const row = kubectl(['get', 'lbvip', 'refused', '-n', 'blog', '--no-headers']);
    assert.match(row, /^refused\s+198\.19\.0\.11\s+NamespaceNotAllowed\s/);
    await waitUntil('a Warning Event', () => eventsOf(f.cp, 'blog', 'refused'), (e) => e.some((l) => l.startsWith('Warning AddressNotAllowed: 198.19.0.11 is in pool shop')));

    // An address in no pool at all.
    lbvip('shop', 'nowhere', '198.19.7.1');
    const nowhere = await decided('shop', 'nowhere', 'refused');
    assert.equal(allowedCond(nowhere)!.reason, 'NotInPool');
    assert.equal(allowedCond(nowhere)!.message, '198.19.7.1 is in no pool; pools namespace shop may use for balancer default: shop (198.19.0.0/24, 2001:db8:19::/64)');

    // A pool for another balancer only.
    kubectl(['apply', '-f', '-'], poolManifest('edge-only', ['198.19.6.0/24'], {}, { balancers: ['edge'] }));
    lbvip('shop', 'wrong-balancer', '198.19.6.1');
    const wrong = await decided('shop', 'wrong-balancer', 'refused by the pool', (v) => allowedCond(v)!.reason === 'BalancerNotServed');
    assert.match(allowedCond(wrong)!.message, /^198\.19\.6\.1 is in pool edge-only, which serves balancers edge, not default;/);
    kubectl(['delete', 'lbvip', 'wrong-balancer', '-n', 'shop']);
    kubectl(['delete', 'xdpap', 'edge-only']);

    // Labelling the namespace lets it in: its VIP is allowed without being touched.
    kubectl(['label', 'namespace', 'blog', 'xdplb.dev/tenant=shop']);
    await decided('blog', 'refused', 'allowed once its namespace is labelled', (v) => allowedCond(v)!.status === 'True');
    kubectl(['label', 'namespace', 'blog', 'xdplb.dev/tenant-']);
    await decided('blog', 'refused', 'refused again once the label goes', (v) => allowedCond(v)!.status === 'False');
    for (const [ns, n] of [['shop', 'allowed'], ['blog', 'refused'], ['shop', 'nowhere']]) kubectl(['delete', 'lbvip', n!, '-n', ns!]);
  });

  test('assignment: lowest free address, never twice, of the family asked for, released on deletion, kept across a controller restart', async (t) => {
    if (!f.need(t)) return;
    lbvip('shop', 'taken', '198.19.0.1');
    await decided('shop', 'taken', 'allowed');
    lbvip('shop', 'auto-a');
    const a = await decided('shop', 'auto-a', 'assigned', (v) => v.status?.address !== undefined);
    assert.deepEqual([a.status!.address, allowedCond(a)!.reason, a.status!.addressPool], ['198.19.0.2', 'Assigned', 'shop'], '.1 is taken by spec.address');
    assert.equal(a.spec.address, undefined, 'the spec is the user\'s: the assignment lives in status');
    lbvip('shop', 'auto-b');
    lbvip('shop', 'auto-v6', undefined, ', addressFamily: IPv6');
    const b = await decided('shop', 'auto-b', 'assigned', (v) => v.status?.address !== undefined);
    const v6 = await decided('shop', 'auto-v6', 'assigned', (v) => v.status?.address !== undefined);
    assert.equal(b.status!.address, '198.19.0.3');
    assert.equal(v6.status!.address, '2001:db8:19::1');
    await waitUntil('an AddressAssigned Event', () => eventsOf(f.cp, 'shop', 'auto-a'), (e) => e.includes('Normal AddressAssigned: 198.19.0.2 was assigned from pool shop'));
    await waitUntil('the pool counts the addresses in use', () => pool('shop').status?.addressesInUse, (n) => n === 4);

    // Restart: a new controller (as after a leader change) finds every VIP its address again.
    await controller.stop();
    const before = ['auto-a', 'auto-b', 'auto-v6'].map((n) => getVip(f.cp, 'shop', n).status!.address);
    lbvip('shop', 'auto-c'); // created while no controller runs
    await startController(f.cp.kubeconfig);
    const c = await decided('shop', 'auto-c', 'assigned after the restart', (v) => v.status?.address !== undefined);
    assert.equal(c.status!.address, '198.19.0.4', 'the next free one, none given twice');
    assert.deepEqual(['auto-a', 'auto-b', 'auto-v6'].map((n) => getVip(f.cp, 'shop', n).status!.address), before);

    // Deletion releases: the next VIP gets the freed address.
    kubectl(['delete', 'lbvip', 'auto-a', '-n', 'shop']);
    lbvip('shop', 'auto-d');
    const d = await decided('shop', 'auto-d', 'assigned', (v) => v.status?.address !== undefined);
    assert.equal(d.status!.address, '198.19.0.2', 'the lowest free address, released by auto-a');

    // No pool assigns for blog: said so.
    lbvip('blog', 'auto');
    const none = await decided('blog', 'auto', 'no address');
    assert.deepEqual([allowedCond(none)!.status, allowedCond(none)!.reason, none.status!.address], ['False', 'NoPool', undefined]);
    assert.equal(allowedCond(none)!.message, 'no pool assigns addresses to namespace blog for balancer default');
    for (const n of ['taken', 'auto-b', 'auto-c', 'auto-d', 'auto-v6']) kubectl(['delete', 'lbvip', n, '-n', 'shop']);
    kubectl(['delete', 'lbvip', 'auto', '-n', 'blog']);
    await waitUntil('the pool counts none in use', () => pool('shop').status?.addressesInUse, (n) => n === 0);
  });

  test('a pool change that takes an assigned address away is reported on the VIP, not silently replaced; undone, the VIP has it again', async (t) => {
    if (!f.need(t)) return;
    kubectl(['apply', '-f', '-'], poolManifest('narrow', ['198.19.2.0/28'], { matchLabels: { 'kubernetes.io/metadata.name': 'blog' } }));
    lbvip('blog', 'assigned');
    const v = await decided('blog', 'assigned', 'assigned', (x) => x.status?.address !== undefined);
    assert.equal(v.status!.address, '198.19.2.1');
    kubectl(['apply', '-f', '-'], poolManifest('narrow', ['198.19.2.0/28'], { matchLabels: { 'kubernetes.io/metadata.name': 'nobody' } }));
    const revoked = await decided('blog', 'assigned', 'revoked', (x) => allowedCond(x)!.status === 'False');
    assert.equal(allowedCond(revoked)!.reason, 'AddressRevoked');
    assert.equal(revoked.status!.address, '198.19.2.1', 'kept, not replaced by another address');
    assert.match(allowedCond(revoked)!.message, /^the address it was given, 198\.19\.2\.1, is no longer allowed: 198\.19\.2\.1 is in pool narrow, whose namespaceSelector does not select namespace blog/);
    await waitUntil('a Warning Event', () => eventsOf(f.cp, 'blog', 'assigned'), (e) => e.some((l) => l.startsWith('Warning AddressNotAllowed: the address it was given, 198.19.2.1')));
    kubectl(['apply', '-f', '-'], poolManifest('narrow', ['198.19.2.0/28'], { matchLabels: { 'kubernetes.io/metadata.name': 'blog' } }));
    const back = await decided('blog', 'assigned', 'allowed again', (x) => allowedCond(x)!.status === 'True');
    assert.equal(back.status!.address, '198.19.2.1');
    kubectl(['delete', 'lbvip', 'assigned', '-n', 'blog']);
    kubectl(['delete', 'xdpap', 'narrow']);
  });

  test('node addresses, pod CIDRs and the Service range are never allowed, whatever the pools say; assignment jumps them', async (t) => {
    if (!f.need(t)) return;
    kubectl(['apply', '-f', '-'], poolManifest('infra', ['198.19.4.0/24', '198.18.240.0/24'], {}));
    kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1', kind: 'Node', metadata: { name: 'worker-1' }, spec: { podCIDR: '198.19.4.0/30', podCIDRs: ['198.19.4.0/30'] },
    }));
    kubectl(['patch', 'node', 'worker-1', '--subresource=status', '--type=merge', '-p',
      JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: '198.19.4.9' }, { type: 'Hostname', address: 'worker-1' }] } })]);
    const clusterIP = kubectl(['get', 'svc', 'kubernetes', '-n', 'default', '-o', 'jsonpath={.spec.clusterIP}']);
    const cases: [string, string, RegExp][] = [
      ['node-ip', '198.19.4.9', /^198\.19\.4\.9 is node worker-1's address \(InternalIP\): never allowed as a VIP, whatever the pools say$/],
      ['pod-cidr', '198.19.4.2', /^198\.19\.4\.2 is in node worker-1's pod CIDR 198\.19\.4\.0\/30: never allowed/],
      ['cluster-ip', clusterIP, new RegExp(`^${clusterIP.replaceAll('.', '\\.')} is (in the Service range 198\\.18\\.240\\.0/24 \\(ServiceCIDR kubernetes\\)|the ClusterIP of Service default/kubernetes): never allowed`)],
    ];
    for (const [name, address] of cases) lbvip('shop', name, address);
    for (const [name, , message] of cases) {
      // The pool and the node may reach the controller after the VIP: wait for the decision that sees them.
      const v = await decided('shop', name, 'refused as forbidden', (x) => allowedCond(x)!.reason === 'Forbidden');
      assert.equal(allowedCond(v)!.status, 'False', name);
      assert.match(allowedCond(v)!.message, message);
    }
    // In a namespace only infra allows: its first assignable address, .1, is in the pod CIDR (.0-.3),
    // .9 is the node's and .2 a VIP's: the lowest free one is .4.
    kubectl(['create', 'namespace', 'infra']);
    lbvip('infra', 'jumps');
    const j = await decided('infra', 'jumps', 'assigned', (v) => v.status?.address !== undefined);
    assert.equal(j.status!.address, '198.19.4.4');
    // A node taking an address in use: the VIP is refused from then on.
    kubectl(['patch', 'node', 'worker-1', '--subresource=status', '--type=merge', '-p',
      JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: '198.19.4.4' }] } })]);
    const taken = await decided('infra', 'jumps', 'refused once a node has its address', (v) => allowedCond(v)!.status === 'False');
    assert.equal(allowedCond(taken)!.reason, 'AddressRevoked');
    for (const n of ['node-ip', 'pod-cidr', 'cluster-ip']) kubectl(['delete', 'lbvip', n, '-n', 'shop']);
    kubectl(['delete', 'lbvip', 'jumps', '-n', 'infra']);
    kubectl(['delete', 'xdpap', 'infra']);
    kubectl(['delete', 'node', 'worker-1']);
  });

  test('overlapping pools: the newer is refused, named in its status; its addresses serve no VIP until the overlap goes', async (t) => {
    if (!f.need(t)) return;
    kubectl(['apply', '-f', '-'], poolManifest('blog-pool', ['198.19.0.128/25'], { matchLabels: { 'kubernetes.io/metadata.name': 'blog' } }));
    const refused = await waitUntil('the newer overlapping pool refused', () => pool('blog-pool'),
      (p) => p.status?.conditions?.find((c) => c.type === 'Accepted')?.status === 'False');
    const accepted = refused.status!.conditions!.find((c) => c.type === 'Accepted')!;
    assert.equal(accepted.reason, 'Overlaps');
    assert.equal(accepted.message, 'refused, its addresses serve no VIP: overlaps: 198.19.0.128/25 overlaps 198.19.0.0/24 of the older pool shop');
    assert.equal(pool('shop').status!.conditions!.find((c) => c.type === 'Accepted')!.status, 'True', 'the older pool keeps working');
    assert.match(kubectl(['get', 'xdpap', 'blog-pool', '--no-headers']), /^blog-pool\s.*False/);
    lbvip('blog', 'in-overlap', '198.19.0.200');
    const v = await decided('blog', 'in-overlap', 'refused');
    assert.equal(allowedCond(v)!.reason, 'NamespaceNotAllowed', 'the address is in the accepted pool shop, which blog may not use');
    // The older pool shrinks away: the newer one is accepted, the VIP allowed.
    kubectl(['apply', '-f', '-'], poolManifest('shop', ['198.19.0.0/25', '2001:db8:19::/64'], SHOP));
    await decided('blog', 'in-overlap', 'allowed once the overlap is gone', (x) => allowedCond(x)!.status === 'True');
    assert.equal(getVip(f.cp, 'blog', 'in-overlap').status!.addressPool, 'blog-pool');
    kubectl(['delete', 'lbvip', 'in-overlap', '-n', 'blog']);
    kubectl(['delete', 'xdpap', 'blog-pool']);
    kubectl(['apply', '-f', '-'], poolManifest('shop', ['198.19.0.0/24', '2001:db8:19::/64'], SHOP));
  });

  test('a VIP whose address is not allowed holds no claim: an older squatter does not block the rightful namespace', async (t) => {
    if (!f.need(t)) return;
    lbvip('blog', 'squatter', '198.19.0.50');
    await decided('blog', 'squatter', 'refused', (v) => allowedCond(v)!.status === 'False');
    lbvip('shop', 'rightful', '198.19.0.50');
    const v = await decided('shop', 'rightful', 'allowed and not in conflict', (x) => allowedCond(x)!.status === 'True');
    assert.equal(condition(v, 'Conflict')!.status, 'False');
    kubectl(['delete', 'lbvip', 'squatter', '-n', 'blog']);
    kubectl(['delete', 'lbvip', 'rightful', '-n', 'shop']);
  });
});
