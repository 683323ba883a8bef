/**
 * The whole path with real packets: kubectl apply -> controller -> status ->
 * agents -> XDP -> TCP through the balancers to the backends. Runs on the
 * lab here (lab-env.ts) and on a kind cluster (XDPLB_E2E_ENV=kind, kind-env.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LoadBalancerVip } from '../../../src/api/loadbalancervip.js';
import type { XdpNodeReport } from '../../../src/api/xdpnodereport.js';
import { environment } from '../../support/environment.js';
import { sample, sum } from '../../support/prometheus.js';
import { INVALID_VIPS, vipManifest } from '../invalid-vips.js';
import type { OperatorEnv } from './env.js';
import { REPO, waitFor } from './lab-env.js';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { LONG_LIVED_MIN_MESSAGES } from '../../lab/client-results.js';
import { vipNodes } from '../../support/node-reports.js';
import type { TraceRun } from '../../support/trace-process.js';

async function openEnv(): Promise<OperatorEnv> {
  if (process.env.XDPLB_E2E_ENV === 'kind') return (await import('./kind-env.js')).KindOperatorEnv.up();
  if (process.getuid?.() !== 0) throw new Error('the lab needs root');
  return (await import('./lab-env.js')).LabOperatorEnv.up();
}

const HTTP = 80;
/** Goal from the issue: traffic within a few seconds of kubectl apply. */
const APPLY_TO_TRAFFIC_MS = 5000;
/** The drain scenario's long-lived connections: how long each runs, a line every interval. */
const LONG_MS = 4000;
const LONG_INTERVAL_MS = 100;
/**
 * A connection on the draining real must end before drainSeconds removes that real, which resets it by design.
 * Its SYN can come just before the agents drop the real from the ring, and a loaded client ends it late:
 * drainSeconds outlasts it by this much.
 */
const DRAIN_OUTLASTS_LONG_MS = 5000;
/** The trace scenario stops its traces itself; this only ends one it fails to stop. */
const TRACE_BOUND_SECONDS = 300;

describe('operator end to end: kubectl apply to packets', () => {
  let env: OperatorEnv;
  const { need } = environment('operator environment', async () => (env = await openEnv()));

  const ns = () => env.namespace;
  const getVip = (name: string) => JSON.parse(env.kubectl(['get', 'lbvip', name, '-n', ns(), '-o', 'json'])) as LoadBalancerVip;
  /** What each node's agent reports of the VIP (its XdpNodeReport), as the controller reads it. */
  const nodesOf = (v: LoadBalancerVip) => vipNodes(env.kubectl(['get', 'xdpnodereports', '-o', 'json']), v);
  const cond = (v: LoadBalancerVip, type: string) => v.status?.conditions?.find((c) => c.type === type);
  const untilVip = (name: string, what: string, ok: (v: LoadBalancerVip) => boolean) => waitFor(what, () => getVip(name), ok);
  /** Reals the agents hold for a VIP: its backends, or in Node addressing the nodes they are on. */
  const realCount = (v: LoadBalancerVip) => (v.status?.addressing === 'Node'
    ? new Set(v.status.backends?.map((b) => b.nodeIP)).size : v.status?.backends?.length ?? 0);
  const vipsProgrammed = async () => Promise.all(env.nodes.map(async (n) => sample(await env.agentMetrics(n), 'xdplb_vips')));
  const mapWrites = async () => Promise.all(env.nodes.map(async (n) => sample(await env.agentMetrics(n), 'xdplb_map_writes_total')));
  // No health checks: these scenarios count the VIP's packets exactly, and each probe adds one (the probing node's RST to the
  // VIP). The health check scenario below turns them on.
  const webVip = (name = 'web') => vipManifest(`  address: ${env.vip4}\n  ports: [{port: ${HTTP}, targetPort: ${env.backendPort}}, {port: 53, protocol: UDP, targetPort: ${env.backendPort}}]\n  backendSelector: {matchLabels: {app: web}}\n  healthCheck: {enabled: false}`, name, ns());
  /** Connections until all of `count` succeed, or the deadline. */
  const untilServed = async (count: number, ok: (byReal: Record<string, number>) => boolean, timeoutMs = APPLY_TO_TRAFFIC_MS) => {
    const started = Date.now();
    for (;;) {
      const r = await env.connect(env.vip4, HTTP, count);
      if (r.failures === 0 && ok(r.byReal)) return { ...r, ms: Date.now() - started };
      if (Date.now() - started > timeoutMs) assert.fail(`not served as expected within ${timeoutMs} ms: ${JSON.stringify(r)}`);
      await sleep(100);
    }
  };

  test('deploy/ passes a server-side dry run; the controller made the default balancer and its DaemonSet', (t) => {
    if (!need(t)) return;
    const out = env.kubectl(['apply', '--dry-run=server', '-k', join(REPO, 'deploy')]);
    assert.match(out, /deployment\.apps\/xdplb-controller (unchanged|configured) \(server dry run\)/);
    const b = JSON.parse(env.kubectl(['get', 'xdpbalancer', 'default', '-o', 'json']));
    assert.equal(b.spec.image.length > 0, true);
    assert.match(env.kubectl(['get', 'ds', '-n', 'xdplb-system']), /xdplb-agent-default/);
  });

  test('kubectl apply of a VIP: traffic balanced across its Ready pods within seconds; kubectl get shows it', async (t) => {
    if (!need(t)) return;
    const [a, b] = env.backendNames;
    await env.setBackend(a!, 'ready');
    await env.setBackend(b!, 'ready');
    const applied = Date.now();
    env.kubectl(['apply', '-f', '-'], webVip());
    const served = await untilServed(200, (byReal) => !!byReal[a!] && !!byReal[b!]);
    t.diagnostic(`apply -> balanced traffic: ${Date.now() - applied} ms`);
    assert.deepEqual(Object.keys(served.byReal).sort(), [a, b].sort());
    // Each node's report says how many reals it programmed: the pods, or in Node addressing the nodes they are on.
    const entries = (x: LoadBalancerVip) => JSON.stringify(nodesOf(x).map((n) => [n.node, n.programmedGeneration, n.reals]).sort());
    const v = await untilVip('web', 'Ready on every node, each node\'s entry with the reals it programmed', (x) => cond(x, 'Ready')?.status === 'True' &&
      entries(x) === JSON.stringify(env.nodes.map((n) => [n, x.metadata.generation, realCount(x)]).sort()));
    t.diagnostic(`node reports: ${entries(v)} (addressing ${v.status?.addressing ?? 'Pod'})`);
    // Each report is owned by its node's Node, so deleting the node deletes it (kind); where the node has no Node object (the lab's balancers), it has no owner.
    const reports = JSON.parse(env.kubectl(['get', 'xdpnodereports', '-o', 'json'])) as { items: XdpNodeReport[] };
    for (const r of reports.items) {
      const nodeUid = env.kubectl(['get', 'nodes', '--field-selector', `metadata.name=${r.node}`, '-o', 'jsonpath={.items[*].metadata.uid}']).trim();
      assert.deepEqual(r.metadata.ownerReferences?.map((o) => [o.kind, o.name, o.uid]) ?? [], nodeUid ? [['Node', r.node, nodeUid]] : [], `owner of ${r.metadata.name}`);
    }
    const row = env.kubectl(['get', 'lbvip', 'web', '-n', ns()]);
    t.diagnostic(`kubectl get lbvip:\n${row}`);
    assert.match(row, new RegExp(`^web\\s+${env.vip4.replace(/\./g, '\\.')}\\s+InPool\\s+80->${env.backendPort}/TCP,53->${env.backendPort}/UDP\\s+2\\s+${env.nodes.length}/${env.nodes.length}\\s+True`, 'm'));
  });

  test('a new pod gets flows; a NotReady pod drains (its connections live on), then leaves every map', async (t) => {
    if (!need(t)) return;
    assert.ok(env.drainSeconds * 1000 >= LONG_MS + DRAIN_OUTLASTS_LONG_MS, `drainSeconds ${env.drainSeconds} is too short for the scenario`);
    const [a, b, c] = env.backendNames;
    await env.setBackend(c!, 'ready');
    await untilServed(300, (byReal) => !!byReal[c!]);
    // Long-lived connections on every backend, opened before the drain.
    const longs = Array.from({ length: 18 }, () => env.long(env.vip4, HTTP, LONG_MS, LONG_INTERVAL_MS));
    await sleep(500);
    await env.setBackend(a!, 'not-ready');
    await untilVip('web', `${a} draining`, (v) => !!v.status?.backends?.some((x) => x.pod === a && x.draining));
    const fresh = await untilServed(300, (byReal) => !byReal[a!]);
    assert.ok(fresh.byReal[b!] && fresh.byReal[c!], JSON.stringify(fresh.byReal));
    const results = await Promise.all(longs);
    assert.ok(results.some((r) => r.real === a), `no long-lived connection landed on ${a}: ${results.map((r) => r.real)}`);
    for (const r of results) {
      assert.equal(r.error, '', `a connection to ${r.real} broke while it drained: ${r.error}`);
      assert.ok(r.received >= r.sent - 1 && r.sent >= LONG_LIVED_MIN_MESSAGES, `connection to ${r.real}: ${r.received}/${r.sent}`);
    }
    const gone = await untilVip('web', `${a} gone after ${env.drainSeconds} s`, (v) => !v.status?.backends?.some((x) => x.pod === a));
    await waitFor(`every agent dropped the drained real (${realCount(gone)} left)`, async () =>
      Promise.all(env.nodes.map(async (n) => sample(await env.agentMetrics(n), 'xdplb_reals'))), (reals) => reals.every((x) => x === realCount(gone)));
    // A backend change bumps no generation: Programmed says so once every agent reported the revision it programmed.
    const confirmed = await untilVip('web', 'Programmed again, every node at the backends revision without the drained real',
      (v) => !v.status?.backends?.some((x) => x.pod === a) && cond(v, 'Programmed')?.status === 'True');
    const reported = nodesOf(confirmed);
    const revisions = env.nodes.map((n) => reported.find((e) => e.node === n)?.programmedBackendsRevision);
    assert.deepEqual(revisions, env.nodes.map(() => confirmed.status!.backendsRevision), JSON.stringify(reported));
    assert.equal(confirmed.status!.programmedNodes, `${env.nodes.length}/${env.nodes.length}`);
  });

  test(`${INVALID_VIPS.length} invalid VIPs are refused by the API server naming the field; nothing is programmed`, async (t) => {
    if (!need(t)) return;
    assert.ok(INVALID_VIPS.length >= 15);
    const vipsBefore = await vipsProgrammed();
    const writesBefore = await mapWrites();
    for (const [what, spec, field] of INVALID_VIPS) {
      const err = env.kubectlError(['apply', '-f', '-'], vipManifest(spec, 'bad', ns()));
      assert.ok(err.includes(field), `${what}: the error does not name ${field}: ${err}`);
    }
    assert.match(env.kubectlError(['get', 'lbvip', 'bad', '-n', ns()]), /NotFound/);
    await sleep(500);
    assert.deepEqual(await vipsProgrammed(), vipsBefore);
    assert.deepEqual(await mapWrites(), writesBefore);
  });

  test('a conflicting VIP gets Conflict=True and is not programmed; the first keeps serving', async (t) => {
    if (!need(t)) return;
    const writesBefore = await mapWrites();
    env.kubectl(['apply', '-f', '-'], vipManifest(`  address: ${env.vip4}\n  ports: [{port: ${HTTP}}]\n  backendSelector: {matchLabels: {app: other}}`, 'rival', ns()));
    const rival = await untilVip('rival', 'the rival in conflict', (v) => cond(v, 'Conflict')?.status === 'True');
    assert.match(cond(rival, 'Conflict')!.message!, new RegExp(`held by ${ns()}/web`));
    assert.equal(cond(getVip('web'), 'Conflict')?.status, 'False');
    const r = await env.connect(env.vip4, HTTP, 200);
    assert.equal(r.failures, 0);
    assert.ok(!Object.keys(r.byReal).some((x) => !env.backendNames.includes(x)));
    await sleep(500);
    assert.ok(!nodesOf(getVip('rival')).some((n) => n.programmedGeneration !== undefined), 'no node programmed the rival');
    assert.deepEqual(await mapWrites(), writesBefore, 'the rival never reached the maps');
    env.kubectl(['delete', 'lbvip', 'rival', '-n', ns()]);
  });

  test('killing the leader controller: the other replica takes over, the dataplane does not change, work goes on', async (t) => {
    if (!need(t)) return;
    const leader = () => env.kubectl(['get', 'lease', 'xdplb-controller', '-n', 'xdplb-system', '-o', 'jsonpath={.spec.holderIdentity}']);
    const first = leader();
    assert.ok(env.controllers().includes(first), `leader ${first} is one of ${env.controllers()}`);
    const writesBefore = await mapWrites();
    const traffic = env.continuous(env.vip4, HTTP, 4000);
    await env.killController(first);
    // Within the lease duration (3 s in the lab, 15 s as deploy/ runs it on kind).
    const second = await waitFor('another leader', leader, (id) => id !== first && id !== '', 30_000);
    assert.ok(env.controllers().includes(second));
    const c = await traffic;
    assert.equal(c.failures, 0, c.errors.join(', '));
    assert.deepEqual(await mapWrites(), writesBefore, 'a takeover rewrote no map');
    // The new leader does the work: the drained backend comes back.
    const [a] = env.backendNames;
    await env.setBackend(a!, 'ready');
    await untilVip('web', `${a} back under ${second}`, (v) => v.status?.readyBackends === 3);
    await untilServed(300, (byReal) => !!byReal[a!]);
  });

  test('killing an agent: connections survive, its report stays, its maps are adopted, not rebuilt', async (t) => {
    if (!need(t)) return;
    const node = env.nodes[0]!;
    const long = env.long(env.vip4, HTTP, 6000, 50);
    const traffic = env.continuous(env.vip4, HTTP, 6000);
    await sleep(1000);
    await env.restartAgent(node);
    const [l, c] = await Promise.all([long, traffic]);
    assert.equal(c.failures, 0, `failed requests: ${c.errors.join(', ')}`);
    assert.equal(l.error, '');
    assert.ok(l.received >= l.sent - 1 && l.sent > 50, `long-lived connection: ${l.received}/${l.sent}`);
    const m = await env.agentMetrics(node);
    assert.equal(sample(m, 'xdplb_map_writes_total'), 0, 'the new agent found the maps right and wrote nothing');
    assert.equal(sample(m, 'xdplb_vips'), 2);
    const v = getVip('web');
    assert.equal(nodesOf(v).find((n) => n.node === node)?.programmedGeneration, v.metadata.generation);
  });

  test('an API server outage: agents keep serving and rewrite nothing; changes after it are applied', async (t) => {
    if (!need(t)) return;
    if (!env.apiOutage) {
      t.skip('this environment cannot cut the agents off the API server');
      return;
    }
    const writesBefore = await mapWrites();
    const traffic = env.continuous(env.vip4, HTTP, 3000);
    await env.apiOutage(2000);
    const c = await traffic;
    assert.equal(c.failures, 0);
    await sleep(1500); // the watches come back and relist
    for (const n of env.nodes) assert.ok(env.agentLog(n).some((l) => l.includes('list/watch failed')), `${n}'s agent did not notice the outage`);
    assert.deepEqual(await mapWrites(), writesBefore, 'a relist after the outage rewrote no map');
    const [, b] = env.backendNames;
    await env.setBackend(b!, 'absent');
    await untilServed(300, (byReal) => !byReal[b!], 15_000);
  });

  test('the Grafana dashboard is valid JSON and every query names a metric the agents or the controller export', async (t) => {
    if (!need(t)) return;
    const dashboard = JSON.parse(readFileSync(join(REPO, 'deploy/grafana/xdplb-dashboard.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    const leader = env.kubectl(['get', 'lease', 'xdplb-controller', '-n', 'xdplb-system', '-o', 'jsonpath={.spec.holderIdentity}']);
    const scraped = new Set<string>();
    for (const samples of [...await Promise.all(env.nodes.map((n) => env.agentMetrics(n))), await env.controllerMetrics(leader)]) {
      for (const key of samples.keys()) scraped.add(key.replace(/\{.*$/, '').replace(/_(bucket|sum|count)$/, ''));
    }
    const queries = dashboard.panels.flatMap((p) => p.targets.map((q) => ({ panel: p.title, expr: q.expr })));
    assert.ok(queries.length >= 8, `${queries.length} queries`);
    for (const { panel, expr } of queries) {
      const names = expr.match(/\bxdplb_[a-z0-9_]+/g) ?? [];
      assert.ok(names.length > 0, `${panel}: a query with no xdplb metric: ${expr}`);
      for (const name of names) assert.ok(scraped.has(name), `${panel}: ${name} is not exported (scraped: ${[...scraped].filter((n) => n.startsWith('xdplb_')).join(', ')})`);
    }
    // The panels the issue asks for are there.
    for (const needed of ['xdplb_vip_packets_total', 'xdplb_vip_new_flows_total', 'xdplb_real_packets_total', 'xdplb_packets_total', 'xdplb_controller_balancer_agents', 'xdplb_controller_vip_nodes']) {
      assert.ok(queries.some((q) => q.expr.includes(needed)), `no panel queries ${needed}`);
    }
  });

  test('xdplb trace --vip NAMESPACE/NAME by a user granted xdplb-trace: a record per packet of the VIP, on every node', async (t) => {
    if (!need(t)) return;
    for (const namespace of ['xdplb-system', ns()]) {
      env.kubectl(['delete', 'rolebinding', 'alice-xdplb-trace', '-n', namespace, '--ignore-not-found']);
      env.kubectl(['create', 'rolebinding', 'alice-xdplb-trace', '--clusterrole=xdplb-trace', '--user=alice', '-n', namespace]);
    }
    if (env.hasUngrantedUser) {
      await assert.rejects(env.startTrace(env.nodes[0]!, ['--vip', `${ns()}/web`], 'ungranted'),
        /LoadBalancerVip shop\/web: forbidden: reading it needs the xdplb-trace role bound in namespace shop/);
    }
    // --duration only bounds a trace the test fails to stop: on a loaded machine the scrapes alone can outlast a short one.
    const lines = (out: string) => out.trim().split('\n').filter(Boolean);
    const started = env.nodes.map((n) => env.startTrace(n, ['--vip', `${ns()}/web`, '--json', '--duration', String(TRACE_BOUND_SECONDS)], 'granted'));
    // Stopped however the test ends: a trace left running would hold the test process until its bound.
    const stopAll = async () => Promise.all(started.map(async (p) => (await p.catch(() => null))?.stop()));
    let counted: number[];
    let runs: TraceRun[];
    try {
      const traces = await Promise.all(started);
      const vipPackets = async () => Promise.all(env.nodes.map(async (n) => sample(await env.agentMetrics(n), 'xdplb_vip_packets_total', { vip: `${env.vip4}:${HTTP}/TCP` })));
      const before = await vipPackets();
      const r = await env.connect(env.vip4, HTTP, 20);
      assert.equal(r.failures, 0, r.errors.join(', '));
      const after = await vipPackets();
      counted = after.map((a, i) => a - before[i]!);
      // Records stream from the agent's ring buffer: wait for as many as the program counted, then stop as ^C would.
      await waitFor('a trace record per packet counted', () => traces.map((x) => lines(x.output()).length), (n) => n.every((c, i) => c >= counted[i]!))
        .catch(() => undefined); // the assertion below says by how much
    } finally {
      runs = (await stopAll()) as TraceRun[];
    }
    const records = runs.map((run) => {
      assert.equal(run.code, 0, run.err);
      return lines(run.out).map((l) => JSON.parse(l) as { vip: string; reason: string; src: string; real: string | null });
    });
    records.forEach((recs, i) => assert.equal(recs.length, counted[i], `${env.nodes[i]}: records vs packets counted for the VIP`));
    const all = records.flat();
    assert.ok(all.length >= 20 * 3, `${all.length} records for 20 connections`);
    assert.ok(all.every((e) => e.vip === `${env.vip4}:${HTTP}/TCP` && e.reason === 'tx_encap' && e.real), JSON.stringify(all[0]));
  });

  test('deleting the VIP removes it from every agent, and its traffic passes to the kernel', async (t) => {
    if (!need(t)) return;
    const passedBefore = await Promise.all(env.nodes.map(async (n) => sum(await env.agentMetrics(n), 'xdplb_packets_total', { reason: 'pass_not_vip' })));
    env.kubectl(['delete', 'lbvip', 'web', '-n', ns()]);
    await waitFor('no VIP in any agent', vipsProgrammed, (v) => v.every((x) => x === 0));
    const r = await env.connect(env.vip4, HTTP, 20);
    assert.equal(r.failures, 20, 'nothing balances the deleted VIP');
    const passed = await Promise.all(env.nodes.map(async (n) => sum(await env.agentMetrics(n), 'xdplb_packets_total', { reason: 'pass_not_vip' })));
    assert.ok(passed.reduce((x, y) => x + y, 0) > passedBefore.reduce((x, y) => x + y, 0), `not passed to the kernel: ${passedBefore} -> ${passed}`);
  });

  test('a Service of type LoadBalancer (class xdplb.dev/xdp): EXTERNAL-IP shown, TCP through the balancers to its endpoints; deleted, it stops', async (t) => {
    if (!need(t)) return;
    for (const b of env.backendNames) await env.setBackend(b, 'ready');
    // Its backends answer for the environment's routed VIP address: the Service asks for it.
    env.kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: 'web-svc', namespace: ns(), annotations: { 'xdplb.dev/address': env.vip4 } },
      spec: { type: 'LoadBalancer', loadBalancerClass: 'xdplb.dev/xdp', selector: { app: 'web' }, ports: [{ name: 'http', protocol: 'TCP', port: HTTP, targetPort: env.backendPort }] },
    }));
    // Deleted also when a check fails: a Service left holding the VIP would fail the scenarios after it.
    try {
      await env.syncEndpoints('web-svc', env.backendPort);
      await waitFor('the EXTERNAL-IP', () => env.kubectl(['get', 'svc', 'web-svc', '-n', ns(), '-o', 'jsonpath={.status.loadBalancer.ingress[*].ip}']), (ip) => ip === env.vip4);
      t.diagnostic(`kubectl get svc:\n${env.kubectl(['get', 'svc', 'web-svc', '-n', ns()])}`);
      const row = env.kubectl(['get', 'svc', 'web-svc', '-n', ns(), '--no-headers']);
      assert.match(row, new RegExp(`^web-svc\\s+LoadBalancer\\s+\\S+\\s+${env.vip4.replace(/\./g, '\\.')}\\s+80:\\d+/TCP\\s`));
      const served = await untilServed(300, (byReal) => env.backendNames.every((b) => !!byReal[b]), 60_000);
      assert.deepEqual(Object.keys(served.byReal).sort(), [...env.backendNames].sort());
      const v = await untilVip('web-svc', 'Ready on every node', (x) => cond(x, 'Ready')?.status === 'True');
      assert.equal(v.spec.backendService, 'web-svc');
      assert.equal(v.status!.readyBackends, env.backendNames.length);
      env.kubectl(['delete', 'svc', 'web-svc', '-n', ns()]);
      await waitFor('the Service\'s VIP gone from every agent', vipsProgrammed, (n) => n.every((x) => x === 0));
      // On kind, kube-proxy also captures a LoadBalancer Service's ingress IP on every node (ipMode VIP) and
      // removes those rules a moment after the Service is gone: wait for that, not only for xdplb.
      await waitFor('nothing balances the deleted Service', async () => (await env.connect(env.vip4, HTTP, 20)).failures, (f) => f === 20, 30_000, 1000);
    } finally {
      env.kubectl(['delete', 'svc', 'web-svc', '-n', ns(), '--ignore-not-found']);
    }
  });

  // The lab has a router; on kind the client's BIRD is the router of test/e2e/kind/bgp.test.ts, which covers this there.
  const bgpTest = process.env.XDPLB_E2E_ENV === 'kind' ? () => undefined : test;
  bgpTest('spec.bgp on the balancer: every node announces the VIP, the router learns it with one ECMP next hop per node; deleted, it is withdrawn', async (t) => {
    if (!need(t)) return;
    const router = env.bgp;
    assert.ok(router, 'the lab environment offers its BGP router');
    const patchBgp = (bgp: unknown) => env.kubectl(['patch', 'xdpbalancer', 'default', '--type=merge', '-p', JSON.stringify({ spec: { bgp } })]);
    patchBgp(router.settings());
    try {
      await router.start();
      for (const b of env.backendNames) await env.setBackend(b, 'ready');
      env.kubectl(['apply', '-f', '-'], webVip('web-bgp'));
      await waitFor(`the router's route to ${env.vip4} via every node`, () => router.nextHops(env.vip4), (hops) => hops.join() === router.nodeHops(env.vip4).join(), 60_000);
      t.diagnostic(`router next hops for ${env.vip4}: ${router.nextHops(env.vip4).join(', ')}`);
      const served = await untilServed(300, (byReal) => env.backendNames.every((b) => !!byReal[b]), 30_000);
      assert.equal(served.failures, 0);
      for (const n of env.nodes) {
        const m = await waitFor(`${n}'s BGP sessions in its metrics`, () => env.agentMetrics(n), (x) => sum(x, 'xdplb_bgp_session_up') >= 2);
        assert.equal(sample(m, 'xdplb_bgp_vips_announced'), 1, `${n} announces the one VIP`);
      }
      // And in the balancer's status: each node's entry, written by its agent.
      type NodeEntry = { node: string; bgp?: { announced: number; withdrawn?: string; sessions: { peer: string; established: boolean; routesSent: number }[] } };
      const entries = await waitFor('every node\'s BGP entry in the XdpBalancer status', () =>
        (JSON.parse(env.kubectl(['get', 'xdpbalancer', 'default', '-o', 'jsonpath={.status.nodes}']) || '[]') as NodeEntry[]),
      (e) => env.nodes.every((n) => {
        const b = e.find((x) => x.node === n)?.bgp;
        return !!b && b.announced === 1 && b.sessions.length >= 2 && b.sessions.every((s) => s.established) && b.sessions.some((s) => s.routesSent >= 1);
      }), 60_000);
      t.diagnostic(`status.nodes: ${JSON.stringify(entries.map((e) => ({ node: e.node, ...e.bgp })))}`);
      env.kubectl(['delete', 'lbvip', 'web-bgp', '-n', ns()]);
      await waitFor(`${env.vip4} withdrawn from the router`, () => router.nextHops(env.vip4), (hops) => hops.length === 0, 30_000);
    } finally {
      env.kubectl(['delete', 'lbvip', 'web-bgp', '-n', ns(), '--ignore-not-found']);
      patchBgp(null);
      await router.stop();
    }
  });
  // Breaking one pod's tunnel path needs the node's pins: the lab does it; on kind the pods' nodes are containers.
  const labOnlyTest = process.env.XDPLB_E2E_ENV === 'kind' ? () => undefined : test;
  labOnlyTest('health checks along the real path: a backend whose tunnel path breaks while its pod stays Ready is marked unhealthy (status, Event, metric) and gets weight 0; the others serve on; mended, it returns', async (t) => {
    if (!need(t)) return;
    // Two backends on two nodes. In Node addressing (the default) the balancers reach a node, which picks one of its pods: the probe
    // follows that path, so its verdict is the node's. With one pod of the VIP per node, it is the pod's.
    const [a, b, c] = env.backendNames as [string, string, string];
    for (const x of [a, c]) await env.setBackend(x, 'ready');
    await env.setBackend(b, 'absent');
    const hc = { intervalSeconds: 2, timeoutSeconds: 1, unhealthyThreshold: 2, healthyThreshold: 2 };
    env.kubectl(['apply', '-f', '-'], vipManifest(`  address: ${env.vip4}\n  ports: [{port: ${HTTP}, targetPort: ${env.backendPort}}]\n  backendSelector: {matchLabels: {app: web}}\n  healthCheck: ${JSON.stringify(hc)}`, 'web-hc', ns()));
    const backend = (v: LoadBalancerVip, pod: string) => v.status?.backends?.find((x) => x.pod === pod);
    const events = (reason: string) => (JSON.parse(env.kubectl(['get', 'events', '-n', ns(), '--field-selector', `involvedObject.name=web-hc,reason=${reason}`, '-o', 'json'])) as
      { items: { message: string }[] }).items;
    let broken = false;
    try {
      await untilServed(300, (byReal) => [a, c].every((x) => !!byReal[x]), 30_000);
      const healthy = await untilVip('web-hc', 'probed, two healthy backends', (v) => v.status?.healthCheck?.probed === true && v.status?.backends?.length === 2 &&
        v.status.backends.every((x) => x.healthy !== false));
      const ipA = backend(healthy, a)!.ip;
      // What the balancers encapsulate to, and so what the probing node's metric names.
      const realA = backend(healthy, a)!.nodeIP ?? ipA;
      t.diagnostic(`addressing ${healthy.status!.addressing ?? 'Pod'}: ${a} is probed at ${realA}`);
      // Long-lived connections on the others must not notice; those on a lose their path with it.
      const longs = Array.from({ length: 8 }, () => env.long(env.vip4, HTTP, 20_000, 500));
      await sleep(1500);
      const brokenAt = Date.now();
      await env.breakBackendPath!(a);
      broken = true;
      const unhealthy = await waitFor(`${a} unhealthy in status`, () => getVip('web-hc'), (v) => backend(v, a)?.healthy === false, 60_000, 200);
      t.diagnostic(`path broken -> status.backends[${a}].healthy false: ${Date.now() - brokenAt} ms (interval ${hc.intervalSeconds} s, ${hc.unhealthyThreshold} failures, timeout ${hc.timeoutSeconds} s)`);
      t.diagnostic(`reason: ${backend(unhealthy, a)!.unhealthyReason}`);
      assert.ok(backend(unhealthy, a)!.unhealthySince, 'unhealthySince set');
      assert.equal(unhealthy.status!.healthCheck!.unhealthyBackends, 1);
      assert.notEqual(backend(unhealthy, c)!.healthy, false, `${c} stays healthy`);
      await waitFor('a BackendUnhealthy Event on the VIP', () => events('BackendUnhealthy'), (e) => e.some((x) => x.message.includes(ipA)));
      // The node that probes it says so in its metrics; every node gives it weight 0: new connections go to the others only.
      const healthSeries = async () => (await Promise.all(env.nodes.map((n) => env.agentMetrics(n))))
        .flatMap((m) => [...m].filter(([k]) => k.startsWith('xdplb_backend_healthy{') && k.includes(`real="${realA}"`)).map(([, value]) => value));
      assert.deepEqual(await healthSeries(), [0], 'exactly one node probes it, and reports it unhealthy');
      const served = await untilServed(300, (byReal) => !byReal[a] && !!byReal[c], 30_000);
      t.diagnostic(`while ${a} is unhealthy: ${JSON.stringify(served.byReal)}, ${served.failures} failed`);
      const results = await Promise.all(longs);
      const others = results.filter((r) => r.real !== a);
      t.diagnostic(`long-lived: ${results.map((r) => `${r.real} ${r.received}/${r.sent}${r.error ? ` (${r.error})` : ''}`).join('; ')}`);
      assert.ok(others.length > 0, 'some long-lived connections were on the healthy backends');
      for (const r of others) {
        assert.equal(r.error, '', `a connection to ${r.real} broke: ${r.error}`);
        assert.ok(r.received >= r.sent - 1 && r.sent >= LONG_LIVED_MIN_MESSAGES, `connection to ${r.real}: ${r.received}/${r.sent}`);
      }
      const mendedAt = Date.now();
      await env.restoreBackendPath!(a);
      broken = false;
      await waitFor(`${a} healthy again`, () => getVip('web-hc'), (v) => backend(v, a)?.healthy !== false, 60_000, 200);
      t.diagnostic(`path mended -> healthy: ${Date.now() - mendedAt} ms (${hc.healthyThreshold} successes)`);
      await waitFor('a BackendHealthy Event on the VIP', () => events('BackendHealthy'), (e) => e.some((x) => x.message.includes(ipA)));
      await untilServed(300, (byReal) => [a, c].every((x) => !!byReal[x]), 30_000);
    } finally {
      if (broken) await env.restoreBackendPath!(a);
      env.kubectl(['delete', 'lbvip', 'web-hc', '-n', ns(), '--ignore-not-found']);
    }
  });
});
