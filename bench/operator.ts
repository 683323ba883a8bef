/**
 * The operator's speed and memory, on the lab with a real kube-apiserver:
 *  - apply -> packets: time from `kubectl apply` of a VIP to its first
 *    answered connection through the balancers, over many applies, beside the
 *    floor of `kubectl apply` itself (the API round trip) in the same run;
 *  - scale: with VIPS x PODS_PER_VIP Ready pods in the API server, a cold
 *    controller's time to resolve every VIP and a cold agent's time to
 *    program all of them and report, with each process's peak RSS.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { GROUP, LBVIP_PLURAL, type LoadBalancerVip, VERSION } from '../src/api/loadbalancervip.js';
import { sample } from '../test/support/prometheus.js';
import { vipManifest } from '../test/e2e/invalid-vips.js';
import { LabOperatorEnv, REPO, waitFor } from '../test/e2e/operator/lab-env.js';
import { memoryQuantityBytes } from '../test/support/memory-cgroup.js';
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
    const manifest = vipManifest(`  address: ${env.vip4}\n  ports: [{port: ${HTTP}}]\n  backendSelector: {matchLabels: {app: web}}`, 'web', env.namespace);
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

/** Runs `fn` over 0..n-1 with `width` in flight. */
async function pool(n: number, width: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await fn(next++);
  }));
}

/** The controller runs under its Deployment's memory limit, as in a cluster (deploy/controller.yaml is the source). */
const CONTROLLER_MEMORY_LIMIT = (() => {
  const docs = yaml.loadAll(readFileSync(join(REPO, 'deploy/controller.yaml'), 'utf8')) as { kind?: string; spec?: any }[];
  const limit = docs.find((d) => d?.kind === 'Deployment')?.spec?.template?.spec?.containers?.[0]?.resources?.limits?.memory as string | undefined;
  if (!limit) throw new Error('deploy/controller.yaml: the controller Deployment has no memory limit');
  return memoryQuantityBytes(limit);
})();
const peakRssMb = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** Pod k's address: 198.18.1.0 + k, inside the benchmarking range (131k addresses). */
const podIp = (k: number) => {
  const n = (198 << 24) + (18 << 16) + 256 + k;
  return [n >>> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255].join('.');
};
/** VIP i's address: 198.19.0.20 + i. */
const vipIp = (i: number) => `198.19.${Math.floor((20 + i) / 256)}.${(20 + i) % 256}`;

export async function scale(vips = Number(process.env.BENCH_VIPS ?? 1000), perVip = Number(process.env.BENCH_PODS_PER_VIP ?? 100)): Promise<string> {
  let loadSeconds = 0;
  const env = await LabOperatorEnv.up({
    agentArgs: ['--max-vips', String(vips + 8), '--max-reals', String(vips * perVip + 8)],
    before: async (cp) => {
      const kc = new KubeConfig();
      kc.loadFromFile(cp.kubeconfig);
      const core = kc.makeApiClient(CoreV1Api);
      const custom = kc.makeApiClient(CustomObjectsApi);
      const t0 = Date.now();
      await pool(vips * perVip, 64, async (k) => {
        const name = `p${k}`;
        await core.createNamespacedPod({ namespace: 'shop', body: {
          metadata: { name, labels: { vip: `v${Math.floor(k / perVip)}` } },
          spec: { nodeName: 'worker', containers: [{ name: 'c', image: 'none' }] },
        } });
        await core.patchNamespacedPodStatus({ name, namespace: 'shop', body: {
          status: { phase: 'Running', podIP: podIp(k), podIPs: [{ ip: podIp(k) }], conditions: [{ type: 'Ready', status: 'True' }] },
        } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      });
      await pool(vips, 32, (i) => custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: 'shop', body: {
        apiVersion: `${GROUP}/${VERSION}`, kind: 'LoadBalancerVip', metadata: { name: `v${i}` },
        spec: { address: vipIp(i), ports: [{ port: HTTP }], backendSelector: { matchLabels: { vip: `v${i}` } } },
      } }));
      loadSeconds = (Date.now() - t0) / 1000;
    },
  });
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(env.cp.kubeconfig);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const list = async () => ((await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: 'shop' })) as { items: LoadBalancerVip[] }).items;
    const resolved = (items: LoadBalancerVip[]) => items.length === vips && items.every((v) => v.status?.readyBackends === perVip);
    const programmedBy = (node: string) => (items: LoadBalancerVip[]) => items.every((v) => v.status?.nodes?.some((n) => n.node === node && n.programmedGeneration === v.metadata.generation));
    await waitFor('every VIP resolved and programmed', list, (items) => resolved(items) && env.nodes.every((n) => programmedBy(n)(items)), 900_000, POLL_MS);
    // Cold controller, alone on the machine: agents stopped (their programs keep running), statuses cleared.
    for (const b of env.lab.balancers) await env.lab.stopAgent(b, 'SIGTERM');
    /** A cold controller: the others killed, every VIP's controller-written status cleared; timed from winning the lease. */
    const coldController = async (memoryLimitBytes?: number) => {
      for (const id of env.controllers()) await env.killController(id);
      await pool(vips, 16, (i) => custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: 'shop', name: `v${i}`,
        body: { status: { backends: null, readyBackends: null, conditions: null, programmedNodes: null, observedGeneration: null } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)));
      const fresh = await env.startController({ memoryLimitBytes });
      // From the moment it leads (the killed leader's lease must expire first).
      await waitFor('the fresh controller leads', () => env.kubectl(['get', 'lease', 'xdplb-controller', '-n', 'xdplb-system', '-o', 'jsonpath={.spec.holderIdentity}']), (h) => h === fresh, 60_000);
      const start = Date.now();
      await waitFor('every VIP resolved by a cold controller', list, resolved, 900_000, POLL_MS);
      return { seconds: (Date.now() - start) / 1000, rss: peakRssMb(env.controllerPid(fresh)!) };
    };
    const unlimited = await coldController();
    const limited = await coldController(CONTROLLER_MEMORY_LIMIT);
    // Cold agent: no program, no maps, no status entries of its own.
    const node = env.nodes[0]!;
    const b = env.lab.balancers[0]!;
    env.lab.ip(b.ns, 'link', 'set', 'eth0', 'xdp', 'off');
    rmSync(b.pinDir, { recursive: true, force: true });
    await pool(vips, 16, (i) => custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: 'shop', name: `v${i}`,
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'LoadBalancerVip', metadata: { name: `v${i}`, namespace: 'shop' }, status: { nodes: [] } },
      fieldManager: `xdplb-agent-${node}`, force: true }, setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply)));
    const agentStart = Date.now();
    await env.startAgent(node);
    const agentReadySeconds = (Date.now() - agentStart) / 1000;
    await waitFor('the cold agent reported every VIP', list, programmedBy(node), 600_000, POLL_MS);
    const agentSeconds = (Date.now() - agentStart) / 1000;
    const agentRss = peakRssMb(env.agentPid(node)!);
    const m = await env.agentMetrics(node);
    return [
      `### Scale: ${vips} VIPs x ${perVip} Ready pods (${vips * perVip} pods) in the API server`,
      '',
      `Loading them took ${loadSeconds.toFixed(0)} s (64 clients; the API server's own rate, for scale).`,
      '',
      '| measured | seconds | goal | peak RSS MB | goal |',
      '| --- | ---: | ---: | ---: | ---: |',
      `| controller, cold (from winning the lease): every VIP's status resolved | ${unlimited.seconds.toFixed(1)} | 30 | ${unlimited.rss.toFixed(0)} | 300 |`,
      `| the same, under its Deployment's memory limit (${CONTROLLER_MEMORY_LIMIT / 2 ** 20} MiB: Node sizes its heap from it) | ${limited.seconds.toFixed(1)} | 30 | ${limited.rss.toFixed(0)} | 300 |`,
      `| agent, cold (no maps): ready (all programmed) | ${agentReadySeconds.toFixed(1)} | | | |`,
      `| agent, cold: ${vips} status entries reported | ${agentSeconds.toFixed(1)} | 30 | ${agentRss.toFixed(0)} | 300 |`,
      '',
      `Agent maps after: ${sample(m, 'xdplb_vips')} VIPs, ${sample(m, 'xdplb_reals')} reals, ${sample(m, 'xdplb_map_writes_total')} element writes.`,
    ].join('\n');
  } finally {
    await env.down();
  }
}
