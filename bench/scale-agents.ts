/**
 * The control plane at N balancer nodes (issue 17's benchmark): a real
 * kube-apiserver with deploy/ applied, the real controller as a process, and
 * N simulated agents (bench/scale-agents-host.ts: the agent's cluster code on
 * in-memory maps, each with its own node-bound token) in one child process.
 * VIPS x PODS_PER_VIP Ready pods; for each N:
 *  - cold start: from the agents' start until every VIP is Programmed on
 *    every node (its programmedNodes N/N, from the agents' XdpNodeReports);
 *  - one pod change (Ready <-> NotReady) until every agent has programmed it
 *    (the real's weight in each agent's dataplane), p50 and p99;
 *  - the API server's requests and watch events per pod change (its own
 *    /metrics, the bench's one pod status patch per change subtracted);
 *  - the controller's peak RSS, the agents' heap per agent.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { get } from 'node:https';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { GROUP, LBVIP_PLURAL, type LoadBalancerVip, VERSION } from '../src/api/loadbalancervip.js';
import { ControlPlane } from '../test/e2e/control-plane/control-plane.js';
import { CRD_NAMES } from '../test/e2e/control-plane/fixture.js';
import { kubeConfigFrom } from '../test/e2e/control-plane/objects.js';
import { AGENT_NAMESPACE, REPO, waitFor } from '../test/e2e/operator/lab-env.js';
import { namespacePool } from '../test/e2e/pool-manifests.js';
import { parseMetrics, type Samples, sum } from '../test/support/prometheus.js';
import type { AwaitMessage } from './scale-agents-host.js';
import { ControllerProcess, inFlight, v4Number, v4Text, Watched } from './services.js';
import { median } from './stats.js';

const HOST = fileURLToPath(new URL('./scale-agents-host.js', import.meta.url));
const NS = 'shop';
const AGENT_DAEMONSET = 'xdplb-agent-default';
const FIRST_VIP = v4Number('198.19.0.20');
/** Pods' addresses: 198.18.64.0 on, clear of the API server's Service range and the VIPs. */
const FIRST_POD = v4Number('198.18.64.0');
const COLD_START_TIMEOUT_MS = 60 * 60_000;
const CHANGE_TIMEOUT_MS = 120_000;
const MIB = 2 ** 20;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const vipIp = (i: number) => v4Text(FIRST_VIP + i);
const podIp = (k: number) => v4Text(FIRST_POD + k);

/** The API server's counters: requests by verb, watch events. */
function apiServerMetrics(cp: ControlPlane): Promise<Samples> {
  return new Promise((resolve, reject) => {
    get(`${cp.server}/metrics`, { headers: { authorization: `Bearer ${cp.token}` }, rejectUnauthorized: false }, (res) => {
      let text = '';
      res.on('data', (c) => { text += String(c); });
      res.on('end', () => resolve(parseMetrics(text)));
    }).on('error', reject);
  });
}
const WRITE_VERBS = ['POST', 'PUT', 'PATCH', 'APPLY', 'DELETE'];
function apiCounts(m: Samples): { writes: number; watchEvents: number } {
  return {
    writes: WRITE_VERBS.reduce((n, verb) => n + sum(m, 'apiserver_request_total', { verb }), 0),
    watchEvents: sum(m, 'apiserver_watch_events_total'),
  };
}

interface Row {
  nodes: number;
  coldStartS: number;
  agentsReportedS: number;
  changeP50: number;
  changeP99: number;
  writesPerChange: number;
  watchEventsPerChange: number;
  controllerRssMb: number;
  agentHeapMb: number;
}

async function runAt(nodes: number, vips: number, perVip: number, changes: number): Promise<Row> {
  const cp = await ControlPlane.start();
  let controller: ControllerProcess | undefined;
  let host: ChildProcess | undefined;
  const watched: { stop(): Promise<void> }[] = [];
  try {
    cp.kubectl(['apply', '-k', `${REPO}/deploy`]);
    cp.kubectl(['wait', '--for', 'condition=established', '--timeout=60s', ...CRD_NAMES]);
    cp.kubectl(['create', 'namespace', NS]);
    cp.kubectl(['apply', '-f', '-'], namespacePool(NS));
    const kc = kubeConfigFrom(cp.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    const podStatus = (k: number, ready: boolean) => core.patchNamespacedPodStatus({ name: `p${k}`, namespace: NS, body: {
      status: { phase: 'Running', podIP: podIp(k), podIPs: [{ ip: podIp(k) }], conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    } }, merge);
    await inFlight(vips * perVip, 64, async (k) => {
      await core.createNamespacedPod({ namespace: NS, body: {
        metadata: { name: `p${k}`, labels: { vip: `v${Math.floor(k / perVip)}` } },
        spec: { nodeName: 'worker', containers: [{ name: 'c', image: 'none' }] },
      } });
      await podStatus(k, true);
    });
    await inFlight(vips, 32, (i) => custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: NS, body: {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'LoadBalancerVip', metadata: { name: `v${i}` },
      // InPod: the reals are the pods' own addresses (no backend nodes to address).
      spec: { address: vipIp(i), delivery: 'InPod', ports: [{ port: 80 }], backendSelector: { matchLabels: { vip: `v${i}` } } },
    } }));
    controller = await ControllerProcess.start(cp.kubeconfigAs('xdplb-system/xdplb-controller'), 'bench-controller');
    await controller.whileRunning(waitFor('the agent DaemonSet', () => cp.kubectl(['get', 'ds', '-n', AGENT_NAMESPACE, '-o', 'name']), (o) => o.includes(AGENT_DAEMONSET), 120_000));
    // No DaemonSet controller here: its status says N agents are scheduled and ready.
    // observedGeneration: the controller counts a DaemonSet's desired agents once its status is for the current spec.
    const generation = Number(cp.kubectl(['get', 'ds', AGENT_DAEMONSET, '-n', AGENT_NAMESPACE, '-o', 'jsonpath={.metadata.generation}']));
    const status = { observedGeneration: generation, desiredNumberScheduled: nodes, currentNumberScheduled: nodes, numberMisscheduled: 0, numberReady: nodes };
    cp.kubectl(['patch', 'ds', AGENT_DAEMONSET, '-n', AGENT_NAMESPACE, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
    const names = Array.from({ length: vips }, (_, i) => `v${i}`);
    const vipWatch = Watched.vips(kc, NS);
    watched.push(vipWatch);
    await vipWatch.start();
    await controller.whileRunning(vipWatch.until('every VIP resolved', names, (v) => v?.status?.readyBackends === perVip, COLD_START_TIMEOUT_MS));
    const kubeconfigs: Record<string, string> = {};
    for (let n = 0; n < nodes; n++) kubeconfigs[`node-${n}`] = cp.agentKubeconfigOn(`node-${n}`);

    const t0 = Date.now();
    host = fork(HOST, [JSON.stringify({ kubeconfigs, vips, reals: vips * perVip })], { execArgv: ['--expose-gc'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const messages: { type: string; id?: number; at?: number; heapPerAgent?: number }[] = [];
    const waiters = new Map<string, (m: (typeof messages)[number]) => void>();
    const next = (key: string) => new Promise<(typeof messages)[number]>((resolve) => waiters.set(key, resolve));
    host.on('message', (m: (typeof messages)[number]) => {
      const key = m.type === 'done' ? `done-${m.id}` : m.type;
      waiters.get(key)?.(m);
      waiters.delete(key);
    });
    const started = next('started');
    // The controller's count from the agents' reports: this generation and backends revision, on every node.
    const programmedEverywhere = (v: LoadBalancerVip | undefined) => v?.status?.programmedNodes === `${nodes}/${nodes}`;
    const [agentsReportedAt, coldAt] = await Promise.all([started.then(() => Date.now()),
      controller.whileRunning(vipWatch.until(`every VIP programmed on ${nodes} node(s)`, names, programmedEverywhere, COLD_START_TIMEOUT_MS))]);

    const before = apiCounts(await apiServerMetrics(cp));
    const latencies: number[] = [];
    for (let c = 0; c < changes; c++) {
      // Pod k of VIP (c mod VIPs): NotReady on even changes, Ready again on the odd one after.
      const k = (Math.floor(c / 2) % vips) * perVip + (Math.floor(c / 2) % perVip);
      const weighted = c % 2 === 1;
      const msg: AwaitMessage = { type: 'await', id: c, vip: `${vipIp(Math.floor(k / perVip))}:80/TCP`, real: podIp(k), weighted };
      const t = Date.now();
      await podStatus(k, weighted);
      const done = next(`done-${c}`);
      host.send(msg);
      const at = (await controller.whileRunning(Promise.race([done, new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`change ${c}: not programmed on every node within ${CHANGE_TIMEOUT_MS} ms`)), CHANGE_TIMEOUT_MS))]))).at!;
      latencies.push(at - t);
    }
    const after = apiCounts(await apiServerMetrics(cp));
    const memory = next('memory');
    host.send({ type: 'memory' });
    const heapPerAgent = (await memory).heapPerAgent!;
    return {
      nodes,
      coldStartS: (coldAt - t0) / 1000,
      agentsReportedS: (agentsReportedAt - t0) / 1000,
      changeP50: median(latencies),
      changeP99: pct(latencies, 99),
      writesPerChange: (after.writes - before.writes) / changes - 1,
      watchEventsPerChange: (after.watchEvents - before.watchEvents) / changes,
      controllerRssMb: controller.peakRssMb(),
      agentHeapMb: heapPerAgent / MIB,
    };
  } finally {
    host?.send({ type: 'stop' });
    host?.kill('SIGKILL');
    for (const w of watched) await w.stop();
    await controller?.kill();
    await cp.stop();
  }
}

export async function scaleAgents(): Promise<string> {
  const vips = Number(process.env.BENCH_VIPS ?? 1000);
  const perVip = Number(process.env.BENCH_PODS_PER_VIP ?? 100);
  const changes = Number(process.env.BENCH_CHANGES ?? 100);
  const counts = (process.env.BENCH_AGENT_NODES ?? '1,10,100').split(',').map(Number);
  const rows: string[] = [];
  for (const n of counts) {
    const r = await runAt(n, vips, perVip, changes);
    rows.push(`| ${r.nodes} | ${r.coldStartS.toFixed(1)} s | ${r.agentsReportedS.toFixed(1)} s | ${r.changeP50} ms | ${r.changeP99} ms | ` +
      `${r.writesPerChange.toFixed(1)} | ${r.watchEventsPerChange.toFixed(0)} | ${r.controllerRssMb.toFixed(0)} MB | ${r.agentHeapMb.toFixed(1)} MB |`);
  }
  return [
    `Control plane at N balancer nodes: ${vips} VIPs x ${perVip} Ready pods, the real controller, N simulated agents (the agent's cluster code on in-memory maps, one process); ${changes} pod changes.`,
    '',
    '| nodes | cold start: every VIP Programmed on every node | agents\' first reports written | pod change on every node, p50 | p99 | API writes per change | watch events per change | controller peak RSS | agent heap per agent |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}
