/**
 * The operator's speed and memory, on the lab with a real kube-apiserver:
 *  - apply -> packets: time from `kubectl apply` of a VIP to its first
 *    answered connection through the balancers, over many applies, beside the
 *    floor of `kubectl apply` itself (the API round trip) in the same run;
 *  - scale: with VIPS x PODS_PER_VIP Ready pods in the API server and as
 *    many Services of type LoadBalancer x endpoints (BENCH_SERVICES, default
 *    VIPS), a cold controller's time to resolve every VIP and, in the same run,
 *    to give every Service its EXTERNAL-IP and its VIP all its endpoints,
 *    beside the floor of the status writes it cannot avoid; a cold agent's time
 *    to program all of them and report; each process's peak RSS.
 */
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { DEFAULT_BALANCER, GROUP, LBVIP_PLURAL, type LoadBalancerVip, VERSION } from '../src/api/loadbalancervip.js';
import { nodeReportName, XNR_PLURAL } from '../src/api/xdpnodereport.js';
import { SERVICE_LABEL } from '../src/api/service.js';
import { CONTROLLER_FIELD_MANAGER } from '../src/controller/balancer-controller.js';
import { DEFAULT_WORKERS } from '../src/lib/work-queue.js';
import { sample } from '../test/support/prometheus.js';
import { vipManifest } from '../test/e2e/invalid-vips.js';
import { kubeConfigFrom } from '../test/e2e/control-plane/objects.js';
import { LabOperatorEnv, waitFor } from '../test/e2e/operator/lab-env.js';
import { poolManifest } from '../test/e2e/pool-manifests.js';
import {
  CONTROLLER_MEMORY_LIMIT, controllerWork, createEndpointSlice, deleteVips, hasIngress, inFlight, lbService, leaseAcquired, listVips, peakRssMb, seconds, serviceCidrManifest,
  v4Number, v4Text, Watched,
} from './services.js';
import { median } from './stats.js';

const CLIENT = fileURLToPath(new URL('../test/lab/programs/client.js', import.meta.url));
const HTTP = 80;
/** Listing 1000 VIPs is itself API server work: poll gently (the times below are up to this late). */
const POLL_MS = 1000;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;

export async function applyToPackets(applies = Number(process.env.BENCH_APPLIES ?? 100)): Promise<string> {
  const env = await LabOperatorEnv.up();
  try {
    for (const b of env.backendNames) await env.setBackend(b, 'ready');
    const manifest = vipManifest(`  address: ${env.vip4}\n  ports: [{port: ${HTTP}, targetPort: ${env.backendPort}}]\n  backendSelector: {matchLabels: {app: web}}`, 'web', env.namespace);
    const latencies: number[] = [];
    const kubectlApply: number[] = [];
    const vipsInAgents = async () => Promise.all(env.nodes.map(async (n) => sample(await env.agentMetrics(n), 'xdplb_vips')));
    for (let i = 0; i < applies; i++) {
      const probe = env.lab.spawnNode(env.lab.client, CLIENT, [JSON.stringify({ mode: 'probe', vip: env.vip4, port: HTTP, durationMs: 15_000, intervalMs: 10 })]);
      let out = '';
      const started = new Promise<void>((r) => probe.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('started')) r();
      }));
      const done = new Promise<void>((r) => probe.on('exit', () => r()));
      await started;
      const t0 = Date.now();
      env.kubectl(['apply', '-f', '-'], manifest);
      kubectlApply.push(Date.now() - t0);
      await done;
      const at = (JSON.parse(out.slice(out.indexOf('{'))) as { at: number | null }).at;
      if (at === null) throw new Error(`apply ${i}: no answer within 15 s`);
      latencies.push(at - t0);
      env.kubectl(['delete', 'lbvip', 'web', '-n', env.namespace]);
      await waitFor('the VIP gone from every agent', vipsInAgents, (v) => v.every((x) => x === 0));
    }
    const row = (name: string, xs: number[]) => `| ${name} | ${median(xs)} | ${pct(xs, 99)} | ${Math.max(...xs)} |`;
    return [
      `### kubectl apply -> first answered connection (${applies} applies)`,
      '',
      '| measured | p50 ms | p99 ms | max ms |',
      '| --- | ---: | ---: | ---: |',
      row('apply -> packets reach a pod', latencies),
      row('floor: `kubectl apply` alone (process + API round trip)', kubectlApply),
      '',
      `p99 / goal (2000 ms): ${(pct(latencies, 99) / 2000).toFixed(2)}; p50 / kubectl-apply floor: ${(median(latencies) / median(kubectlApply)).toFixed(1)}x`,
    ].join('\n');
  } finally {
    await env.down();
  }
}

/**
 * Pods' addresses, counted through these ranges (102,144 of them), clear of
 * the lab's networks (198.18.0-63.x), the API server's Service range
 * (198.18.240.0/24), the lab's VIP pool (198.19.0.0/20, the VIPs below),
 * the Services' pool and their ServiceCIDR.
 */
const POD_RANGES = [['198.18.64.0', '198.18.239.255'], ['198.18.241.0', '198.18.255.255'], ['198.19.48.0', '198.19.255.255']]
  .map(([a, b]) => ({ first: v4Number(a!), size: v4Number(b!) - v4Number(a!) + 1 }));
const POD_CAPACITY = POD_RANGES.reduce((n, r) => n + r.size, 0);
/** The Services' addresses are assigned from this pool (namespace shop; earlier by name than the lab's, so asked first). */
const SERVICE_POOL = { name: 'bench-services', cidr: '198.19.16.0/20', size: 4094 };
/** ClusterIPs for the Services: the API server's own range is a /24. */
const SERVICE_CIDR = { cidr: '198.19.32.0/20', size: 4094 };
/** VIP i's spec.address: 198.19.0.20 + i, inside the lab's pool (198.19.0.0/20). */
const FIRST_VIP = v4Number('198.19.0.20');
const LAB_POOL_END = v4Number('198.19.15.255');
const NS = 'shop';

/** Pod k's address. */
function podIp(k: number): string {
  for (const r of POD_RANGES) {
    if (k < r.size) return v4Text(r.first + k);
    k -= r.size;
  }
  throw new Error('more pods than addresses');
}
const vipIp = (i: number) => v4Text(FIRST_VIP + i);

/** Rejects when the controller is gone (an out-of-memory kill would otherwise look like a slow run). */
async function whileAlive<T>(env: LabOperatorEnv, identity: string, p: Promise<T>): Promise<T> {
  let settled = false;
  const dead = (async () => {
    while (!settled && env.controllers().includes(identity)) await new Promise((r) => setTimeout(r, 500));
    if (!settled) throw new Error(`controller ${identity} exited; last log: ${env.controllerLogs.get(identity)?.slice(-3).join(' | ')}`);
  })();
  try {
    return await Promise.race([p, dead.then(() => p)]);
  } finally {
    settled = true;
  }
}

export async function scale(
  vips = Number(process.env.BENCH_VIPS ?? 1000), perVip = Number(process.env.BENCH_PODS_PER_VIP ?? 100), services = Number(process.env.BENCH_SERVICES ?? vips),
): Promise<string> {
  if (vips * perVip > POD_CAPACITY) throw new Error(`${vips * perVip} pods: at most ${POD_CAPACITY} addresses`);
  if (FIRST_VIP + vips - 1 > LAB_POOL_END) throw new Error(`${vips} VIPs: their addresses would leave the lab's pool`);
  if (services > Math.min(SERVICE_POOL.size, SERVICE_CIDR.size)) throw new Error(`${services} Services: the pool and ServiceCIDR hold ${SERVICE_POOL.size}`);
  const load = { pods: 0, services: 0 };
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  /** Service i's endpoints are VIP (i mod VIPS)'s pods: what an EndpointSlice controller would write for a Service selecting them. */
  const endpointsOf = (i: number) => Array.from({ length: perVip }, (_, j) => {
    const k = (i % vips) * perVip + j;
    return { pod: `p${k}`, ip: podIp(k), node: 'worker' };
  });
  const env = await LabOperatorEnv.up({
    // Reals are per address: a Service's endpoints are pods some VIP has too.
    agentArgs: ['--max-vips', String(vips + services + 8), '--max-reals', String(vips * perVip + 8)],
    before: async (cp) => {
      cp.kubectl(['apply', '-f', '-'], serviceCidrManifest('bench-services', SERVICE_CIDR.cidr));
      cp.kubectl(['apply', '-f', '-'], poolManifest(SERVICE_POOL.name, [SERVICE_POOL.cidr], { matchLabels: { 'kubernetes.io/metadata.name': NS } }));
      const kc = kubeConfigFrom(cp.kubeconfig);
      const core = kc.makeApiClient(CoreV1Api);
      const custom = kc.makeApiClient(CustomObjectsApi);
      const discovery = kc.makeApiClient(DiscoveryV1Api);
      load.pods = await seconds(async () => {
        await inFlight(vips * perVip, 64, async (k) => {
          const name = `p${k}`;
          await core.createNamespacedPod({ namespace: NS, body: {
            metadata: { name, labels: { vip: `v${Math.floor(k / perVip)}` } },
            spec: { nodeName: 'worker', containers: [{ name: 'c', image: 'none' }] },
          } });
          await core.patchNamespacedPodStatus({ name, namespace: NS, body: {
            status: { phase: 'Running', podIP: podIp(k), podIPs: [{ ip: podIp(k) }], conditions: [{ type: 'Ready', status: 'True' }] },
          } }, merge);
        });
        await inFlight(vips, 32, (i) => custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: NS, body: {
          apiVersion: `${GROUP}/${VERSION}`, kind: 'LoadBalancerVip', metadata: { name: `v${i}` },
          spec: { address: vipIp(i), ports: [{ port: HTTP }], backendSelector: { matchLabels: { vip: `v${i}` } } },
        } }));
      });
      load.services = await seconds(async () => {
        await inFlight(services, 32, (i) => core.createNamespacedService({ namespace: NS, body: lbService(`s${i}`, HTTP, { selector: { vip: `v${i % vips}` } }) }));
        await inFlight(services, 32, (i) => createEndpointSlice(discovery, NS, `s${i}`, HTTP, endpointsOf(i)));
      });
    },
  });
  const watched: { stop(): Promise<void> }[] = [];
  try {
    const kc = kubeConfigFrom(env.cp.kubeconfig);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    const vipWatch = Watched.vips(kc, NS);
    const svcWatch = Watched.services(kc, NS);
    watched.push(vipWatch, svcWatch);
    await Promise.all([vipWatch.start(), svcWatch.start()]);
    const vipNames = Array.from({ length: vips }, (_, i) => `v${i}`);
    const svcNames = Array.from({ length: services }, (_, i) => `s${i}`);
    const allVips = [...vipNames, ...svcNames];
    const resolved = (v: LoadBalancerVip | undefined) => v?.status?.readyBackends === perVip;
    // The controller's count from the agents' XdpNodeReports.
    const programmedOn = (count: number) => (v: LoadBalancerVip | undefined) => v?.status?.programmedNodes === `${count}/${env.nodes.length}`;
    await Promise.all([
      vipWatch.until('every VIP resolved and programmed', allVips, (v) => resolved(v) && programmedOn(env.nodes.length)(v), 900_000),
      svcWatch.until('every Service with its EXTERNAL-IP', svcNames, hasIngress, 900_000),
    ]).catch((err: unknown) => {
      // What the controllers complained about says more than which objects are late.
      const complaints = [...env.controllerLogs].flatMap(([id, lines]) => lines.filter((l) => !l.includes('"level":30')).slice(-5).map((l) => `${id}: ${l}`));
      throw new Error(`${(err as Error).message}\n${complaints.join('\n')}`);
    });
    // What the controller wrote, for the floor below.
    const warm = await listVips(custom, NS);
    const ingress = new Map(svcWatch.list().map((s) => [s.metadata!.name!, s.status!.loadBalancer!.ingress!]));
    // Cold controller, alone on the machine: agents stopped (their programs keep running).
    for (const b of env.lab.balancers) await env.lab.stopAgent(b, 'SIGTERM');
    const killControllers = async () => {
      for (const id of env.controllers()) await env.killController(id);
    };
    /** Everything the controller wrote gone (no controller may run): VIP statuses (not the agents' entries), the Services' VIPs, their EXTERNAL-IPs. */
    const clear = async () => {
      await inFlight(vips, 16, (i) => custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: NS, name: `v${i}`,
        body: { status: { address: null, addressPool: null, ports: null, backends: null, readyBackends: null, unlistedBackends: null, conditions: null,
          programmedNodes: null, observedGeneration: null } } }, merge));
      await deleteVips(custom, NS, SERVICE_LABEL);
      await inFlight(services, 16, (i) => core.patchNamespacedServiceStatus({ name: `s${i}`, namespace: NS, body: { status: { loadBalancer: { ingress: null } } } }, merge));
      await Promise.all([
        vipWatch.until('VIP statuses cleared', vipNames, (v) => !resolved(v), 300_000),
        vipWatch.until('the Services\' VIPs deleted', svcNames, (v) => v === undefined, 300_000),
        svcWatch.until('EXTERNAL-IPs cleared', svcNames, (s) => !hasIngress(s), 300_000),
      ]);
    };
    await killControllers();
    await clear();
    /**
     * The floor: the writes a cold controller cannot avoid, by a plain client,
     * DEFAULT_WORKERS in flight: the same bodies the controller wrote (each
     * VIP's status; each Service's VIP created by server-side apply, its status,
     * the Service's status), one write per object.
     */
    const ssa = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
    const writeStatus = (v: LoadBalancerVip) => custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: NS,
      name: v.metadata.name!, body: { status: { addressPool: null, ...v.status } }, fieldManager: CONTROLLER_FIELD_MANAGER }, merge);
    const floor = await seconds(() => inFlight(warm.length, DEFAULT_WORKERS, async (i) => {
      const v = warm[i]!;
      const service = v.metadata.labels?.[SERVICE_LABEL];
      if (service !== undefined) {
        await custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: NS, name: v.metadata.name!, fieldManager: CONTROLLER_FIELD_MANAGER,
          force: true, body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'LoadBalancerVip', metadata: { name: v.metadata.name, labels: v.metadata.labels, ownerReferences: v.metadata.ownerReferences }, spec: v.spec } }, ssa);
      }
      await writeStatus(v);
      if (service !== undefined) {
        await core.patchNamespacedServiceStatus({ name: service, namespace: NS, body: { status: { loadBalancer: { ingress: ingress.get(service) } } }, fieldManager: CONTROLLER_FIELD_MANAGER }, merge);
      }
    }));
    /** A cold controller: every write of the controller undone; timed from its winning the lease (the killed leader's must expire first). */
    const coldController = async (memoryLimitBytes?: number) => {
      await killControllers();
      await clear();
      const vipsDone = vipWatch.until('every VIP resolved by a cold controller', vipNames, resolved, 900_000);
      const svcVipsDone = vipWatch.until('every Service\'s VIP listing its endpoints', svcNames, resolved, 900_000);
      const ingressDone = svcWatch.until('every Service with its EXTERNAL-IP from a cold controller', svcNames, hasIngress, 900_000);
      const fresh = await env.startController({ memoryLimitBytes });
      try {
        await waitFor('the fresh controller leads', () => env.kubectl(['get', 'lease', 'xdplb-controller', '-n', 'xdplb-system', '-o', 'jsonpath={.spec.holderIdentity}']), (h) => h === fresh, 60_000);
        const start = leaseAcquired(env.cp);
        const [a, bVips, bIngress] = await whileAlive(env, fresh, Promise.all([vipsDone, svcVipsDone, ingressDone]));
        const work = controllerWork(await env.controllerMetrics(fresh));
        return { vips: (a - start) / 1000, services: (Math.max(bVips, bIngress) - start) / 1000, rss: peakRssMb(env.controllerPid(fresh)!), work };
      } catch (err) {
        // Gone (out of memory?) or stuck: said in the table; an unlimited one finishes the work for the agent rows.
        await env.killController(fresh).catch(() => undefined);
        await env.startController();
        await Promise.all([vipsDone, svcVipsDone, ingressDone]);
        return { error: (err as Error).message.slice(0, 300) };
      }
    };
    const unlimited = await coldController();
    const limited = await coldController(CONTROLLER_MEMORY_LIMIT);
    // Cold agent: no program, no maps, no status entries of its own.
    const node = env.nodes[0]!;
    const b = env.lab.balancers[0]!;
    env.lab.ip(b.ns, 'link', 'set', 'eth0', 'xdp', 'off');
    rmSync(b.pinDir, { recursive: true, force: true });
    // Its report goes, as when an agent leaves a node for good.
    await custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: XNR_PLURAL, name: nodeReportName(DEFAULT_BALANCER, node) });
    await vipWatch.until('the cold agent\'s report removed', allVips, programmedOn(env.nodes.length - 1), 300_000);
    const agentStart = Date.now();
    await env.startAgent(node);
    const agentReadySeconds = (Date.now() - agentStart) / 1000;
    const agentDone = await vipWatch.until('the cold agent reported every VIP', allVips, programmedOn(env.nodes.length), 600_000);
    const agentSeconds = (agentDone - agentStart) / 1000;
    const agentRss = peakRssMb(env.agentPid(node)!);
    const m = await env.agentMetrics(node);
    const f1 = (x: number) => x.toFixed(1);
    const rows = (r: typeof unlimited, what: string) => (r.error !== undefined || r.vips === undefined
      ? [`| ${what}: did not finish (${r.error}) | | 30 | | 300 |`]
      : [
        `| ${what}: every LoadBalancerVip (${vips}) listing all its pods | ${f1(r.vips)} | 30 | ${r.rss.toFixed(0)} | 300 |`,
        `| the same run: every Service (${services}) with its EXTERNAL-IP and its VIP listing all its endpoints | ${f1(r.services)} | | | |`,
        `| the same run: both done, / floor | ${(Math.max(r.vips, r.services) / floor).toFixed(2)}x | | | |`,
      ]);
    return [
      `### Scale: ${vips} VIPs x ${perVip} Ready pods (${vips * perVip} pods) and ${services} Services x ${perVip} endpoints in the API server`,
      '',
      `Loading them took ${load.pods.toFixed(0)} s for the pods and VIPs (64 clients), ${load.services.toFixed(0)} s for the Services and EndpointSlices ` +
        '(32 clients): the API server\'s own rate, for scale.',
      '',
      '| measured | seconds | goal | peak RSS MB | goal |',
      '| --- | ---: | ---: | ---: | ---: |',
      `| floor: the controller's writes by a plain client (${warm.length} VIP statuses, ${services} VIP creates, ${services} Service statuses; ${DEFAULT_WORKERS} in flight) | ${f1(floor)} | | | |`,
      ...rows(unlimited, 'controller, cold (from winning the lease)'),
      ...rows(limited, `the same, under its Deployment's memory limit (${CONTROLLER_MEMORY_LIMIT / 2 ** 20} MiB: Node sizes its heap from it)`),
      `| agent, cold (no maps): ready (all programmed) | ${f1(agentReadySeconds)} | | | |`,
      `| agent, cold: its entry on all ${allVips.length} VIPs (${vips} + ${services} of Services) | ${f1(agentSeconds)} | 30 | ${agentRss.toFixed(0)} | 300 |`,
      '',
      ...([['Cold controller', unlimited], ['Under the limit', limited]] as const).flatMap(([what, r]) => (r.work ? [`${what}, by its metrics when done: ${r.work}.`, ''] : [])),
      `Agent maps after: ${sample(m, 'xdplb_vips')} VIPs, ${sample(m, 'xdplb_reals')} reals, ${sample(m, 'xdplb_map_writes_total')} element writes.`,
    ].join('\n');
  } finally {
    for (const w of watched) await w.stop().catch(() => undefined);
    await env.down();
  }
}
