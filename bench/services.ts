/**
 * Services of type LoadBalancer through the real controller, on a real
 * kube-apiserver and etcd:
 *  - services: BENCH_SERVICES_ASSIGN (10,000) Services of class xdplb.dev/xdp
 *    in a namespace one /16 pool allows, no endpoints, made before the
 *    controller starts; a cold controller's time until every one has its
 *    EXTERNAL-IP (all checked distinct and in the pool), beside, in the same
 *    run, the floor: a plain client making the API writes the controller
 *    cannot avoid, as many in flight as the controller's work queue runs;
 *  - what the operator's scale bench (operator.ts) shares with it: loading
 *    Services and the EndpointSlices the EndpointSlice controller would write
 *    (this control plane runs none), a ServiceCIDR so the API server has
 *    ClusterIPs for thousands of Services, watching objects until a test
 *    holds for every one, the controller's process and its peak RSS.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import {
  CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type KubeConfig, type KubernetesListObject, type KubernetesObject, PatchStrategy, setHeaderOptions,
  type V1Service,
} from '@kubernetes/client-node';
import { AddressReason, GROUP, LBVIP_PLURAL, type LoadBalancerVip, VERSION } from '../src/api/loadbalancervip.js';
import { INGRESS_IP_MODE, LOAD_BALANCER_CLASS } from '../src/api/service.js';
import { CONTROLLER_FIELD_MANAGER } from '../src/controller/balancer-controller.js';
import { planServiceVip } from '../src/controller/services/service-vip.js';
import { vipStatus } from '../src/controller/vip-status.js';
import { DEFAULT_WORKERS } from '../src/lib/work-queue.js';
import { type ListPage, WatchedCache } from '../src/lib/watched-cache.js';
import { ControlPlane, freePort } from '../test/e2e/control-plane/control-plane.js';
import { CRD_NAMES } from '../test/e2e/control-plane/fixture.js';
import { kubeConfigFrom } from '../test/e2e/control-plane/objects.js';
import { AGENT_NAMESPACE, REPO, waitFor } from '../test/e2e/operator/lab-env.js';
import { poolManifest } from '../test/e2e/pool-manifests.js';
import { MemoryCgroup, memoryQuantityBytes } from '../test/support/memory-cgroup.js';
import { parseMetrics, type Samples, sum } from '../test/support/prometheus.js';

/** Runs `fn` over 0..n-1 with `width` in flight. */
export async function inFlight(n: number, width: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await fn(next++);
  }));
}

/** Seconds `fn` takes. */
export async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const t0 = Date.now();
  await fn();
  return (Date.now() - t0) / 1000;
}

/** The controller runs under its Deployment's memory limit, as in a cluster (deploy/controller.yaml is the source). */
export const CONTROLLER_MEMORY_LIMIT = (() => {
  const docs = yaml.loadAll(readFileSync(join(REPO, 'deploy/controller.yaml'), 'utf8')) as { kind?: string; spec?: any }[];
  const limit = docs.find((d) => d?.kind === 'Deployment')?.spec?.template?.spec?.containers?.[0]?.resources?.limits?.memory as string | undefined;
  if (!limit) throw new Error('deploy/controller.yaml: the controller Deployment has no memory limit');
  return memoryQuantityBytes(limit);
})();

export const peakRssMb = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** IPv4 dotted quad <-> number (benchmark addresses are made by counting). */
export const v4Number = (ip: string) => ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
export const v4Text = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

/** A ServiceCIDR (networking.k8s.io/v1): the API server allocates ClusterIPs from it once its own range is full (about 250 here). */
export const serviceCidrManifest = (name: string, cidr: string) =>
  JSON.stringify({ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name }, spec: { cidrs: [cidr] } });

/** A Service of type LoadBalancer with one TCP port equal to its target; no node ports (there are only 2768 of them). */
export function lbService(name: string, port: number, more: { cls?: string; selector?: Record<string, string> } = {}): V1Service {
  return {
    metadata: { name },
    spec: {
      type: 'LoadBalancer', loadBalancerClass: more.cls ?? LOAD_BALANCER_CLASS, allocateLoadBalancerNodePorts: false,
      ...(more.selector ? { selector: more.selector } : {}),
      ports: [{ name: 'http', protocol: 'TCP', port, targetPort: port }],
    },
  };
}

export interface BenchEndpoint { pod: string; ip: string; node: string }

/** Writes the Service's one EndpointSlice as the EndpointSlice controller would (every endpoint Ready). */
export function createEndpointSlice(discovery: DiscoveryV1Api, namespace: string, service: string, port: number, endpoints: BenchEndpoint[]) {
  return discovery.createNamespacedEndpointSlice({ namespace, body: {
    metadata: { name: `${service}-bench`, labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'xdplb-bench' } },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip], conditions: { ready: true, serving: true, terminating: false }, targetRef: { kind: 'Pod', namespace, name: e.pod }, nodeName: e.node,
    })),
    ports: [{ name: 'http', protocol: 'TCP', port }],
  } });
}

export const hasIngress = (s: V1Service | undefined) => (s?.status?.loadBalancer?.ingress?.length ?? 0) > 0;

interface Wait<T> {
  names: ReadonlySet<string>;
  ok: (o: T | undefined) => boolean;
  pending: Set<string>;
  done: (at: number) => void;
}

/**
 * One namespace's objects of a kind, watched (a list, then a watch: the
 * API server sends each change once, where polling a list of thousands would
 * load it every second); until() tells when a test holds for every named one.
 */
export class Watched<T extends KubernetesObject> {
  private readonly cache: WatchedCache<T>;
  private readonly waits = new Set<Wait<T>>();

  constructor(kc: KubeConfig, readonly namespace: string, path: string, list: (page: ListPage) => Promise<KubernetesListObject<T>>, trim: (o: T) => void) {
    this.cache = new WatchedCache<T>(kc, path, list, (o, verb) => this.seen(o.metadata?.name ?? '', verb === 'delete' ? undefined : o), { trim, pageSize: 500 });
  }

  static vips(kc: KubeConfig, namespace: string): Watched<LoadBalancerVip> {
    const custom = kc.makeApiClient(CustomObjectsApi);
    return new Watched<LoadBalancerVip>(kc, namespace, `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${LBVIP_PLURAL}`,
      (page) => custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace, ...page }),
      (v) => {
        // What the benchmarks test: backends counted, how many nodes programmed it, the address.
        const { name, namespace: ns, resourceVersion, generation } = v.metadata;
        v.metadata = { name, namespace: ns, resourceVersion, generation };
        const s = v.status;
        v.status = s && { readyBackends: s.readyBackends, address: s.address, programmedNodes: s.programmedNodes };
      });
  }

  static services(kc: KubeConfig, namespace: string): Watched<V1Service> {
    const core = kc.makeApiClient(CoreV1Api);
    return new Watched<V1Service>(kc, namespace, `/api/v1/namespaces/${namespace}/services`, (page) => core.listNamespacedService({ namespace, ...page }), (s) => {
      const { name, namespace: ns, resourceVersion } = s.metadata ?? {};
      s.metadata = { name, namespace: ns, resourceVersion };
      delete s.spec;
    });
  }

  start(): Promise<void> {
    return this.cache.start();
  }

  stop(): Promise<void> {
    return this.cache.stop();
  }

  list(): readonly T[] {
    return this.cache.list(this.namespace);
  }

  /**
   * Resolves with the time (Date.now()) of the event after which ok holds
   * for every named object (undefined: the object does not exist).
   */
  until(what: string, names: Iterable<string>, ok: (o: T | undefined) => boolean, timeoutMs: number): Promise<number> {
    const set = new Set(names);
    const pending = new Set([...set].filter((n) => !ok(this.cache.get(n, this.namespace))));
    if (pending.size === 0) return Promise.resolve(Date.now());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waits.delete(wait);
        const some = [...pending].slice(0, 5);
        reject(new Error(`timed out waiting for ${what}: ${pending.size} of ${set.size} not yet (${some.join(', ')}), e.g. ${JSON.stringify(this.cache.get(some[0]!, this.namespace)) ?? 'absent'}`.slice(0, 2000)));
      }, timeoutMs);
      const wait: Wait<T> = { names: set, ok, pending, done: (at) => {
        clearTimeout(timer);
        this.waits.delete(wait);
        resolve(at);
      } };
      this.waits.add(wait);
    });
  }

  private seen(name: string, o: T | undefined): void {
    const at = Date.now();
    for (const w of this.waits) {
      if (!w.names.has(name)) continue;
      if (w.ok(o)) w.pending.delete(name);
      else w.pending.add(name);
      if (w.pending.size === 0) w.done(at);
    }
  }
}

/** The controller as a process (dist/src/controller/main.js), as lab-env runs it, optionally under a memory limit. */
export class ControllerProcess {
  readonly log: string[] = [];
  private readonly exited: Promise<void>;

  private constructor(readonly child: ChildProcess, readonly metricsPort: number, readonly startedAt: number) {
    this.exited = new Promise((r) => child.once('exit', () => r()));
    const keep = (d: Buffer) => this.log.push(...d.toString().split('\n').filter(Boolean));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
  }

  static async start(kubeconfig: string, identity: string, memoryLimitBytes?: number): Promise<ControllerProcess> {
    const port = await freePort();
    const argv = [process.execPath, join(REPO, 'dist/src/controller/main.js'), '--kubeconfig', kubeconfig, '--namespace', AGENT_NAMESPACE,
      '--identity', identity, '--metrics-address', `127.0.0.1:${port}`, '--agent-image', 'xdplb:bench'];
    const cgroup = memoryLimitBytes ? MemoryCgroup.create(`xdplb-bench-${process.pid}-${identity}`, memoryLimitBytes) : null;
    const [cmd, args] = cgroup ? cgroup.wrap(argv) : [argv[0]!, argv.slice(1)];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.once('exit', () => cgroup?.remove());
    return new ControllerProcess(child, port, Date.now());
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  peakRssMb(): number {
    return peakRssMb(this.child.pid!);
  }

  async metrics() {
    return parseMetrics(await (await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`)).text());
  }

  /** Rejects if the process exits before `p` settles (an out-of-memory kill would otherwise look like a slow run). */
  async whileRunning<T>(p: Promise<T>): Promise<T> {
    let settled = false;
    const died = this.exited.then(() => {
      if (!settled) throw new Error(`the controller exited (${this.child.exitCode ?? this.child.signalCode}); last log: ${this.log.slice(-3).join(' | ')}`);
    });
    try {
      return await Promise.race([p, died.then(() => p)]);
    } finally {
      settled = true;
    }
  }

  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** What the controller's metrics say it did: reconciles by kind, and writes (VIP creates count as LoadBalancerVip writes). */
export function controllerWork(m: Samples): string {
  const reconciles = (kind: string) => sum(m, 'xdplb_controller_reconciles_total', { kind });
  const writes = (kind: string) => sum(m, 'xdplb_controller_status_writes_total', { kind });
  return `reconciles ${reconciles('LoadBalancerVip')} LoadBalancerVip, ${reconciles('Service')} Service, ${reconciles('XdpAddressPool')} XdpAddressPool; ` +
    `writes ${writes('LoadBalancerVip')} LoadBalancerVip (creates and status), ${writes('Service')} Service status`;
}

/** The lease's acquireTime (ms): when the controller started leading. */
export function leaseAcquired(cp: ControlPlane): number {
  return Date.parse(cp.kubectl(['get', 'lease', 'xdplb-controller', '-n', AGENT_NAMESPACE, '-o', 'jsonpath={.spec.acquireTime}']));
}

const NS = 'bench';
/** Namespace of the floor's Services and VIPs: of another class, so the controller leaves them alone. */
const FLOOR_NS = 'floor';
const FLOOR_CLASS = 'bench.example/none';
const POOL = '198.19.0.0/16';
const POOL_NAME = 'bench-16';
/**
 * ClusterIPs for them and the floor's (twice BENCH_SERVICES_ASSIGN): the API server's own range is
 * a /24. Outside the pool (the controller never assigns a Service range address).
 */
const SERVICE_CIDR = { cidr: '198.18.0.0/17', size: 32_766 };
const PORT = 80;
/** As many writes in flight as one controller work queue runs. */
const FLOOR_WIDTH = DEFAULT_WORKERS;
const LOAD_WIDTH = 64;

/**
 * The writes a controller that serves the Services must make, by a plain
 * client, DEFAULT_WORKERS in flight, each kind for all Services in turn:
 * per Service, the LoadBalancerVip (server-side apply of exactly the VIP the
 * controller makes: planServiceVip), its status recording the address (the
 * merge patch the controller writes, vipStatus), and the Service's
 * status.loadBalancer.ingress (merge patch). `firstAddress`: round r writes
 * other addresses than round r-1, so no write is a no-op.
 */
async function floorWrites(kc: KubeConfig, services: V1Service[], firstAddress: number) {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const made: LoadBalancerVip[] = new Array(services.length);
  const address = (i: number) => v4Text(firstAddress + i);
  const ssa = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const vipCreates = await seconds(() => inFlight(services.length, FLOOR_WIDTH, async (i) => {
    const plan = planServiceVip(services[i]!, []);
    if (!plan.serve) throw new Error(`floor: Service ${i} not servable: ${plan.message}`);
    made[i] = (await custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: FLOOR_NS,
      name: plan.vip.metadata.name!, body: plan.vip, fieldManager: CONTROLLER_FIELD_MANAGER, force: true }, ssa)) as LoadBalancerVip;
  }));
  const balancers = { exists: () => true, desiredAgents: () => undefined, drainSeconds: () => 0, mayShareNodes: () => true };
  const vipStatuses = await seconds(() => inFlight(services.length, FLOOR_WIDTH, async (i) => {
    const vip = made[i]!;
    const a = address(i);
    const { status } = vipStatus({ vip, balancers, now: new Date(), pods: [], endpointSlices: [], address: {
      allowed: true, address: a, pool: POOL_NAME, code: AddressReason.Assigned, message: `${a} was assigned from pool ${POOL_NAME}`, assigned: true,
    } });
    await custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: FLOOR_NS, name: vip.metadata.name!,
      body: { status: { addressPool: null, ...status } }, fieldManager: CONTROLLER_FIELD_MANAGER }, merge);
  }));
  const serviceStatuses = await seconds(() => inFlight(services.length, FLOOR_WIDTH, (i) => core.patchNamespacedServiceStatus({
    name: services[i]!.metadata!.name!, namespace: FLOOR_NS, body: { status: { loadBalancer: { ingress: [{ ip: address(i), ipMode: INGRESS_IP_MODE }] } } },
    fieldManager: CONTROLLER_FIELD_MANAGER,
  }, merge)));
  // Gone again before the controller runs: it would reconcile them (they are VIPs of no pool).
  await deleteVips(custom, FLOOR_NS);
  await waitFor('the floor VIPs deleted', async () => ((await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL,
    namespace: FLOOR_NS, limit: 1 })) as { items: unknown[] }).items.length, (n) => n === 0, 600_000, 500);
  return { vipCreates, vipStatuses, serviceStatuses };
}

const HTTP_GATEWAY_TIMEOUT = 504;

/**
 * Deletes every LoadBalancerVip of the namespace (matching the selector). The
 * API server gives up a large collection delete after a minute (504), having
 * deleted part of it: that is not an error, the rest is asked for again.
 */
export async function deleteVips(custom: CustomObjectsApi, namespace: string, labelSelector?: string): Promise<void> {
  const left = async () => ((await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace, labelSelector, limit: 1 })) as
    { items: unknown[] }).items.length;
  // A timed-out collection delete stops where it was: ask again until none is left.
  do {
    try {
      await custom.deleteCollectionNamespacedCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace, labelSelector });
    } catch (err) {
      if ((err as { code?: number }).code !== HTTP_GATEWAY_TIMEOUT) throw err;
    }
  } while ((await left()) > 0);
}

/** Every ingress address distinct, in the pool and never its first or last; each the address of the Service's VIP. */
function checkAddresses(services: readonly V1Service[], vips: readonly LoadBalancerVip[], n: number): void {
  const [first, prefix] = POOL.split('/') as [string, string];
  const lo = v4Number(first);
  const hi = lo + 2 ** (32 - Number(prefix)) - 1;
  const vipAddress = new Map(vips.map((v) => [v.metadata.name, v.status?.address]));
  const seen = new Set<string>();
  for (const s of services) {
    const ips = s.status?.loadBalancer?.ingress?.map((x) => x.ip) ?? [];
    if (ips.length !== 1 || !ips[0]) throw new Error(`Service ${s.metadata?.name}: ingress ${JSON.stringify(ips)}`);
    const ip = ips[0];
    const x = v4Number(ip);
    if (!(x > lo && x < hi)) throw new Error(`Service ${s.metadata?.name}: ${ip} is not an assignable address of ${POOL}`);
    if (seen.has(ip)) throw new Error(`${ip} given twice`);
    seen.add(ip);
    if (vipAddress.get(s.metadata?.name) !== ip) throw new Error(`Service ${s.metadata?.name}: ingress ${ip}, its VIP has ${vipAddress.get(s.metadata?.name)}`);
  }
  if (seen.size !== n) throw new Error(`${seen.size} distinct addresses for ${n} Services`);
}

/** Events in the namespace by reason; they are written without waiting for them, so counted once two counts agree. */
async function settledEvents(core: CoreV1Api, namespace: string): Promise<Map<string, number>> {
  const count = async () => {
    const by = new Map<string, number>();
    let _continue: string | undefined;
    do {
      const page = await core.listNamespacedEvent({ namespace, limit: 500, _continue });
      for (const e of page.items) by.set(e.reason ?? '?', (by.get(e.reason ?? '?') ?? 0) + 1);
      _continue = page.metadata?._continue;
    } while (_continue);
    return by;
  };
  let last = await count();
  const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  await waitFor('Events settled', count, (now) => {
    const same = total(now) === total(last);
    last = now;
    return same;
  }, 120_000, 2000);
  return last;
}

/** Every LoadBalancerVip of the namespace, listed in pages. */
export async function listVips(custom: CustomObjectsApi, namespace: string): Promise<LoadBalancerVip[]> {
  const out: LoadBalancerVip[] = [];
  let _continue: string | undefined;
  do {
    const page = (await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace, limit: 500, _continue })) as
      { items: LoadBalancerVip[]; metadata?: { continue?: string } };
    out.push(...page.items);
    _continue = page.metadata?.continue;
  } while (_continue);
  return out;
}

export async function servicesAssign(n = Number(process.env.BENCH_SERVICES_ASSIGN ?? 10_000)): Promise<string> {
  const poolSize = 2 ** (32 - Number(POOL.split('/')[1])) - 2;
  const most = Math.min(poolSize, SERVICE_CIDR.size) / 2;
  if (!(n >= 1 && n <= most)) throw new Error(`BENCH_SERVICES_ASSIGN=${n}: 1 to ${most} (the floor's Services and addresses count too)`);
  const cp = await ControlPlane.start();
  let controller: ControllerProcess | undefined;
  const watched: { stop(): Promise<void> }[] = [];
  try {
    cp.kubectl(['apply', '-k', join(REPO, 'deploy')]);
    cp.kubectl(['wait', '--for', 'condition=established', '--timeout=60s', ...CRD_NAMES]);
    for (const ns of [NS, FLOOR_NS]) cp.kubectl(['create', 'namespace', ns]);
    cp.kubectl(['apply', '-f', '-'], serviceCidrManifest('bench', SERVICE_CIDR.cidr));
    cp.kubectl(['apply', '-f', '-'], poolManifest(POOL_NAME, [POOL], { matchLabels: { 'kubernetes.io/metadata.name': NS } }));
    const kc = kubeConfigFrom(cp.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const floorServices: V1Service[] = new Array(n);
    const load = await seconds(async () => {
      await inFlight(n, LOAD_WIDTH, (i) => core.createNamespacedService({ namespace: NS, body: lbService(`s${i}`, PORT) }));
      await inFlight(n, LOAD_WIDTH, async (i) => {
        floorServices[i] = await core.createNamespacedService({ namespace: FLOOR_NS, body: lbService(`s${i}`, PORT, { cls: FLOOR_CLASS }) });
      });
    });
    const floorStart = v4Number(POOL.split('/')[0]!) + 1;
    const before = await floorWrites(kc, floorServices, floorStart);

    const services = Watched.services(kc, NS);
    watched.push(services);
    await services.start();
    const names = Array.from({ length: n }, (_, i) => `s${i}`);
    const allIngress = services.until(`${n} Services with an EXTERNAL-IP`, names, hasIngress, 7_200_000);
    controller = await ControllerProcess.start(cp.kubeconfigAs('xdplb-system/xdplb-controller'), 'bench', CONTROLLER_MEMORY_LIMIT);
    const done = await controller.whileRunning(allIngress);
    const leading = leaseAcquired(cp);
    const rss = controller.peakRssMb();
    const m = await controller.metrics();
    checkAddresses(services.list(), await listVips(kc.makeApiClient(CustomObjectsApi), NS), n);
    const events = await settledEvents(core, NS);
    await controller.kill();
    const after = await floorWrites(kc, floorServices, floorStart + n);

    const total = (d: number) => (d - controller!.startedAt) / 1000;
    const fromLease = (done - leading) / 1000;
    const floorOf = (f: typeof before) => f.vipCreates + f.serviceStatuses;
    const floor = (floorOf(before) + floorOf(after)) / 2;
    const floorAll = (floorOf(before) + before.vipStatuses + floorOf(after) + after.vipStatuses) / 2;
    const f1 = (x: number) => x.toFixed(1);
    const eventList = [...events].sort().map(([reason, count]) => `${count} ${reason}`).join(', ');
    return [
      `### ${n} Services of type LoadBalancer given addresses from one /16 pool (cold controller)`,
      '',
      `Loading ${n} Services (and ${n} of another class for the floor) took ${load.toFixed(0)} s (${LOAD_WIDTH} clients).`,
      '',
      '| measured | seconds |',
      '| --- | ---: |',
      `| controller, cold: process start -> every Service has its EXTERNAL-IP | ${f1(total(done))} |`,
      `| the same from its winning the lease (${f1(total(leading))} s after the process started) | ${f1(fromLease)} |`,
      `| floor, before: ${n} VIP creates (server-side apply) + ${n} Service status patches, ${FLOOR_WIDTH} in flight | ${f1(floorOf(before))} (${f1(before.vipCreates)} + ${f1(before.serviceStatuses)}) |`,
      `| floor, after: the same again | ${f1(floorOf(after))} (${f1(after.vipCreates)} + ${f1(after.serviceStatuses)}) |`,
      `| the VIP status writes (the address recorded), before / after | ${f1(before.vipStatuses)} / ${f1(after.vipStatuses)} |`,
      '',
      `Ratio, controller from the lease / floor (mean of before and after, ${f1(floor)} s): **${(fromLease / floor).toFixed(2)}x**; ` +
        `against the floor with the VIP status writes (${f1(floorAll)} s): ${(fromLease / floorAll).toFixed(2)}x.`,
      `Checked: ${n} distinct addresses, all in ${POOL} (neither its first nor its last), each its VIP's status.address.`,
      `Controller: peak RSS ${rss.toFixed(0)} MB under its Deployment's memory limit (${CONTROLLER_MEMORY_LIMIT / 2 ** 20} MiB); ` +
        `${controllerWork(m)}; ` +
        `Events in namespace ${NS}: ${eventList}.`,
    ].join('\n');
  } finally {
    for (const w of watched) await w.stop().catch(() => undefined);
    await controller?.kill();
    await cp.stop();
  }
}

