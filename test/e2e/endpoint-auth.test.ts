/**
 * The agent's /metrics and /trace against a real kube-apiserver, as deployed
 * (--metrics-auth kubernetes, --trace-auth kubernetes): tokens reviewed by
 * TokenReview, requests by SubjectAccessReview, with the agent's own service
 * account and deploy/'s RBAC. The servers run in this process; the trace
 * server on a stand-in tracer (no BPF), so no lab is needed. The controller
 * runs as its own process, as deployed (--metrics-auth kubernetes, its service
 * account); the backend agent's server (its agent needs the kernel) as the
 * balancer agent's does here, reviewing with the backend's service account.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import type { IncomingMessage, Server } from 'node:http';
import { get } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { Counter, Registry } from 'prom-client';
import type { TraceEvent } from '../../src/api/trace.js';
import type { InstalledVipRef } from '../../src/agent/dataplane/dataplane.js';
import { type VipOwner } from '../../src/agent/trace/trace-access.js';
import { selectedVips } from '../../src/agent/trace/trace-rules.js';
import { serveTrace, type TraceSessions } from '../../src/agent/trace/trace-server.js';
import type { TraceSessionOptions } from '../../src/agent/trace/tracer.js';
import { KubeAccessReviewer } from '../../src/lib/access-review.js';
import { serveMetrics } from '../../src/lib/metrics-server.js';
import { servingTls } from '../../src/lib/serving-tls.js';
import { type ControlPlane, freePort } from './control-plane/control-plane.js';
import { controlPlaneFixture } from './control-plane/fixture.js';
import { XDPLB_CLI } from '../support/trace-process.js';

const DEPLOY = fileURLToPath(new URL('../../../deploy/', import.meta.url));
const CONTROLLER = fileURLToPath(new URL('../../src/controller/main.js', import.meta.url));
const IPPROTO_TCP = 6;
const VIP_A: InstalledVipRef = { id: '198.19.0.10:80/TCP', num: 1, address: '198.19.0.10', port: 80, proto: IPPROTO_TCP };
const VIP_B: InstalledVipRef = { id: '198.19.0.20:80/TCP', num: 2, address: '198.19.0.20', port: 80, proto: IPPROTO_TCP };
const OWNERS = new Map<string, VipOwner[]>([[VIP_A.id, [{ namespace: 'tenant-a', name: 'web' }]], [VIP_B.id, [{ namespace: 'tenant-b', name: 'web' }]]]);

/** The Tracer's part the endpoint uses, with the sessions it opened. */
class StandInTracer implements TraceSessions {
  readonly defaultRate = 1000;
  readonly sessions = new Set<TraceSessionOptions>();
  selected(filter: Parameters<TraceSessions['selected']>[0]) {
    return selectedVips(filter, [VIP_A, VIP_B]);
  }
  open(opts: TraceSessionOptions): () => void {
    this.sessions.add(opts);
    return () => this.sessions.delete(opts);
  }
  /** A record of `vip` to every open session (the real tracer's matcher is the filter's: a session of A sees only A's). */
  emit(vip: InstalledVipRef): void {
    const e = { type: 'packet', vip: vip.id, src: '198.18.10.2', dst: vip.address } as TraceEvent;
    for (const s of this.sessions) s.onEvent(e);
  }
}

const base = (s: Server) => `https://127.0.0.1:${(s.address() as AddressInfo).port}`;
/** As deployed: endpoints that review tokens serve HTTPS (a self-signed certificate, as the agent makes at start). */
const tls = servingTls({ commonName: 'xdplb-agent node-a', ipAddresses: ['127.0.0.1'] });

function tokenOf(kubeconfig: string): string {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return kc.getCurrentUser()!.token!;
}

function request(url: string, token?: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    // Self-signed and on loopback: the fingerprint pinning is xdplb trace's (test/unit/agent-connection.test.ts).
    get(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, rejectUnauthorized: false }, resolve).on('error', reject);
  });
}

async function fetchText(url: string, token?: string): Promise<{ status: number; body: string }> {
  const res = await request(url, token);
  let body = '';
  for await (const chunk of res) body += String(chunk);
  return { status: res.statusCode ?? 0, body };
}

/** An open trace stream: its status and a reader of its lines. */
async function openTrace(url: string, token?: string) {
  const res = await request(url, token);
  const lines = createInterface({ input: res })[Symbol.asyncIterator]();
  return {
    status: res.statusCode ?? 0,
    next: async () => JSON.parse(((await lines.next()).value as string)) as { type: string; vip?: string },
    close: () => res.destroy(),
  };
}

let cp: ControlPlane;
const servers: Server[] = [];
let metrics: Server;
let trace: Server;
let backendMetrics: Server;
let controller: ChildProcess | undefined;
let controllerBase = '';
let controllerLog = '';
const tracer = new StandInTracer();
const tokens: Record<string, string> = {};

const fixture = controlPlaneFixture(async (c) => {
  cp = c;
  for (const ns of ['xdplb-system', 'tenant-a', 'tenant-b', 'monitoring']) cp.kubectl(['create', 'namespace', ns]);
  cp.kubectl(['apply', '-f', `${DEPLOY}rbac-agent-auth.yaml`, '-f', `${DEPLOY}rbac-trace.yaml`, '-f', `${DEPLOY}prometheus/rbac.yaml`,
    '-f', `${DEPLOY}rbac-controller.yaml`, '-f', `${DEPLOY}rbac-controller-auth.yaml`, '-f', `${DEPLOY}backend.yaml`]);
  cp.kubectl(['create', 'clusterrolebinding', 'prometheus-xdplb-metrics', '--clusterrole=xdplb-metrics-reader', '--serviceaccount=monitoring:prometheus']);
  // alice traces tenant-a's VIPs, bob tenant-b's; neither may trace the node.
  cp.kubectl(['-n', 'tenant-a', 'create', 'rolebinding', 'alice-trace', '--clusterrole=xdplb-trace', '--user=alice']);
  cp.kubectl(['-n', 'tenant-b', 'create', 'rolebinding', 'bob-trace', '--clusterrole=xdplb-trace', '--user=bob']);
  for (const who of ['alice', 'bob', 'monitoring/prometheus', 'xdplb-system/xdplb-controller'] as const) tokens[who] = tokenOf(cp.kubeconfigAs(who));
  tokens.admin = cp.token;
  // The agent's own identity does the reviews: deploy/rbac-agent-auth.yaml must be enough.
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigAs('xdplb-system/xdplb-agent'));
  const reviewer = new KubeAccessReviewer(kc, { ttlMs: 1000 });
  const registry = new Registry();
  new Counter({ name: 'xdplb_test_total', help: 'a metric to scrape', registers: [registry] }).inc();
  metrics = await serveMetrics(registry, '127.0.0.1:0', () => null, { reviewer, tls });
  trace = await serveTrace(tracer, '127.0.0.1:0', 'node-a', { reviewer, owners: (id) => OWNERS.get(id) ?? [], limits: { sessions: 2 } }, tls);
  servers.push(metrics, trace);
  // The backend agent's identity reviews its callers: deploy/backend.yaml must be enough.
  const backendKc = new KubeConfig();
  backendKc.loadFromFile(cp.kubeconfigAs('xdplb-system/xdplb-backend'));
  const backendRegistry = new Registry();
  new Counter({ name: 'xdplb_backend_test_total', help: 'a metric to scrape', registers: [backendRegistry] }).inc();
  backendMetrics = await serveMetrics(backendRegistry, '127.0.0.1:0', () => null, { reviewer: new KubeAccessReviewer(backendKc, { ttlMs: 1000 }), tls });
  servers.push(backendMetrics);
  controllerBase = `https://127.0.0.1:${await startController(cp)}`;
}, async () => {
  for (const s of servers) s.close();
  controller?.kill('SIGTERM');
}, { openPool: false });

/** The controller as deploy/controller.yaml runs it (XDPLB_METRICS_AUTH kubernetes), with its service account; resolves with its port once it reconciles. */
async function startController(c: ControlPlane): Promise<number> {
  const port = await freePort();
  controller = spawn(process.execPath, [CONTROLLER, '--kubeconfig', c.kubeconfigAs('xdplb-system/xdplb-controller'), '--namespace', 'xdplb-system',
    '--identity', 'controller-test', '--no-leader-elect', '--no-default-balancer', '--metrics-address', `127.0.0.1:${port}`],
  { env: { PATH: process.env.PATH ?? '', XDPLB_METRICS_AUTH: 'kubernetes', XDPLB_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (d: Buffer) => { controllerLog += d.toString(); };
  controller.stdout!.on('data', keep);
  controller.stderr!.on('data', keep);
  let exited = false;
  controller.once('exit', () => { exited = true; });
  await waitUntil(() => exited || /"msg":"reconciling"/.test(controllerLog), 120_000);
  if (exited) throw new Error(`the controller exited:\n${controllerLog}`);
  return port;
}

/** no token 401, a bad one 401, a token without "get /metrics" 403, the Prometheus service account 200 with `metric`. */
async function assertMetricsAuthenticated(url: string, metric: RegExp): Promise<void> {
  const none = await fetchText(`${url}/metrics`);
  assert.equal(none.status, 401, none.body);
  assert.equal((await fetchText(`${url}/metrics`, 'not-a-token')).status, 401);
  const denied = await fetchText(`${url}/metrics`, tokens.alice);
  assert.equal(denied.status, 403, denied.body);
  assert.match(denied.body, /alice may not get \/metrics/);
  assert.equal((await fetchText(`${url}/metrics`, tokens['xdplb-system/xdplb-controller'])).status, 403);
  const scrape = await fetchText(`${url}/metrics`, tokens['monitoring/prometheus']);
  assert.equal(scrape.status, 200, scrape.body);
  assert.match(scrape.body, metric);
  assert.equal((await fetchText(`${url}/healthz`)).status, 200);
  assert.equal((await fetchText(`${url}/readyz`)).status, 200);
}

describe('authenticated agent endpoints on a real API server', () => {
  test('/metrics: no token 401, a token without "get /metrics" 403, the Prometheus service account 200; /healthz and /readyz need none', async (t) => {
    if (!fixture.need(t)) return;
    const none = await fetchText(`${base(metrics)}/metrics`);
    assert.equal(none.status, 401, none.body);
    assert.equal((await fetchText(`${base(metrics)}/metrics`, 'not-a-token')).status, 401);
    const denied = await fetchText(`${base(metrics)}/metrics`, tokens.alice);
    assert.equal(denied.status, 403, denied.body);
    assert.match(denied.body, /alice may not get \/metrics/);
    assert.equal((await fetchText(`${base(metrics)}/metrics`, tokens['xdplb-system/xdplb-controller'])).status, 403);
    const scrape = await fetchText(`${base(metrics)}/metrics`, tokens['monitoring/prometheus']);
    assert.equal(scrape.status, 200, scrape.body);
    assert.match(scrape.body, /^xdplb_test_total 1$/m);
    assert.equal((await fetchText(`${base(metrics)}/healthz`)).status, 200);
    assert.equal((await fetchText(`${base(metrics)}/readyz`)).status, 200);
  });

  test("the controller's /metrics, reviewed with its own service account: 401, 403, the Prometheus service account 200", async (t) => {
    if (!fixture.need(t)) return;
    await assertMetricsAuthenticated(controllerBase, /^xdplb_controller_leader 1$/m).catch((err: Error) => {
      throw new Error(`${err.message}\nthe controller's log:\n${controllerLog}`);
    });
  });

  test("the backend agent's /metrics, reviewed with its service account: 401, 403, the Prometheus service account 200", async (t) => {
    if (!fixture.need(t)) return;
    await assertMetricsAuthenticated(base(backendMetrics), /^xdplb_backend_test_total 1$/m);
  });

  test('/trace: no token 401, no permission 403', async (t) => {
    if (!fixture.need(t)) return;
    const q = `${base(trace)}/trace?vip=198.19.0.10:80/TCP`;
    const none = await fetchText(q);
    assert.equal(none.status, 401, none.body);
    const prom = await fetchText(q, tokens['monitoring/prometheus']);
    assert.equal(prom.status, 403, prom.body);
    assert.equal(tracer.sessions.size, 0, 'no session opened for a refused caller');
  });

  test("a user allowed in tenant-a traces tenant-a's VIP, not tenant-b's, not the whole node, not an address that is no VIP", async (t) => {
    if (!fixture.need(t)) return;
    const a = await openTrace(`${base(trace)}/trace?vip=198.19.0.10:80/TCP`, tokens.alice);
    assert.equal(a.status, 200);
    assert.deepEqual(await a.next(), { type: 'start', node: 'node-a', vips: [VIP_A.id], rate: 1000 });
    tracer.emit(VIP_B); // not alice's, whatever the session's filter lets through
    tracer.emit(VIP_A);
    assert.equal((await a.next()).vip, VIP_A.id);
    a.close();
    for (const [query, why] of [
      ['vip=198.19.0.20:80/TCP', /may not trace 198\.19\.0\.20:80\/TCP of tenant-b\/web/],
      ['vip=198.19.0.10:80/TCP&vip=198.19.0.20', /tenant-b\/web/],
      ['', /without a VIP/],
      ['client=198.18.10.0/24', /without a VIP/],
      ['vip=198.19.0.99', /no VIP installed on this node/],
    ] as const) {
      const r = await fetchText(`${base(trace)}/trace?${query}`, tokens.alice);
      assert.equal(r.status, 403, `${query}: ${r.body}`);
      assert.match(r.body, why);
    }
    // Cluster-wide permission (here system:masters) traces the node.
    const all = await openTrace(`${base(trace)}/trace?client=198.18.10.0/24`, tokens.admin);
    assert.equal(all.status, 200);
    assert.equal((await all.next()).type, 'start');
    tracer.emit(VIP_B);
    assert.equal((await all.next()).vip, VIP_B.id);
    all.close();
  });

  test("per-caller limits: alice's sessions fill her quota (429), bob's session opens regardless", async (t) => {
    if (!fixture.need(t)) return;
    // Sessions closed above are released once the server sees the close.
    await waitUntil(() => tracer.sessions.size === 0);
    const open = [];
    for (let i = 0; i < 2; i++) {
      const s = await openTrace(`${base(trace)}/trace?vip=198.19.0.10:80/TCP`, tokens.alice);
      assert.equal(s.status, 200);
      await s.next();
      open.push(s);
    }
    const third = await fetchText(`${base(trace)}/trace?vip=198.19.0.10:80/TCP`, tokens.alice);
    assert.equal(third.status, 429, third.body);
    assert.match(third.body, /alice may hold at most 2 sessions/);
    const bob = await openTrace(`${base(trace)}/trace?vip=198.19.0.20:80/TCP`, tokens.bob);
    assert.equal(bob.status, 200, "bob's budget is not alice's");
    await bob.next();
    open.push(bob);
    // A closed session gives its share back.
    open.shift()!.close();
    await waitUntil(() => tracer.sessions.size === 2);
    const again = await openTrace(`${base(trace)}/trace?vip=198.19.0.10:80/TCP`, tokens.alice);
    assert.equal(again.status, 200);
    open.push(again);
    for (const s of open) s.close();
  });
});

/** Runs `xdplb trace ARGS`; resolves with its exit code and output. */
function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [XDPLB_CLI, 'trace', ...args], { timeout: 120_000 }, (error, out, err) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, out, err }));
  });
}

describe('xdplb trace sends its user\'s own token', () => {
  test("alice's kubeconfig token: her VIP traced, tenant-b's refused with the permission it needs", async (t) => {
    if (!fixture.need(t)) return;
    const kubeconfig = cp.kubeconfigAs('alice');
    const ok = await cli(['--agent', base(trace), '--fingerprint', tls.fingerprint256, '--kubeconfig', kubeconfig, '--vip', '198.19.0.10:80/TCP', '--duration', '1']);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.err, /tracing on node-a/);
    const refused = await cli(['--agent', base(trace), '--fingerprint', tls.fingerprint256, '--kubeconfig', kubeconfig, '--vip', '198.19.0.20:80/TCP', '--duration', '1']);
    assert.equal(refused.code, 1, refused.err);
    assert.match(refused.err, /HTTP 403/);
    const anonymous = await cli(['--agent', base(trace), '--fingerprint', tls.fingerprint256, '--token', 'not-a-token', '--vip', '198.19.0.10:80/TCP', '--duration', '1']);
    assert.match(anonymous.err, /HTTP 401/);
  });
});

async function waitUntil(ok: () => boolean, ms = 30_000): Promise<void> {
  for (let i = 0; i < ms / 50 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(ok(), 'condition not reached');
}
