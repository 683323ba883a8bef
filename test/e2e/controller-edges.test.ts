/**
 * The controller on a real kube-apiserver where a new user finds the edges:
 * backends that all weigh 0, a bad weight annotation, more Ready pods than
 * status.backends may hold, an XdpBalancer whose DaemonSet the API refuses,
 * and a namespace being deleted. No kubelet: the test sets pod status itself.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import type { LoadBalancerVip } from '../../src/api/loadbalancervip.js';
import type { XdpBalancer } from '../../src/api/xdpbalancer.js';
import { Controller } from '../../src/controller/controller.js';
import { controlPlaneFixture } from './control-plane/fixture.js';
import { applyPod, condition, eventsOf, getVip, waitUntil } from './control-plane/objects.js';

const NS = 'gaps';
const AGENT_NS = 'xdplb-system';
const DRAIN_SECONDS = 2;
/** status.backends holds 4096; a test-sized limit shows the same behaviour with a few pods. */
const MAX_LISTED = 3;

describe('controller edge cases on a real kube-apiserver', () => {
  let controller: Controller;
  const f = controlPlaneFixture(
    async (cp) => {
      for (const ns of [NS, AGENT_NS, 'doomed']) cp.kubectl(['create', 'namespace', ns]);
      cp.kubectl(['apply', '-f', '-'], `apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: default}\nspec: {image: registry.example/xdplb:1, drainSeconds: ${DRAIN_SECONDS}}\n`);
      const kc = new KubeConfig();
      kc.loadFromFile(cp.kubeconfig);
      controller = new Controller(kc, { namespace: AGENT_NS, identity: 'test', maxListedBackends: MAX_LISTED });
      await controller.start();
    },
    async () => {
      await controller?.stop();
    },
  );
  const kubectl = (args: string[], input?: string) => f.cp.kubectl(args, input);
  let addresses = 0; // each VIP its own address: no conflicts among them
  const vip = (name: string, app: string, namespace = NS) => kubectl(['apply', '-f', '-'],
    `apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: ${name}, namespace: ${namespace}}\nspec: {address: 198.19.3.${++addresses}, ports: [{port: 80}], backendSelector: {matchLabels: {app: ${app}}}}\n`);
  const untilVip = (name: string, what: string, ok: (v: LoadBalancerVip) => boolean, namespace = NS) =>
    waitUntil(what, () => getVip(f.cp, namespace, name), ok);
  const reconcileErrors = async (kind: string) => {
    const m = await controller.metrics.reconciles.get();
    return m.values.find((v) => v.labels.kind === kind && v.labels.result === 'error')?.value ?? 0;
  };

  test('backends that all weigh 0 take no new connection: not available, not Ready', async (t) => {
    if (!f.need(t)) return;
    for (const [i, name] of ['zero-1', 'zero-2'].entries()) {
      applyPod(f.cp, NS, name, `198.18.51.${i + 1}`, { labels: { app: 'zero' }, annotations: { 'xdplb.dev/weight': '0' } });
    }
    vip('zero', 'zero');
    const v = await untilVip('zero', 'both pods listed, all weight 0', (x) => x.status?.readyBackends === 2 && !!condition(x, 'BackendsAvailable'));
    assert.equal(condition(v, 'BackendsAvailable')!.status, 'False');
    assert.equal(condition(v, 'BackendsAvailable')!.reason, 'AllWeightsZero');
    assert.equal(condition(v, 'Ready')!.status, 'False');
    assert.match(condition(v, 'Ready')!.message, /no new connection can be served/);
    kubectl(['annotate', 'pod', 'zero-1', '-n', NS, 'xdplb.dev/weight=1', '--overwrite']);
    await untilVip('zero', 'a pod with weight 1 makes backends available', (x) => condition(x, 'BackendsAvailable')?.status === 'True');
  });

  test('a bad weight annotation is one Warning per pod and value, not one per status change', async (t) => {
    if (!f.need(t)) return;
    const badWeights = () => eventsOf(f.cp, NS, 'weights').filter((e) => e.startsWith('Warning BadWeight'));
    applyPod(f.cp, NS, 'heavy', '198.18.52.1', { labels: { app: 'weights' }, annotations: { 'xdplb.dev/weight': 'heavy' } });
    vip('weights', 'weights');
    await waitUntil('the bad annotation is reported', badWeights, (e) => e.length === 1);
    // Status changes that have nothing to do with the annotation.
    applyPod(f.cp, NS, 'light-1', '198.18.52.2', { labels: { app: 'weights' } });
    await untilVip('weights', 'light-1 joins', (x) => x.status?.readyBackends === 2);
    applyPod(f.cp, NS, 'light-2', '198.18.52.3', { labels: { app: 'weights' } });
    await untilVip('weights', 'light-2 joins', (x) => x.status?.readyBackends === 3);
    // A new bad value is a pod change: reported once more. Earlier Events were sent before it.
    kubectl(['annotate', 'pod', 'heavy', '-n', NS, 'xdplb.dev/weight=heavier', '--overwrite']);
    const reported = await waitUntil('the new value is reported', badWeights, (e) => e.some((x) => x.includes('"heavier"')));
    assert.deepEqual(reported.map((e) => /"(heav\w+)"/.exec(e)?.[1]).sort(), ['heavier', 'heavy'], reported.join('\n'));
  });

  test('QUIC server ids: each pod\'s own reaches status; a bad or shared one is a Warning naming the pod', async (t) => {
    if (!f.need(t)) return;
    const warnings = () => eventsOf(f.cp, NS, 'quic').filter((e) => e.startsWith('Warning BadQuicServerId'));
    const id = (value: string) => ({ labels: { app: 'quic' }, annotations: { 'xdplb.dev/quic-server-id': value } });
    applyPod(f.cp, NS, 'quic-1', '198.18.54.1', id('7'));
    applyPod(f.cp, NS, 'quic-2', '198.18.54.2', id('70000'));
    vip('quic', 'quic');
    let v = await untilVip('quic', 'both listed', (x) => x.status?.readyBackends === 2);
    assert.deepEqual(v.status!.backends!.map((b) => [b.pod, b.quicServerId]), [['quic-1', 7], ['quic-2', undefined]]);
    let w = await waitUntil('the out-of-range id is reported', warnings, (e) => e.length === 1);
    assert.match(w[0]!, /pod quic-2: QUIC server id annotation "70000" routes nothing/);
    applyPod(f.cp, NS, 'quic-3', '198.18.54.3', id('7')); // as a pod template would give every replica
    v = await untilVip('quic', 'quic-3 listed', (x) => x.status?.readyBackends === 3);
    w = await waitUntil('both holders of 7 are reported', warnings, (e) => e.length === 3);
    assert.ok(w.some((e) => /pod quic-1: .*"7 \(shared with quic-3\)"/.test(e)) && w.some((e) => /pod quic-3: .*"7 \(shared with quic-1\)"/.test(e)), w.join('\n'));
  });

  test('more Ready pods than status.backends may hold: it lists its limit, counts all, and drains still end', async (t) => {
    if (!f.need(t)) return;
    for (const i of [1, 2, 3, 4]) applyPod(f.cp, NS, `many-${i}`, `198.18.53.${i}`, { labels: { app: 'many' } });
    vip('many', 'many');
    let v = await untilVip('many', 'three listed, four counted', (x) => x.status?.readyBackends === 4 && x.status.backends?.length === MAX_LISTED);
    assert.equal(v.status!.unlistedBackends, 1);
    assert.deepEqual(v.status!.backends!.map((b) => b.pod), ['many-1', 'many-2', 'many-3']);
    assert.equal(condition(v, 'BackendsAvailable')!.reason, 'ListFull');
    assert.match(condition(v, 'BackendsAvailable')!.message, /1 not in status\.backends, which is full/);
    // A listed pod stops being Ready: it drains in its place, then leaves, and the waiting pod gets in.
    applyPod(f.cp, NS, 'many-1', '198.18.53.1', { labels: { app: 'many' }, ready: false });
    v = await untilVip('many', 'many-1 drains', (x) => !!x.status?.backends?.some((b) => b.pod === 'many-1' && b.draining));
    assert.equal(v.status!.unlistedBackends, 1);
    v = await untilVip('many', `after ${DRAIN_SECONDS} s many-1 is gone and many-4 listed`,
      (x) => x.status?.unlistedBackends === 0 && !!x.status.backends?.some((b) => b.pod === 'many-4'));
    assert.deepEqual(v.status!.backends!.map((b) => b.pod), ['many-2', 'many-3', 'many-4']);
    assert.equal(condition(v, 'BackendsAvailable')!.reason, 'ReadyPods');
  });

  test('an XdpBalancer whose DaemonSet the API refuses: a condition and an Event with its message, and no retries', async (t) => {
    if (!f.need(t)) return;
    const errorsBefore = await reconcileErrors('XdpBalancer');
    // The CRD takes it; a DaemonSet does not (Exists tolerates any value: it must have none).
    kubectl(['apply', '-f', '-'], 'apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: badtol}\nspec: {image: registry.example/xdplb:1, tolerations: [{key: k, operator: Exists, value: v}]}\n');
    const get = () => JSON.parse(kubectl(['get', 'xdpbalancer', 'badtol', '-o', 'json'])) as XdpBalancer;
    const b = await waitUntil('the refusal is in its status', get, (x) => x.status?.conditions?.[0]?.reason === 'InvalidDaemonSet');
    const message = b.status!.conditions![0]!.message;
    assert.match(message, /^the API server refused its agent DaemonSet: DaemonSet\.apps "xdplb-agent-badtol" is invalid: .*tolerations.*value must be empty/);
    assert.doesNotMatch(message, /HTTP-Code|\\"/, 'the server message, not the client exception');
    const events = await waitUntil('a Warning Event', () => eventsOf(f.cp, 'default', 'badtol'), (e) => e.length > 0);
    assert.match(events[0]!, /^Warning InvalidDaemonSet: the API server refused/);
    assert.equal(await reconcileErrors('XdpBalancer'), errorsBefore, 'refused, not failed: nothing retried');
    // Fixed: the DaemonSet is made.
    kubectl(['patch', 'xdpbalancer', 'badtol', '--type=merge', '-p', '{"spec":{"tolerations":[{"key":"k","operator":"Exists"}]}}']);
    await waitUntil('the DaemonSet of the fixed balancer', get, (x) => x.status?.conditions?.[0]?.reason === 'NoNodes');
    assert.ok(kubectl(['get', 'ds', 'xdplb-agent-badtol', '-n', AGENT_NS, '-o', 'name']));
  });

  test('an XdpBalancer with the longest name the CRD takes gets its DaemonSet', async (t) => {
    if (!f.need(t)) return;
    const name = `long-${'n'.repeat(58)}`; // 63 characters: the agent pods' label value, the DaemonSet name 75
    kubectl(['apply', '-f', '-'], `apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: ${name}}\nspec: {image: registry.example/xdplb:1}\n`);
    await waitUntil('its DaemonSet', () => kubectl(['get', 'ds', '-n', AGENT_NS, '-o', 'name']), (out) => out.includes(`xdplb-agent-${name}`));
  });

  test('a namespace being deleted: Events there are dropped quietly, nothing is retried', async (t) => {
    if (!f.need(t)) return;
    applyPod(f.cp, 'doomed', 'last', '198.18.54.1', { labels: { app: 'last' } });
    vip('doomed', 'last', 'doomed');
    await untilVip('doomed', 'its pod is the backend', (x) => x.status?.readyBackends === 1, 'doomed');
    await waitUntil('its Event was recorded', () => eventsOf(f.cp, 'doomed', 'doomed'), (e) => e.some((x) => x.includes('added last')));
    const errorsBefore = await reconcileErrors('LoadBalancerVip');
    const { failed } = controller.events.counts;
    // No namespace controller here: the namespace stays Terminating with everything in it.
    kubectl(['delete', 'namespace', 'doomed', '--wait=false']);
    await waitUntil('the namespace is terminating', () => kubectl(['get', 'namespace', 'doomed', '-o', 'jsonpath={.status.phase}']), (p) => p === 'Terminating');
    applyPod(f.cp, 'doomed', 'last', '198.18.54.1', { labels: { app: 'last' }, ready: false });
    await waitUntil('the BackendsChanged Event is dropped', () => controller.events.counts.dropped, (n) => n > 0);
    assert.equal(controller.events.counts.failed, failed, 'no Event failed otherwise (nothing logged as a warning)');
    await untilVip('doomed', 'the status is still written there: updates are allowed', (x) => !!x.status?.backends?.[0]?.draining, 'doomed');
    assert.equal(await reconcileErrors('LoadBalancerVip'), errorsBefore, 'no reconcile failed');
  });
});
