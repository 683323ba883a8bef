/**
 * The README's install commands, run as written with the real kubectl
 * against a real kube-apiserver: every `kubectl apply -k|-f deploy/...`
 * line of the README must work on a fresh cluster. No controller runs: what
 * is checked is that the manifests apply, not what they then do.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { controlPlaneFixture } from './control-plane/fixture.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** `kubectl apply -k deploy/` and the like, with or without a `$ ` prompt, without the comment. */
const README_APPLY = /^(?:\$ )?kubectl (apply -[kf] deploy\/\S*)/;
/** The Prometheus Operator's kind, as far as the API server needs it to store a ServiceMonitor. */
const SERVICEMONITOR_CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`;

describe('the README install commands on a real kube-apiserver', () => {
  const f = controlPlaneFixture((cp) => {
    cp.kubectl(['apply', '-f', '-'], SERVICEMONITOR_CRD);
    cp.kubectl(['wait', '--for', 'condition=established', '--timeout=60s', 'crd/servicemonitors.monitoring.coreos.com']);
  }, undefined, { openPool: false });
  const kubectl = (args: string[]) => execFileSync(f.cp.bin.kubectl, ['--kubeconfig', f.cp.kubeconfig, ...args],
    { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  test('kubectl kustomize builds deploy/prometheus/ (it includes no directory that contains it): ServiceMonitors and xdplb-metrics-reader', (t) => {
    if (!f.need(t)) return;
    const kinds = kubectl(['kustomize', 'deploy/prometheus/']).match(/^kind: \w+$/gm);
    assert.deepEqual(kinds, ['kind: ClusterRole', 'kind: ServiceMonitor', 'kind: ServiceMonitor'], 'the ServiceMonitors and the RBAC their bearer token needs');
  });

  test('every kubectl apply of deploy/ in the README works, in order, on a fresh cluster', (t) => {
    if (!f.need(t)) return;
    const commands = readFileSync(`${REPO}README.md`, 'utf8').split('\n').map((l) => README_APPLY.exec(l)?.[1]).filter((c): c is string => !!c);
    for (const want of ['apply -k deploy/', 'apply -k deploy/prometheus/', 'apply -f deploy/examples/']) assert.ok(commands.includes(want), `the README runs ${want}: ${commands}`);
    for (const command of commands) {
      try {
        kubectl(command.split(' '));
      } catch (err) {
        assert.fail(`kubectl ${command}: ${(err as { stderr?: string }).stderr ?? err}`);
      }
    }
    assert.equal(kubectl(['get', 'servicemonitors', '-n', 'xdplb-system', '-o', 'name']).split('\n').filter(Boolean).length, 2);
    assert.equal(kubectl(['get', 'lbvip', 'web', '-n', 'shop', '-o', 'jsonpath={.spec.address}']), '198.19.0.10');
    assert.equal(kubectl(['get', 'xdpbalancer', 'edge', '-o', 'jsonpath={.spec.nic}']), 'eth1');
    assert.equal(kubectl(['get', 'svc', 'api', '-n', 'shop', '-o', 'jsonpath={.spec.loadBalancerClass}']), 'xdplb.dev/xdp');
    assert.deepEqual(kubectl(['get', 'xdpap', '-o', 'jsonpath={.items[*].metadata.name}']).split(' ').sort(), ['edge', 'shop']);
  });
});
