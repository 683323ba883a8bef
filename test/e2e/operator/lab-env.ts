/**
 * The operator on this machine: a real kube-apiserver and etcd, deploy/
 * applied with kubectl, two controller replicas as processes, and the lab's
 * two balancer nodes running agents in cluster mode. The backends are the lab
 * workers' pods (unmodified servers on POD_PORT), each worker's backend agent
 * (`xdplb-agent --mode backend`) in cluster mode as its node; the workers are
 * Node objects with their addresses, and the default balancer's Node
 * addressing reaches w2's pods, whose network the router does not route,
 * through w2. There is no kubelet: backend Pods are created through the API
 * and given Ready status and the lab pods' addresses by the test; the
 * DaemonSets' status is set the same way.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Pod } from '@kubernetes/client-node';
import { parseMetrics, type Samples } from '../../support/prometheus.js';
import { Lab, type LabApi, type LabPod, POD_PORT } from '../../lab/lab.js';
import { ControlPlane, freePort, type TestServiceAccount } from '../control-plane/control-plane.js';
import { CRD_NAMES } from '../control-plane/fixture.js';
import { namespacePool } from '../pool-manifests.js';
import { ApiBridge } from './api-bridge.js';
import { MemoryCgroup } from '../../support/memory-cgroup.js';
import { type RunningTrace, watchTrace, XDPLB_CLI } from '../../support/trace-process.js';
import type { BackendState, BgpRouter, ConnectResult, ContinuousResult, LongResult, OperatorEnv } from './env.js';
import { BALANCER_ASN, ROUTER_ASN } from '../../lab/router-bird.js';

const DIST = fileURLToPath(new URL('../../../', import.meta.url)); // dist/
export const REPO = join(DIST, '..');
const CONTROLLER = join(DIST, 'src/controller/main.js');
export const AGENT_NAMESPACE = 'xdplb-system';
const AGENT_DAEMONSET = 'xdplb-agent-default';
const E2E_IMAGE = 'xdplb:e2e';
/** Outlasts the drain scenario's long-lived connections (operator.test.ts: DRAIN_OUTLASTS_LONG_MS). */
const DRAIN_SECONDS = 10;
/** Lease timing short enough for a takeover within seconds. */
const LEASE = ['--lease-duration', '3', '--renew-deadline', '2', '--retry-period', '0.5'];
const WAIT_MS = 20_000;
/** Backend pods: two on w1 (its pod network routed), one on w2 (reached through w2's address): the suite uses three. */
const BACKEND_PODS: [number, number] = [2, 1];

export async function waitFor<T>(what: string, get: () => T | Promise<T>, ok: (x: T) => boolean, timeoutMs = WAIT_MS, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let x = await get();
  while (!ok(x)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(x)?.slice(0, 2000)}`);
    await sleep(intervalMs);
    x = await get();
  }
  return x;
}

export class LabOperatorEnv implements OperatorEnv {
  readonly namespace = 'shop';
  readonly nodes: string[];
  readonly backendNames: string[];
  readonly backendPort = POD_PORT;
  readonly vip4 = '198.19.0.10';
  readonly drainSeconds = DRAIN_SECONDS;
  private readonly controllerProcs = new Map<string, ChildProcess>();
  private readonly controllerPorts = new Map<string, number>();
  readonly controllerLogs = new Map<string, string[]>();
  private nextController = 1;

  private constructor(readonly cp: ControlPlane, readonly lab: Lab, readonly bridge: ApiBridge, private readonly agentArgs: string[]) {
    this.nodes = lab.balancers.map((b) => b.name);
    this.backendNames = this.pods().map((p) => p.name);
  }

  /** The backend pods, w1's first. */
  private pods(): LabPod[] {
    return this.lab.pods();
  }

  private api(kubeconfigAs: TestServiceAccount): LabApi {
    return { kubeconfig: this.cp.kubeconfigAs(kubeconfigAs), port: this.bridge.port, socket: this.bridge.socketPath };
  }

  /**
   * Everything up to agents ready on both nodes; deploy/ applied as a user
   * would. `before` runs once the control plane has deploy/, before any
   * controller or agent starts (benchmarks load objects there).
   */
  static async up(opts: { agentArgs?: string[]; before?: (cp: ControlPlane) => Promise<void>; routing?: 'static' | 'l2' } = {}): Promise<LabOperatorEnv> {
    const cp = await ControlPlane.start();
    let lab: Lab | undefined;
    let bridge: ApiBridge | undefined;
    let env: LabOperatorEnv | undefined;
    try {
      cp.kubectl(['apply', '-k', join(REPO, 'deploy')]);
      cp.kubectl(['wait', '--for', 'condition=established', '--timeout=60s', ...CRD_NAMES]);
      cp.kubectl(['create', 'namespace', 'shop']);
      cp.kubectl(['apply', '-f', '-'], namespacePool('shop'));
      await opts.before?.(cp);
      // Static routes, as the default balancer has no spec.bgp; the BGP scenario switches (env.bgp).
      lab = await Lab.up({ reals: 0, pods: BACKEND_PODS, routing: opts.routing ?? 'static' });
      bridge = new ApiBridge(join(lab.workDir, 'api.sock'), Number(new URL(cp.server).port));
      await bridge.start();
      const e = (env = new LabOperatorEnv(cp, lab, bridge, opts.agentArgs ?? []));
      await e.startController();
      await e.startController();
      // The controller creates the default balancer and its DaemonSet; a DaemonSet controller would schedule two agents.
      await waitFor('the agent DaemonSet', () => e.get(['ds', AGENT_DAEMONSET, '-n', AGENT_NAMESPACE]), (ds) => !!ds);
      cp.kubectl(['patch', 'xdpbalancer', 'default', '--type=merge', '-p', JSON.stringify({ spec: { drainSeconds: DRAIN_SECONDS } })]);
      e.registerWorkers();
      e.scheduleAgents(2);
      for (const w of lab.workers.filter((x) => x.pods.length)) await lab.startBackendAgent(w, { api: e.api('xdplb-system/xdplb-backend') });
      for (const b of lab.balancers) await e.startAgent(b.name);
      return e;
    } catch (err) {
      const started = env;
      for (const id of started?.controllers() ?? []) await started!.killController(id);
      await bridge?.stop();
      await lab?.down();
      await cp.stop();
      throw err;
    }
  }

  kubectl(args: string[], input?: string): string {
    return this.cp.kubectl(args, input);
  }

  kubectlError(args: string[], input?: string): string {
    return this.cp.kubectlError(args, input);
  }

  /** An object as JSON, or null when it does not exist. */
  get(args: string[]): Record<string, any> | null {
    try {
      return JSON.parse(this.kubectl(['get', ...args, '-o', 'json']));
    } catch (err) {
      if (String((err as { stderr?: string }).stderr).includes('NotFound')) return null;
      throw err;
    }
  }

  /** The worker nodes as a kubelet registers them: a Node with its InternalIPs (Node addressing encapsulates to them). */
  private registerWorkers(): void {
    for (const w of this.lab.workers) {
      this.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: w.name } }));
      const addresses = [w.v4, w.v6].map((address) => ({ type: 'InternalIP', address }));
      this.kubectl(['patch', 'node', w.name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses } })]);
    }
  }

  /**
   * There is no DaemonSet controller nor kubelet: say that every balancer node
   * runs a ready agent, in the DaemonSet's status and with a Ready pod of its
   * template's labels on each node (the controller divides the health checks
   * among the nodes whose agent pod is Ready).
   */
  scheduleAgents(n: number): void {
    const ds = this.get(['ds', AGENT_DAEMONSET, '-n', AGENT_NAMESPACE])!;
    const status = { observedGeneration: ds.metadata.generation, desiredNumberScheduled: n, currentNumberScheduled: n, numberMisscheduled: 0, numberReady: n };
    this.kubectl(['patch', 'ds', AGENT_DAEMONSET, '-n', AGENT_NAMESPACE, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
    for (const node of this.nodes.slice(0, n)) {
      const name = `${AGENT_DAEMONSET}-${node}`;
      this.kubectl(['apply', '-f', '-'], JSON.stringify({
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name, namespace: AGENT_NAMESPACE, labels: ds.spec.template.metadata.labels },
        spec: { nodeName: node, containers: [{ name: 'agent', image: E2E_IMAGE }] },
      }));
      const podStatus = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] };
      this.kubectl(['patch', 'pod', name, '-n', AGENT_NAMESPACE, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: podStatus })]);
    }
  }

  /** `memoryLimitBytes`: run it in a memory cgroup with that limit, as its pod would (benchmarks). */
  async startController(opts: { memoryLimitBytes?: number } = {}): Promise<string> {
    const identity = `controller-${this.nextController++}`;
    const port = await freePort();
    this.controllerPorts.set(identity, port);
    const log: string[] = [];
    const argv = [process.execPath, CONTROLLER,
      '--kubeconfig', this.cp.kubeconfigAs('xdplb-system/xdplb-controller'), '--namespace', AGENT_NAMESPACE, '--identity', identity,
      '--metrics-address', `127.0.0.1:${port}`, '--agent-image', E2E_IMAGE, ...LEASE,
    ];
    const cgroup = opts.memoryLimitBytes ? MemoryCgroup.create(`xdplb-${process.pid}-${identity}`, opts.memoryLimitBytes) : null;
    const [cmd, args] = cgroup ? cgroup.wrap(argv) : [argv[0]!, argv.slice(1)];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.on('exit', () => cgroup?.remove());
    const keep = (d: Buffer) => log.push(...d.toString().split('\n').filter(Boolean));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('exit', () => this.controllerProcs.delete(identity));
    this.controllerProcs.set(identity, child);
    this.controllerLogs.set(identity, log);
    return identity;
  }

  async controllerMetrics(identity: string): Promise<Samples> {
    const res = await fetch(`http://127.0.0.1:${this.controllerPorts.get(identity)}/metrics`);
    return parseMetrics(await res.text());
  }

  controllerPid(identity: string): number | undefined {
    return this.controllerProcs.get(identity)?.pid;
  }

  agentPid(node: string): number | undefined {
    return this.balancer(node).agent?.pid ?? undefined;
  }

  controllers(): string[] {
    return [...this.controllerProcs.keys()];
  }

  async killController(identity: string): Promise<void> {
    const child = this.controllerProcs.get(identity);
    if (!child) throw new Error(`no controller ${identity}`);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  private balancer(node: string) {
    const b = this.lab.balancers.find((x) => x.name === node);
    if (!b) throw new Error(`no balancer node ${node}`);
    return b;
  }

  /** Arguments a kubelet would take from the DaemonSet's pod template beyond the lab's own: the BGP ones, with the node's BIRD directory. */
  private templateArgs: (node: string) => string[] = () => [];

  startAgent(node: string): Promise<void> {
    return this.lab.startClusterAgent(this.balancer(node), this.agentApi(node), [...this.agentArgs, ...this.templateArgs(node)]);
  }

  /**
   * The agent's token as a kubelet would project it: bound to a Pod on its node, so it carries the node
   * claim that deploy/agent-node-restriction.yaml requires of every agent status write.
   */
  private agentApi(node: string): LabApi {
    return { ...this.api('xdplb-system/xdplb-agent'), kubeconfig: this.cp.agentKubeconfigOn(node) };
  }

  /** A flag and its value in the agent container of the DaemonSet's pod template (what the controller made of the XdpBalancer), or null. */
  private templateFlag(flag: string): string[] | null {
    const ds = this.get(['ds', AGENT_DAEMONSET, '-n', AGENT_NAMESPACE])!;
    const args = (ds.spec.template.spec.containers as { name: string; args: string[] }[]).find((c) => c.name === 'agent')!.args;
    const at = args.indexOf(flag);
    return at < 0 ? null : args.slice(at, at + 2);
  }

  private bgpArgsOfTemplate(): string[] | null {
    return this.templateFlag('--bgp');
  }

  /**
   * L2 mode (an env made with routing 'l2'): patches spec.l2 into the default
   * balancer and restarts the agents with the DaemonSet's L2 flags, as a
   * rollout would; the pod's namespace (POD_NAMESPACE in a pod) is given as a flag.
   */
  async startL2(leaseSeconds: number): Promise<void> {
    this.kubectl(['patch', 'xdpbalancer', 'default', '--type=merge', '-p', JSON.stringify({ spec: { l2: { leaseSeconds } } })]);
    const l2 = await waitFor('--l2-lease-seconds in the agent DaemonSet', () => this.templateFlag('--l2-lease-seconds'), (a) => a?.[1] === String(leaseSeconds));
    const drain = this.templateFlag('--drain-seconds') ?? [];
    this.templateArgs = () => [...l2!, ...drain, '--namespace', AGENT_NAMESPACE];
    await this.rollAgents();
  }

  /** Starts an agent with extra flags beyond the template's (a test's --detach-on-exit). */
  startAgentWith(node: string, extra: string[]): Promise<void> {
    return this.lab.startClusterAgent(this.balancer(node), this.agentApi(node), [...this.agentArgs, ...this.templateArgs(node), ...extra]);
  }

  /** A rolling update as the DaemonSet controller and kubelet would do it: one node at a time, SIGTERM, then the new template's agent. */
  private async rollAgents(): Promise<void> {
    for (const b of this.lab.balancers) {
      await this.lab.stopAgent(b, 'SIGTERM');
      await this.startAgent(b.name);
    }
  }

  readonly bgp: BgpRouter = {
    settings: () => ({
      localASN: BALANCER_ASN,
      peers: this.lab.balancers.flatMap((b) => [b.gatewayV4, b.gatewayV6].map((address) => ({ address, asn: ROUTER_ASN }))),
    }),
    start: async () => {
      const bgp = await waitFor('--bgp in the agent DaemonSet', () => this.bgpArgsOfTemplate(), (a) => a !== null);
      this.templateArgs = (node) => [...bgp!, '--bird-dir', this.balancer(node).birdDir];
      await this.lab.startBgp();
      await this.rollAgents();
    },
    nextHops: (address) => this.lab.routerNextHops(address),
    nodeHops: (address) => this.lab.balancers.map((b) => (address.includes(':') ? b.v6 : b.v4)).sort(),
    stop: async () => {
      await waitFor('no --bgp in the agent DaemonSet', () => this.bgpArgsOfTemplate(), (a) => a === null);
      this.templateArgs = () => [];
      await this.lab.useStaticRoutes();
      await this.rollAgents();
    },
  };

  async restartAgent(node: string): Promise<void> {
    await this.lab.stopAgent(this.balancer(node), 'SIGKILL');
    await this.startAgent(node);
  }

  readonly hasUngrantedUser = true;

  /** On the node, against its local agent, as a person: alice has the grant, bob nothing. */
  startTrace(node: string, args: string[], user: 'granted' | 'ungranted'): Promise<RunningTrace> {
    const kubeconfig = this.cp.kubeconfigAs(user === 'granted' ? 'alice' : 'bob');
    return watchTrace(this.lab.spawnNode(this.balancer(node).ns, XDPLB_CLI, ['trace', '--kubeconfig', kubeconfig, ...args]));
  }

  agentLog(node: string): string[] {
    return this.balancer(node).log;
  }

  async agentMetrics(node: string) {
    return parseMetrics(await this.lab.httpGet(this.balancer(node), '/metrics'));
  }

  private pod(name: string): LabPod {
    const pod = this.pods().find((p) => p.name === name);
    if (!pod) throw new Error(`no backend ${name}`);
    return pod;
  }

  /** Stops the pod's node's backend agent (which leaves its links in place) and unpins the pod's two links: nothing holds them, so they detach. */
  async breakBackendPath(name: string): Promise<void> {
    const pod = this.pod(name);
    await this.lab.stopBackendAgent(pod.worker);
    for (const direction of ['ingress', 'egress']) rmSync(join(pod.worker.pinDir, `tcx_${pod.veth}_${direction}`));
  }

  /** Starts the node's backend agent again: it attaches the pod's programs anew. */
  restoreBackendPath(name: string): Promise<void> {
    return this.lab.startBackendAgent(this.pod(name).worker, { api: this.api('xdplb-system/xdplb-backend') });
  }

  async setBackend(name: string, state: BackendState): Promise<void> {
    const pod = this.pod(name);
    if (state === 'absent') {
      this.kubectl(['delete', 'pod', name, '-n', this.namespace, '--grace-period=0', '--force', '--ignore-not-found']);
      return;
    }
    this.kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name, namespace: this.namespace, labels: { app: 'web' } },
      spec: { nodeName: pod.worker.name, containers: [{ name: 'server', image: E2E_IMAGE }] },
    }));
    const status = {
      phase: 'Running', podIP: pod.v4, podIPs: [{ ip: pod.v4 }, { ip: pod.v6 }],
      conditions: [{ type: 'Ready', status: state === 'ready' ? 'True' : 'False' }],
    };
    this.kubectl(['patch', 'pod', name, '-n', this.namespace, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
  }

  /** This control plane runs no EndpointSlice controller: the lab writes the slice it would. */
  async syncEndpoints(service: string, port: number): Promise<void> {
    const pods = (JSON.parse(this.kubectl(['get', 'pods', '-n', this.namespace, '-l', 'app=web', '-o', 'json'])) as { items: V1Pod[] }).items;
    const endpoints = pods.filter((p) => p.status?.podIP).map((p) => ({
      addresses: [p.status!.podIP!],
      conditions: { ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false, serving: true, terminating: false },
      targetRef: { kind: 'Pod', namespace: this.namespace, name: p.metadata!.name },
      nodeName: p.spec?.nodeName,
    }));
    this.kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${service}-lab`, namespace: this.namespace, labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'xdplb-lab' } },
      addressType: 'IPv4', endpoints, ports: [{ name: 'http', protocol: 'TCP', port }],
    }));
  }

  connect(vip: string, port: number, count: number): Promise<ConnectResult> {
    return this.lab.clientRun({ mode: 'connect', vip, port, count, concurrency: 8 });
  }

  long(vip: string, port: number, durationMs: number, intervalMs: number): Promise<LongResult> {
    return this.lab.clientRun({ mode: 'long', vip, port, durationMs, intervalMs });
  }

  continuous(vip: string, port: number, durationMs: number): Promise<ContinuousResult> {
    return this.lab.clientRun({ mode: 'continuous', vip, port, durationMs });
  }

  async apiOutage(ms: number): Promise<void> {
    await this.bridge.cut();
    await sleep(ms);
    await this.bridge.restore();
  }

  async down(): Promise<void> {
    for (const id of this.controllers()) await this.killController(id).catch(() => undefined);
    await this.bridge.stop();
    await this.lab.down();
    await this.cp.stop();
  }
}
