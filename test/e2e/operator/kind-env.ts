/**
 * The operator scenarios on a kind cluster (test/e2e/kind/run.sh sets it up:
 * the image loaded, deploy/ applied, a client container on the kind network
 * routing the VIP to the balancer nodes). Backends are unmodified pods of the
 * e2e image in a namespace that enforces the restricted pod security profile:
 * the lab's server program on POD_PORT, as a user, no capability, no VIP, no
 * BPF (the xdplb-backend DaemonSet delivers to them); readiness follows a
 * file the test creates and removes with kubectl exec.
 *
 * Environment: KUBECONFIG (or the current context), XDPLB_E2E_IMAGE (the
 * e2e image tag), XDPLB_E2E_CLIENT (client container name), XDPLB_E2E_VIP.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type RunningTrace, watchTrace, XDPLB_CLI } from '../../support/trace-process.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseMetrics, type Samples } from '../../support/prometheus.js';
import type { BackendState, ConnectResult, ContinuousResult, LongResult, OperatorEnv } from './env.js';
import { failureOutput } from '../control-plane/control-plane.js';
import { namespacePool } from '../pool-manifests.js';
import { AGENT_NAMESPACE, waitFor } from './lab-env.js';
import { POD_PORT } from '../../lab/lab.js';
import type { AgentEndpointsStatus, XdpBalancer } from '../../../src/api/xdpbalancer.js';

const CLIENT_PROGRAM = '/app/dist/test/lab/programs/client.js';
const SERVER_PROGRAM = '/app/dist/test/lab/programs/server.js';
const ANY_V4 = '0.0.0.0';
/** The image's unprivileged user (deploy/Dockerfile runs the controller as it too). */
const NON_ROOT_UID = 65532;
const READY_FILE = '/tmp/ready';
/** The backends' readiness probe may take this long (see createBackend). */
const PROBE_TIMEOUT_SECONDS = 10;
const AGENT_METRICS_PORT = 9641;
const CONTROLLER_METRICS_PORT = 9642;
/** Nodes the kind config labels as balancer nodes (test/e2e/kind/cluster.yaml). */
const BALANCER_NODE_LABEL = 'xdplb.dev/balancer-node=true';
const POD_WAIT_MS = 120_000;
/** How long a restarted agent may take to publish its new certificate: its report period (5 s) and more. */
const CERTIFICATE_UPDATE_WAIT_MS = 2000;
const CERTIFICATE_UPDATE_ATTEMPTS = 10;
/** The kubelet restarts a stopped static pod's container within its back-off (10 s, then doubling). */
const API_RESTART_WAIT_MS = 180_000;
/** The client program prints one JSON result; errors lists at most every failed connection. */
const CLIENT_OUTPUT_MAX = 64 << 20;
const execFileAsync = promisify(execFile);
/**
 * The agents answer /metrics and /trace only to a bearer token RBAC allows
 * (README: Who may scrape metrics and trace packets); the cluster admin of
 * run.sh authenticates by client certificate and has none. This service
 * account scrapes as Prometheus would and traces the test namespace's VIPs.
 */
const E2E_SA = 'xdplb-e2e';
const PROMETHEUS_RBAC = fileURLToPath(new URL('../../../../deploy/prometheus/rbac.yaml', import.meta.url));
/**
 * `node -e SCRAPE URL TOKEN [FINGERPRINT]`: GET the https URL with the bearer token, the body on stdout; exit 1
 * unless 200, or when FINGERPRINT is given and the server's certificate has another.
 */
const SCRAPE = 'const [url, token, fp] = process.argv.slice(1); require("https").get(url, { headers: { authorization: `Bearer ${token}` }, ' +
  'rejectUnauthorized: false }, (r) => { const seen = r.socket.getPeerCertificate().fingerprint256; let t = ""; r.on("data", (c) => { t += c; }); ' +
  'r.on("end", () => { if (fp && seen !== fp) { process.stderr.write(`certificate ${seen}, published ${fp}`); process.exit(1); } ' +
  'if (r.statusCode !== 200) { process.stderr.write(`HTTP ${r.statusCode}: ${t}`); process.exit(1); } process.stdout.write(t); }); })' +
  '.on("error", (e) => { process.stderr.write(e.message); process.exit(1); });';

const env = process.env;

export class KindOperatorEnv implements OperatorEnv {
  readonly namespace = 'shop';
  readonly backendNames = ['backend-1', 'backend-2', 'backend-3'];
  readonly backendPort = POD_PORT;
  readonly vip4 = env.XDPLB_E2E_VIP ?? '198.19.0.10';
  /** L2 mode's VIP (test/e2e/kind/l2.test.ts): an address of the kind network itself, far above what Docker hands out. */
  readonly l2Vip = env.XDPLB_E2E_L2_VIP ?? '198.19.128.240';
  /** Outlasts the drain scenario's long-lived connections (operator.test.ts: DRAIN_OUTLASTS_LONG_MS). */
  readonly drainSeconds = 10;
  readonly nodes: string[];
  private readonly image = env.XDPLB_E2E_IMAGE ?? 'xdplb-e2e:dev';
  private readonly client = env.XDPLB_E2E_CLIENT ?? 'xdplb-e2e-client';
  /** E2E_SA's token. */
  private token = '';

  private constructor() {
    this.nodes = this.kubectl(['get', 'nodes', '-l', BALANCER_NODE_LABEL, '-o', 'jsonpath={.items[*].metadata.name}']).split(' ').filter(Boolean);
    if (!this.nodes.length) throw new Error(`no node labelled ${BALANCER_NODE_LABEL}: run test/e2e/kind/run.sh`);
  }

  static async up(): Promise<KindOperatorEnv> {
    const e = new KindOperatorEnv();
    e.kubectl(['apply', '-f', '-'], `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${e.namespace}, labels: {pod-security.kubernetes.io/enforce: restricted}}\n`);
    e.kubectl(['apply', '-f', '-'], namespacePool(e.namespace));
    e.kubectl(['apply', '-f', PROMETHEUS_RBAC]);
    e.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: E2E_SA, namespace: AGENT_NAMESPACE } },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: `${E2E_SA}-metrics` },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'xdplb-metrics-reader' },
        subjects: [{ kind: 'ServiceAccount', name: E2E_SA, namespace: AGENT_NAMESPACE }] },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: `${E2E_SA}-trace`, namespace: e.namespace },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'xdplb-trace' },
        subjects: [{ kind: 'ServiceAccount', name: E2E_SA, namespace: AGENT_NAMESPACE }] },
    ] }));
    e.token = e.kubectl(['create', 'token', E2E_SA, '-n', AGENT_NAMESPACE, '--duration', '6h']).trim();
    e.kubectl(['patch', 'xdpbalancer', 'default', '--type=merge', '-p', JSON.stringify({ spec: { drainSeconds: e.drainSeconds } })]);
    e.kubectl(['rollout', 'status', '-n', AGENT_NAMESPACE, 'ds/xdplb-agent-default', '--timeout=180s']);
    return e;
  }

  kubectl(args: string[], input?: string): string {
    return execFileSync('kubectl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  }

  kubectlError(args: string[], input?: string): string {
    return failureOutput(() => this.kubectl(args, input), `kubectl ${args.join(' ')}`);
  }

  /** Whether a pod of the test namespace is Ready; null: there is no such pod. */
  podReady(name: string): boolean | null {
    try {
      return this.kubectl(['get', 'pod', name, '-n', this.namespace, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']) === 'True';
    } catch {
      return null;
    }
  }

  async setBackend(name: string, state: BackendState): Promise<void> {
    if (state === 'absent') {
      this.kubectl(['delete', 'pod', name, '-n', this.namespace, '--grace-period=0', '--force', '--ignore-not-found']);
      return;
    }
    if (this.podReady(name) === null) this.createBackend(name);
    await waitFor(`${name} running`, () => this.kubectl(['get', 'pod', name, '-n', this.namespace, '-o', 'jsonpath={.status.phase}']), (p) => p === 'Running', POD_WAIT_MS);
    this.kubectl(['exec', '-n', this.namespace, name, '--', 'sh', '-c', state === 'ready' ? `touch ${READY_FILE}` : `rm -f ${READY_FILE}`]);
    await waitFor(`${name} ${state}`, () => this.podReady(name), (r) => r === (state === 'ready'), POD_WAIT_MS);
  }

  private createBackend(name: string): void {
    const server = JSON.stringify({ name, tcp: [{ address: ANY_V4, port: this.backendPort }], udp: [{ address: ANY_V4, port: this.backendPort }] });
    this.kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name, namespace: this.namespace, labels: { app: 'web' } },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [{
          name: 'server', image: this.image, imagePullPolicy: 'Never', command: ['node', SERVER_PROGRAM, server],
          // What the restricted pod security profile allows: nothing more.
          securityContext: { runAsNonRoot: true, runAsUser: NON_ROOT_UID, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] },
            seccompProfile: { type: 'RuntimeDefault' } },
          // Fast to follow the file (period 1 s, one failure), but a probe that a loaded machine runs late is no failure:
          // with the default 1 s timeout, exec probes timed out on a busy 2-core CI machine and Ready flapped.
          readinessProbe: { exec: { command: ['test', '-f', READY_FILE] }, periodSeconds: 1, failureThreshold: 1, timeoutSeconds: PROBE_TIMEOUT_SECONDS },
        }],
      },
    }));
  }

  /** Asynchronous: scenarios run traffic while they kill, drain or restart things. */
  private async clientRun<T>(cmd: object): Promise<T> {
    const { stdout } = await execFileAsync('docker', ['exec', this.client, 'node', CLIENT_PROGRAM, JSON.stringify(cmd)], { encoding: 'utf8', maxBuffer: CLIENT_OUTPUT_MAX });
    return JSON.parse(stdout) as T;
  }

  connect(vip: string, port: number, count: number): Promise<ConnectResult> {
    return this.clientRun({ mode: 'connect', vip, port, count, concurrency: 8 });
  }

  long(vip: string, port: number, durationMs: number, intervalMs: number): Promise<LongResult> {
    return this.clientRun({ mode: 'long', vip, port, durationMs, intervalMs });
  }

  continuous(vip: string, port: number, durationMs: number): Promise<ContinuousResult> {
    return this.clientRun({ mode: 'continuous', vip, port, durationMs });
  }

  /**
   * The pod of xdplb-system matching the selector on a node (a DaemonSet's); '' while the DaemonSet
   * replaces a deleted pod (a jsonpath of items[0] fails on the empty list).
   */
  systemPodOn(node: string, selector: string): string {
    return this.kubectl(['get', 'pods', '-n', AGENT_NAMESPACE, '-l', selector, '--field-selector', `spec.nodeName=${node}`,
      '-o', 'jsonpath={.items[*].metadata.name}']).split(' ').filter(Boolean)[0] ?? '';
  }

  /**
   * An xdplb-system pod's /metrics with E2E_SA's token, fetched in the pod itself (its image has node):
   * they answer only a token RBAC allows, and the API server's pod proxy would drop the Authorization header.
   */
  systemPodMetrics(pod: string, port: number): Samples {
    return parseMetrics(this.kubectl(['exec', '-n', AGENT_NAMESPACE, pod, '--', 'node', '-e', SCRAPE, `https://127.0.0.1:${port}/metrics`, this.token]));
  }

  private agentPod(node: string): string {
    return this.systemPodOn(node, 'app.kubernetes.io/name=xdplb-agent');
  }

  /** Only the current context's user: it must hold the grant (run.sh uses the cluster admin). */
  readonly hasUngrantedUser = false;

  /**
   * From this machine, as `xdplb trace --node` is meant to be used: straight to the node's agent over HTTPS,
   * at the address and with the certificate fingerprint it published (read with the admin's kubeconfig, as is
   * the VIP), or every other time --via api-server; the agent authorizes E2E_SA's token (the test namespace only).
   */
  startTrace(node: string, args: string[], user: 'granted' | 'ungranted'): Promise<RunningTrace> {
    if (user !== 'granted') throw new Error('the kind environment has no ungranted user');
    // Every other trace takes the other route, through the API server's port-forward (only kind has a kubelet).
    const via = this.tracesStarted++ % 2 === 1 ? ['--via', 'api-server'] : [];
    return watchTrace(spawn(process.execPath, [XDPLB_CLI, 'trace', '--node', node, ...via, '--token', this.token, ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] }));
  }
  private tracesStarted = 0;

  agentLog(node: string): string[] {
    return this.kubectl(['logs', '-n', AGENT_NAMESPACE, this.agentPod(node)]).split('\n');
  }

  /** kube-controller-manager's EndpointSlice controller writes the slices: wait until they list every app=web pod. */
  async syncEndpoints(service: string): Promise<void> {
    const pods = () => this.kubectl(['get', 'pods', '-n', this.namespace, '-l', 'app=web', '-o', 'jsonpath={.items[*].status.podIP}']).split(' ').filter(Boolean).sort();
    const listed = () => this.kubectl(['get', 'endpointslices', '-n', this.namespace, '-l', `kubernetes.io/service-name=${service}`,
      '-o', 'jsonpath={.items[*].endpoints[*].addresses[0]}']).split(' ').filter(Boolean).sort();
    await waitFor(`the EndpointSlices of ${service} list every app=web pod`, () => [pods(), listed()], ([p, l]) => JSON.stringify(p) === JSON.stringify(l));
  }

  /** What the node's agent published in its status entry: address, ports and its certificate's fingerprint. */
  async agentEndpoints(node: string): Promise<AgentEndpointsStatus> {
    const read = () => {
      const b = JSON.parse(this.kubectl(['get', 'xdpbalancer', 'default', '-o', 'json'])) as XdpBalancer;
      return b.status?.nodes?.find((n) => n.node === node)?.endpoints;
    };
    return (await waitFor(`the agent on ${node} publishes its endpoints`, read, (ep) => !!ep?.certificateSHA256, POD_WAIT_MS))!;
  }

  /**
   * As Prometheus scrapes it: HTTPS to the node's address with E2E_SA's token, from the client container on
   * the kind network (the API server's pod proxy would drop the Authorization header); the certificate must
   * be the one the agent published (a scrape that reaches another server fails).
   */
  async agentMetrics(node: string): Promise<Samples> {
    // A restarted agent serves a new certificate at once and publishes it within its report period (5 s): until
    // then the entry names the old one, and the scrape is refused, as it should be. Read the entry again then.
    for (let attempt = 1; ; attempt++) {
      const ep = await this.agentEndpoints(node);
      try {
        const { stdout } = await execFileAsync('docker', ['exec', this.client, 'node', '-e', SCRAPE,
          `https://${ep.address}:${ep.metricsPort ?? AGENT_METRICS_PORT}/metrics`, this.token, ep.certificateSHA256],
        { encoding: 'utf8', maxBuffer: CLIENT_OUTPUT_MAX });
        return parseMetrics(stdout);
      } catch (err) {
        if (attempt >= CERTIFICATE_UPDATE_ATTEMPTS || !/published/.test(String((err as { stderr?: string }).stderr))) throw err;
        await sleep(CERTIFICATE_UPDATE_WAIT_MS);
      }
    }
  }

  async restartAgent(node: string): Promise<void> {
    const old = this.agentPod(node);
    this.kubectl(['delete', 'pod', old, '-n', AGENT_NAMESPACE, '--grace-period=0', '--force']);
    await waitFor(`a new ready agent on ${node}`, () => {
      const pod = this.agentPod(node);
      if (!pod || pod === old) return false;
      return this.kubectl(['get', 'pod', pod, '-n', AGENT_NAMESPACE, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']) === 'True';
    }, (ok) => ok, POD_WAIT_MS);
  }

  controllers(): string[] {
    return this.kubectl(['get', 'pods', '-n', AGENT_NAMESPACE, '-l', 'app.kubernetes.io/name=xdplb-controller', '--field-selector', 'status.phase=Running',
      '-o', 'jsonpath={.items[*].metadata.name}']).split(' ').filter(Boolean);
  }

  async controllerMetrics(identity: string): Promise<Samples> {
    return this.systemPodMetrics(identity, CONTROLLER_METRICS_PORT);
  }

  async killController(identity: string): Promise<void> {
    this.kubectl(['delete', 'pod', identity, '-n', AGENT_NAMESPACE, '--grace-period=0', '--force']);
    await sleep(100);
  }

  /**
   * Stops the kube-apiserver container (its connections close, as in a crash or
   * an upgrade) and lets the kubelet start it again after `ms`; resolves once
   * the API answers again.
   */
  async apiOutage(ms: number): Promise<void> {
    const node = this.kubectl(['get', 'nodes', '-l', 'node-role.kubernetes.io/control-plane', '-o', 'jsonpath={.items[0].metadata.name}']);
    const crictl = (...args: string[]) => execFileSync('docker', ['exec', node, 'crictl', ...args], { encoding: 'utf8' }).trim();
    const id = crictl('ps', '-q', '--name', 'kube-apiserver');
    if (!id) throw new Error(`no kube-apiserver container on ${node}`);
    crictl('stop', '--timeout', '0', id);
    await sleep(ms);
    await waitFor('the API server answering again', () => {
      try {
        return this.kubectl(['get', '--raw', '/readyz']);
      } catch {
        return '';
      }
    }, (r) => r === 'ok', API_RESTART_WAIT_MS, 500);
  }

  async down(): Promise<void> {
    this.kubectl(['delete', 'lbvip', '--all', '-n', this.namespace, '--ignore-not-found']);
    this.kubectl(['delete', 'pod', '--all', '-n', this.namespace, '--grace-period=0', '--force', '--ignore-not-found']);
  }
}
