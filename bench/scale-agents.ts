/**
 * The control plane at N balancer nodes (issue 17's benchmark): a real
 * kube-apiserver with deploy/ applied, the real controller as a process, and
 * N simulated agents (bench/scale-agents-host.ts: the agent's cluster code on
 * in-memory maps, each with its own node-bound token), spread over one child
 * process per core (BENCH_AGENT_PROCESSES). VIPS x PODS_PER_VIP Ready pods,
 * loaded once; the controller's cold start on them; then for each N, with a
 * restarted controller and no reports:
 *  - cold start: from the agents' start until every VIP is Programmed on
 *    every node (its programmedNodes N/N, from the agents' XdpNodeReports);
 *  - one pod change (Ready <-> NotReady) until every agent has programmed it
 *    (the real's weight in each agent's dataplane), p50 and p99;
 *  - the API server's requests and watch events per pod change (its own
 *    /metrics, the bench's one pod status patch per change subtracted);
 *  - the controller's peak RSS, the agents' heap per agent. */
import { type ChildProcess, fork } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
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
/** Each host process holds many agents' VIP caches and in-memory maps. */
const HOST_HEAP_MB = 16_384;

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
  /** Syncs (whole-balancer plans) per change and agent: about 1 when agents sync only for the controller's backends write. */
  syncsPerChange: number;
  controllerRssMb: number;
  agentHeapMb: number;
}

/** The API server with deploy/, the pods and the VIPs: loaded once for every node count (100,000 pods take minutes). */
interface Loaded {
  cp: ControlPlane;
  vips: number;
  perVip: number;
  names: string[];
  podStatus: (k: number, ready: boolean) => Promise<unknown>;
  vipWatch: Watched<LoadBalancerVip>;
}

async function load(cp: ControlPlane, vips: number, perVip: number): Promise<Loaded> {
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
  const vipWatch = Watched.vips(kc, NS);
  await vipWatch.start();
  return { cp, vips, perVip, names: Array.from({ length: vips }, (_, i) => `v${i}`), podStatus, vipWatch };
}

/** The real controller, as deploy/'s ServiceAccount. */
const startController = (cp: ControlPlane) => ControllerProcess.start(cp.kubeconfigAs('xdplb-system/xdplb-controller'), 'bench-controller');

/** Says the agent DaemonSet has `nodes` agents scheduled and ready (there is no DaemonSet controller here). */
function setAgentCount(cp: ControlPlane, nodes: number): void {
  // observedGeneration: the controller counts a DaemonSet's desired agents once its status is for the current spec.
  const generation = Number(cp.kubectl(['get', 'ds', AGENT_DAEMONSET, '-n', AGENT_NAMESPACE, '-o', 'jsonpath={.metadata.generation}']));
  const status = { observedGeneration: generation, desiredNumberScheduled: nodes, currentNumberScheduled: nodes, numberMisscheduled: 0, numberReady: nodes };
  cp.kubectl(['patch', 'ds', AGENT_DAEMONSET, '-n', AGENT_NAMESPACE, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
}

interface HostMessage { type: string; id?: number; at?: number; heapPerAgent?: number; agents?: number; syncs?: number }

/**
 * The simulated agents, spread over `processes` child processes (round
 * robin), so that they use the machine's cores as agents on their own nodes
 * would use theirs. Answers as one: started when all are, a change done
 * when every process has it (the latest time).
 */
class AgentHosts {
  private readonly hosts: ChildProcess[];
  private readonly exited: Promise<void>[];
  private stopping = false;
  private readonly waiters = new Map<string, { left: number; got: HostMessage[]; resolve: (m: HostMessage[]) => void; reject: (e: Error) => void }>();

  constructor(kubeconfigs: Record<string, string>, vips: number, reals: number, processes: number) {
    const shares: Record<string, string>[] = Array.from({ length: Math.min(processes, Object.keys(kubeconfigs).length) }, () => ({}));
    Object.entries(kubeconfigs).forEach(([node, file], i) => { shares[i % shares.length]![node] = file; });
    this.hosts = shares.map((share) => {
      const host = fork(HOST, [JSON.stringify({ kubeconfigs: share, vips, reals })],
        { execArgv: ['--expose-gc', `--max-old-space-size=${HOST_HEAP_MB}`], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      host.on('message', (m: HostMessage) => {
        const key = m.type === 'done' ? `done-${m.id}` : m.type;
        const w = this.waiters.get(key);
        if (!w) return;
        w.got.push(m);
        if (--w.left === 0) {
          this.waiters.delete(key);
          w.resolve(w.got);
        }
      });
      // A host that dies fails what waits on it, instead of the run waiting out its timeouts.
      host.on('error', (err) => this.failAll(new Error(`an agent host failed: ${err.message}`)));
      host.on('exit', (code, signal) => { if (!this.stopping) this.failAll(new Error(`an agent host exited (${code ?? signal})`)); });
      return host;
    });
    this.exited = this.hosts.map((h) => new Promise<void>((resolve) => {
      if (h.exitCode !== null || h.signalCode !== null) resolve();
      else h.once('exit', () => resolve());
    }));
  }

  private failAll(err: Error): void {
    for (const w of this.waiters.values()) w.reject(err);
    this.waiters.clear();
  }

  /** Every process's answer to `key`. */
  next(key: string): Promise<HostMessage[]> {
    return new Promise((resolve, reject) => this.waiters.set(key, { left: this.hosts.length, got: [], resolve, reject }));
  }

  send(m: AwaitMessage | { type: 'memory' }): void {
    for (const h of this.hosts) h.send(m);
  }

  /** Every process's memory and counts. */
  ask(type: 'memory'): Promise<HostMessage[]> {
    const answers = this.next(type);
    this.send({ type });
    return answers;
  }

  /** Kills the hosts and waits until they are gone, so no report write of theirs is still on its way. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const h of this.hosts) h.kill('SIGKILL');
    await Promise.all(this.exited);
  }
}

/** After the last change is confirmed, time for the VIP writes that confirm it to reach every agent. */
const CONFIRMATION_SETTLE_MS = 2000;
const sumSyncs = (answers: HostMessage[]) => answers.reduce((n, a) => n + a.syncs!, 0);

async function runAt(env: Loaded, nodes: number, changes: number, processes: number): Promise<Row> {
  const { cp, vips, perVip, names, vipWatch } = env;
  let controller: ControllerProcess | undefined;
  let hosts: AgentHosts | undefined;
  try {
    // A clean start for each N: no reports of the previous N's agents (all of them stopped), a controller with fresh memory.
    cp.kubectl(['delete', 'xdpnodereports', '--all']);
    await waitFor('no node reports', () => cp.kubectl(['get', 'xdpnodereports', '-o', 'name']), (o) => o.trim() === '', 60_000);
    controller = await startController(cp);
    await controller.whileRunning(waitFor('the agent DaemonSet', () => cp.kubectl(['get', 'ds', '-n', AGENT_NAMESPACE, '-o', 'name']), (o) => o.includes(AGENT_DAEMONSET), 120_000));
    setAgentCount(cp, nodes);
    // The controller has resolved every VIP and counts N agents, none of which has reported yet.
    await controller.whileRunning(vipWatch.until(`every VIP resolved, 0/${nodes} nodes`, names,
      (v) => v?.status?.readyBackends === perVip && v.status.programmedNodes === `0/${nodes}`, COLD_START_TIMEOUT_MS));
    const kubeconfigs: Record<string, string> = {};
    for (let n = 0; n < nodes; n++) kubeconfigs[`node-${n}`] = cp.agentKubeconfigOn(`node-${n}`);

    const t0 = Date.now();
    hosts = new AgentHosts(kubeconfigs, vips, vips * perVip, processes);
    const started = hosts.next('started');
    // The controller's count from the agents' reports: this generation and backends revision, on every node.
    const programmedEverywhere = (v: LoadBalancerVip | undefined) => v?.status?.programmedNodes === `${nodes}/${nodes}`;
    const [agentsReportedAt, coldAt] = await Promise.all([started.then(() => Date.now()),
      controller.whileRunning(vipWatch.until(`every VIP programmed on ${nodes} node(s)`, names, programmedEverywhere, COLD_START_TIMEOUT_MS))]);

    const before = apiCounts(await apiServerMetrics(cp));
    const syncsBefore = sumSyncs(await hosts.ask('memory'));
    const latencies: number[] = [];
    // Change c: pod k of VIP (c/2 mod VIPs), NotReady on even changes, Ready again on the odd one after.
    const podOfChange = (c: number) => (Math.floor(c / 2) % vips) * perVip + (Math.floor(c / 2) % perVip);
    for (let c = 0; c < changes; c++) {
      const k = podOfChange(c);
      const weighted = c % 2 === 1;
      const msg: AwaitMessage = { type: 'await', id: c, vip: `${vipIp(Math.floor(k / perVip))}:80/TCP`, real: podIp(k), weighted };
      const t = Date.now();
      await env.podStatus(k, weighted);
      const done = hosts.next(`done-${c}`);
      hosts.send(msg);
      const answers = await controller.whileRunning(Promise.race([done, new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`change ${c}: not programmed on every node within ${CHANGE_TIMEOUT_MS} ms`)), CHANGE_TIMEOUT_MS))]));
      latencies.push(Math.max(...answers.map((a) => a.at!)) - t);
    }
    // Syncs counted once the last change is confirmed (the controller's confirmation writes have reached the
    // agents) and before the restore below, which is no change of the run.
    await controller.whileRunning(vipWatch.until('the last change confirmed on every node', names, programmedEverywhere, CHANGE_TIMEOUT_MS));
    await sleep(CONFIRMATION_SETTLE_MS);
    const syncsAfter = sumSyncs(await hosts.ask('memory'));
    // Every pod Ready again for the next N (an odd number of changes leaves the last one NotReady).
    if (changes % 2 === 1) await env.podStatus(podOfChange(changes - 1), true);
    const after = apiCounts(await apiServerMetrics(cp));
    const heaps = await hosts.ask('memory');
    return {
      nodes,
      coldStartS: (coldAt - t0) / 1000,
      agentsReportedS: (agentsReportedAt - t0) / 1000,
      changeP50: median(latencies),
      changeP99: pct(latencies, 99),
      writesPerChange: (after.writes - before.writes) / changes - 1,
      watchEventsPerChange: (after.watchEvents - before.watchEvents) / changes,
      syncsPerChange: (syncsAfter - syncsBefore) / changes / nodes,
      controllerRssMb: controller.peakRssMb(),
      agentHeapMb: heaps.reduce((n, h) => n + h.heapPerAgent! * h.agents!, 0) / nodes / MIB,
    };
  } finally {
    await hosts?.stop();
    await controller?.kill();
  }
}

/** The controller's cold start on the loaded API server: from its start until every VIP has its backends in status. */
async function controllerColdStart(env: Loaded): Promise<number> {
  const controller = await startController(env.cp);
  try {
    await controller.whileRunning(env.vipWatch.until('every VIP resolved', env.names, (v) => v?.status?.readyBackends === env.perVip, COLD_START_TIMEOUT_MS));
    return (Date.now() - controller.startedAt) / 1000;
  } finally {
    await controller.kill();
  }
}

export async function scaleAgents(): Promise<string> {
  const vips = Number(process.env.BENCH_VIPS ?? 1000);
  const perVip = Number(process.env.BENCH_PODS_PER_VIP ?? 100);
  const changes = Number(process.env.BENCH_CHANGES ?? 100);
  const counts = (process.env.BENCH_AGENT_NODES ?? '1,10,100').split(',').map(Number);
  const processes = Number(process.env.BENCH_AGENT_PROCESSES ?? availableParallelism());
  const rows: string[] = [];
  const cp = await ControlPlane.start();
  let env: Loaded | undefined;
  let controllerColdS = 0;
  try {
    const loading = Date.now();
    env = await load(cp, vips, perVip);
    const loadS = (Date.now() - loading) / 1000;
    controllerColdS = await controllerColdStart(env);
    process.stderr.write(`scale-agents: loaded in ${loadS.toFixed(0)} s; controller cold start ${controllerColdS.toFixed(1)} s\n`);
    for (const n of counts) {
      const r = await runAt(env, n, changes, processes);
      const row = `| ${r.nodes} | ${r.coldStartS.toFixed(1)} s | ${r.agentsReportedS.toFixed(1)} s | ${r.changeP50} ms | ${r.changeP99} ms | ` +
        `${r.writesPerChange.toFixed(1)} | ${r.watchEventsPerChange.toFixed(0)} | ${r.syncsPerChange.toFixed(1)} | ${r.controllerRssMb.toFixed(0)} MB | ${r.agentHeapMb.toFixed(1)} MB |`;
      process.stderr.write(`scale-agents: ${row}\n`);
      rows.push(row);
    }
  } finally {
    await env?.vipWatch.stop();
    await cp.stop();
  }
  return [
    `Control plane at N balancer nodes: ${vips} VIPs x ${perVip} Ready pods, loaded once; the real controller (cold start on the loaded API server: ${controllerColdS.toFixed(1)} s), ` +
      `restarted for each N; N simulated agents (the agent's cluster code on in-memory maps, over ${processes} processes); ${changes} pod changes.`,
    '',
    '| nodes | cold start: every VIP Programmed on every node | agents\' first reports written | pod change on every node, p50 | p99 | API writes per change | watch events per change | agent syncs per change and agent | controller peak RSS | agent heap per agent |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}
