/**
 * Unmodified pods as backends on a real cluster (issue 15, delivery Node),
 * run by test/e2e/kind/run.sh after the operator scenarios. Two pods of the
 * e2e image run the lab's server on 0.0.0.0:8080 as a non-root user with
 * every capability dropped: no VIP, no decap, nothing BPF. A Service of type
 * LoadBalancer maps port 80 to targetPort 8080. The client reaches VIP:80
 * through the balancer workers; the xdplb-backend DaemonSet on each pod's node
 * decapsulates and translates, and the pods' replies leave as VIP:80. The
 * kubelet's TCP readiness probe on 8080 must keep working beside it (its
 * answers are not rewritten).
 *
 * It leaves things as it found them: the Service and its pods deleted.
 * Environment as cluster.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LoadBalancerVip } from '../../../src/api/loadbalancervip.js';
import { DEFAULT_BACKEND_METRICS_PORT } from '../../../src/agent/backend/backend-mode.js';
import { KindOperatorEnv } from '../operator/kind-env.js';
import { AGENT_NAMESPACE, waitFor } from '../operator/lab-env.js';
import { type Samples, sum } from '../../support/prometheus.js';

const HTTP = 80;
const TARGET_PORT = 8080;
const SERVICE = 'plain-svc';
const APP = 'plain';
const PODS = ['plain-1', 'plain-2'];
const SERVER_PROGRAM = '/app/dist/test/lab/programs/server.js';
const E2E_IMAGE = process.env.XDPLB_E2E_IMAGE ?? 'xdplb-e2e:dev';
/** The image's unprivileged user (deploy/Dockerfile runs the controller as it too). */
const NON_ROOT_UID = 65532;
const BACKEND_SELECTOR = 'app.kubernetes.io/component=backend';
const WAIT_MS = 120_000;
const CONNECTIONS = 300;

describe('kind: unmodified pods as backends (delivery Node, port 80 -> targetPort 8080)', () => {
  let env: KindOperatorEnv;
  const podNode = (pod: string) => env.kubectl(['get', 'pod', pod, '-n', env.namespace, '-o', 'jsonpath={.spec.nodeName}']);
  const backendMetrics = (node: string): Samples => env.systemPodMetrics(env.systemPodOn(node, BACKEND_SELECTOR), DEFAULT_BACKEND_METRICS_PORT);
  /** Packets of one verdict the node's backend programs counted, all reasons. */
  const counted = (m: Samples, verdict: string) => sum(m, 'xdplb_backend_packets_total', { verdict });

  before(async () => {
    env = await KindOperatorEnv.up();
    for (const name of PODS) {
      env.kubectl(['apply', '-f', '-'], JSON.stringify({
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name, namespace: env.namespace, labels: { app: APP } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{
            name: 'server', image: E2E_IMAGE, imagePullPolicy: 'Never',
            command: ['node', SERVER_PROGRAM, JSON.stringify({ name, tcp: [{ address: '0.0.0.0', port: TARGET_PORT }], udp: [] })],
            // What a restricted pod security profile allows: nothing more.
            securityContext: { runAsNonRoot: true, runAsUser: NON_ROOT_UID, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] },
              seccompProfile: { type: 'RuntimeDefault' } },
            // The kubelet probes the target port from the node: its answers must not be rewritten to the VIP.
            readinessProbe: { tcpSocket: { port: TARGET_PORT }, periodSeconds: 1 },
          }],
        },
      }));
    }
    await waitFor('both plain pods Ready', () => PODS.map((p) => env.podReady(p)), (r) => r.every((x) => x === true), WAIT_MS, 1000);
  });

  after(async () => {
    const quiet = (f: () => unknown) => { try { f(); } catch { /* best effort */ } };
    quiet(() => env.kubectl(['delete', 'svc', SERVICE, '-n', env.namespace, '--ignore-not-found']));
    for (const p of PODS) quiet(() => env.kubectl(['delete', 'pod', p, '-n', env.namespace, '--grace-period=0', '--force', '--ignore-not-found']));
    await env?.down();
  });

  test('a Service of type LoadBalancer, port 80 -> 8080, served by the pods through the backend DaemonSet; probes unaffected', async (t) => {
    env.kubectl(['rollout', 'status', '-n', AGENT_NAMESPACE, 'ds/xdplb-backend', '--timeout=180s']);
    const nodes = [...new Set(PODS.map(podNode))];
    const before = new Map(nodes.map((n) => [n, counted(backendMetrics(n), 'delivered')]));
    env.kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: SERVICE, namespace: env.namespace, annotations: { 'xdplb.dev/address': env.vip4 } },
      spec: { type: 'LoadBalancer', loadBalancerClass: 'xdplb.dev/xdp', selector: { app: APP },
        ports: [{ name: 'http', protocol: 'TCP', port: HTTP, targetPort: TARGET_PORT }] },
    }));
    await waitFor('the EXTERNAL-IP', () => env.kubectl(['get', 'svc', SERVICE, '-n', env.namespace, '-o', 'jsonpath={.status.loadBalancer.ingress[*].ip}']),
      (ip) => ip === env.vip4, WAIT_MS);
    const vip = await waitFor('its VIP Ready, delivery Node, 80 -> 8080', () => JSON.parse(env.kubectl(['get', 'lbvip', SERVICE, '-n', env.namespace, '-o', 'json'])) as LoadBalancerVip,
      (v) => v.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' && v.status?.readyBackends === PODS.length, WAIT_MS, 1000);
    assert.equal(vip.spec.delivery, 'Node');
    assert.deepEqual(vip.spec.ports.map((p) => [p.port, p.targetPort]), [[HTTP, TARGET_PORT]]);
    t.diagnostic(`kubectl get svc:\n${env.kubectl(['get', 'svc', SERVICE, '-n', env.namespace]).trimEnd()}`);
    t.diagnostic(`kubectl get lbvip:\n${env.kubectl(['get', 'lbvip', SERVICE, '-n', env.namespace]).trimEnd()}`);

    const served = await waitFor(`${CONNECTIONS} connections to ${env.vip4}:${HTTP}, both pods answering`, () => env.connect(env.vip4, HTTP, CONNECTIONS),
      (r) => r.failures === 0 && PODS.every((p) => !!r.byReal[p]), WAIT_MS, 1000);
    t.diagnostic(`${CONNECTIONS} connections: ${JSON.stringify(served.byReal)}, ${served.failures} failed`);
    for (const n of nodes) {
      const m = backendMetrics(n);
      assert.ok(counted(m, 'delivered') > before.get(n)!, `${n}'s backend programs delivered the tunnelled packets`);
      assert.ok(counted(m, 'rewritten') > 0, `${n}'s backend programs rewrote the pods' replies`);
      t.diagnostic(`${n}: delivered ${counted(m, 'delivered')}, rewritten ${counted(m, 'rewritten')}, passed ${counted(m, 'pass')}`);
    }
    // The kubelet kept probing 8080 from the node throughout: both pods still Ready.
    for (const p of PODS) {
      assert.equal(env.podReady(p), true, `${p} still Ready`);
    }

    env.kubectl(['delete', 'svc', SERVICE, '-n', env.namespace]);
    await waitFor('the Service\'s VIP gone', () => env.kubectl(['get', 'lbvip', '-n', env.namespace, '--no-headers', '--ignore-not-found', SERVICE]).trim(), (x) => x === '', WAIT_MS);
  });
});
