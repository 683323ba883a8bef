/**
 * `xdplb trace --node` as a tenant uses it, on a real API server: the CLI
 * reads the address, port and certificate fingerprint the node's agent
 * published in its XdpBalancer's status.nodes entry, connects there over
 * HTTPS, checks the certificate before it sends the user's token, and the
 * agent reviews the token (TokenReview, SubjectAccessReview with the agent's
 * own service account). The tenant holds xdplb-trace in her namespace and
 * xdplb-trace-endpoints, and no access to pods. The trace server runs in
 * this process on a stand-in tracer (no BPF) with the agent's TLS code.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import type { TraceEvent } from '../../src/api/trace.js';
import type { InstalledVipRef } from '../../src/agent/dataplane/dataplane.js';
import { selectedVips } from '../../src/agent/trace/trace-rules.js';
import { serveTrace, type TraceSessions } from '../../src/agent/trace/trace-server.js';
import type { TraceSessionOptions } from '../../src/agent/trace/tracer.js';
import { KubeAccessReviewer } from '../../src/lib/access-review.js';
import { servingTls } from '../../src/lib/serving-tls.js';
import type { ControlPlane, TestServiceAccount } from './control-plane/control-plane.js';
import { controlPlaneFixture } from './control-plane/fixture.js';
import { XDPLB_CLI } from '../support/trace-process.js';

const DEPLOY = fileURLToPath(new URL('../../../deploy/', import.meta.url));
const VIP: InstalledVipRef = { id: '198.19.0.10:80/TCP', num: 1, address: '198.19.0.10', port: 80, proto: 6 };
const NODE = 'node-a';

/** Sessions open on it; each gets one record of its VIP and ends (the CLI's --count 1). */
class OneRecordTracer implements TraceSessions {
  readonly defaultRate = 1000;
  opened = 0;
  selected(filter: Parameters<TraceSessions['selected']>[0]) {
    return selectedVips(filter, [VIP]);
  }
  open(opts: TraceSessionOptions): () => void {
    this.opened++;
    setTimeout(() => opts.onEvent({ type: 'packet', vip: VIP.id, src: '198.18.10.2', dst: VIP.address, verdict: 'tx', reason: 'tx_encap' } as TraceEvent), 100);
    return () => undefined;
  }
}

let cp: ControlPlane;
let trace: Server;
const tracer = new OneRecordTracer();
const tls = servingTls({ commonName: `xdplb-agent ${NODE}`, ipAddresses: ['127.0.0.1'] });

/** Writes node-a's entry as its agent would (the controller's identity here: the admission policy is not under test). */
function publish(fingerprint: string): void {
  const endpoints = { address: '127.0.0.1', tracePort: (trace.address() as AddressInfo).port, certificateSHA256: fingerprint };
  cp.kubectl(['patch', 'xdpbalancer', 'default', '--subresource=status', '--type=merge', '-p',
    JSON.stringify({ status: { nodes: [{ node: NODE, updated: new Date().toISOString(), endpoints }] } })]);
}

const fixture = controlPlaneFixture(async (c) => {
  cp = c;
  for (const ns of ['xdplb-system', 'tenant-a']) cp.kubectl(['create', 'namespace', ns]);
  cp.kubectl(['apply', '-f', `${DEPLOY}rbac-agent-auth.yaml`, '-f', `${DEPLOY}rbac-trace.yaml`]);
  cp.kubectl(['-n', 'tenant-a', 'create', 'rolebinding', 'alice-trace', '--clusterrole=xdplb-trace', '--user=alice']);
  cp.kubectl(['create', 'clusterrolebinding', 'alice-trace-endpoints', '--clusterrole=xdplb-trace-endpoints', '--user=alice']);
  // carol may trace tenant-a's VIPs but was not given the endpoints role.
  cp.kubectl(['-n', 'tenant-a', 'create', 'rolebinding', 'carol-trace', '--clusterrole=xdplb-trace', '--user=carol']);
  cp.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'xdplb.dev/v1alpha1', kind: 'XdpBalancer', metadata: { name: 'default' },
    spec: { image: 'registry.example/xdplb:0.1.0' } }));
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigAs('xdplb-system/xdplb-agent'));
  const owners = () => [{ namespace: 'tenant-a', name: 'web' }];
  trace = await serveTrace(tracer, '127.0.0.1:0', NODE, { reviewer: new KubeAccessReviewer(kc), owners }, tls);
}, async () => {
  trace?.close();
});

/** Runs `xdplb trace ARGS` as a user; resolves with its exit code and output. */
function cli(user: TestServiceAccount, args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [XDPLB_CLI, 'trace', '--kubeconfig', cp.kubeconfigAs(user), ...args], { timeout: 120_000 }, (error, out, err) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, out, err }));
  });
}

describe('xdplb trace --node: straight to the agent, over HTTPS pinned by the published fingerprint', () => {
  test("a tenant traces her VIP on the node with no access to pods; another namespace's VIP is refused", async (t) => {
    if (!fixture.need(t)) return;
    publish(tls.fingerprint256);
    const canForward = (() => {
      try {
        return cp.kubectl(['auth', 'can-i', 'create', 'pods/portforward', '-n', 'xdplb-system', '--as', 'alice']).trim();
      } catch (err) {
        return String((err as { stdout?: string }).stdout).trim(); // "no" exits 1
      }
    })();
    assert.equal(canForward, 'no', 'alice holds no port-forward');
    const ok = await cli('alice', ['--node', NODE, '--vip', '198.19.0.10:80/TCP', '--count', '1', '--json']);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.err, new RegExp(`tracing on ${NODE}`));
    assert.equal(JSON.parse(ok.out.trim().split('\n')[0]!).vip, VIP.id);
    const other = await cli('alice', ['--node', NODE, '--vip', '198.19.0.99:80/TCP', '--count', '1']);
    assert.equal(other.code, 1, other.err);
    assert.match(other.err, /HTTP 403/);
  });

  test('a certificate other than the published one: the CLI stops before the token is sent', async (t) => {
    if (!fixture.need(t)) return;
    const before = tracer.opened;
    publish(servingTls({ commonName: 'impostor', ipAddresses: ['127.0.0.1'] }).fingerprint256);
    const r = await cli('alice', ['--node', NODE, '--vip', '198.19.0.10:80/TCP', '--count', '1']);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /presented a certificate with SHA-256 fingerprint .* not the .* its agent published: the token was not sent/);
    assert.equal(tracer.opened, before, 'no session reached the agent');
    publish(tls.fingerprint256);
  });

  test('without xdplb-trace-endpoints the CLI says which role reads the endpoints; a node with no entry is named', async (t) => {
    if (!fixture.need(t)) return;
    const carol = await cli('carol', ['--node', NODE, '--vip', '198.19.0.10:80/TCP', '--count', '1']);
    assert.equal(carol.code, 1, carol.err);
    assert.match(carol.err, /XdpBalancer default: forbidden: reading it needs the xdplb-trace-endpoints role/);
    const missing = await cli('alice', ['--node', 'node-z', '--vip', '198.19.0.10:80/TCP', '--count', '1']);
    assert.equal(missing.code, 1, missing.err);
    assert.match(missing.err, new RegExp(`on node node-z has published no trace endpoint \\(no status entry for that node\\); nodes that have: ${NODE}`));
  });
});
