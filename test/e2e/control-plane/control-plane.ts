/**
 * A real Kubernetes control plane for tests: etcd and kube-apiserver on
 * loopback, with a token for an admin in system:masters. Binaries come from
 * XDPLB_KUBE_APISERVER / XDPLB_ETCD / XDPLB_KUBECTL, else from the cache that
 * build.sh fills (building them through the Go module proxy the first time).
 * stop() ends both processes and removes their data, also on process exit or an interrupt.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onExitOrSignal } from '../../support/cleanup.js';

const BUILD_SCRIPT = fileURLToPath(new URL('../../../../test/e2e/control-plane/build.sh', import.meta.url));
const READY_TIMEOUT_MS = 60_000;
/** How long a process may take to exit on SIGTERM before it is killed (kube-apiserver takes about 1 s with etcd up). */
const STOP_TIMEOUT_MS = 15_000;
/** Service addresses come from the benchmarking range, as every address in our tests does. */
const SERVICE_CIDR = '198.18.240.0/24';
/**
 * Service accounts whose tokens the API server accepts, so the controller and
 * agents under test get exactly the permissions deploy/'s RBAC grants them.
 */
export const TEST_SERVICE_ACCOUNTS = ['xdplb-system/xdplb-agent', 'xdplb-system/xdplb-controller', 'xdplb-system/xdplb-backend',
  // A Prometheus scraping the agents' /metrics with its own token.
  'monitoring/prometheus'] as const;
/** People with no permission but what a test binds to them (e.g. deploy/'s xdplb-trace role). */
export const TEST_USERS = ['alice', 'bob', 'carol'] as const;
export type TestServiceAccount = (typeof TEST_SERVICE_ACCOUNTS)[number] | (typeof TEST_USERS)[number];

export interface Binaries {
  kubeApiserver: string;
  etcd: string;
  kubectl: string;
}

export function binaries(): Binaries {
  const env = process.env;
  if (env.XDPLB_KUBE_APISERVER && env.XDPLB_ETCD && env.XDPLB_KUBECTL) {
    return { kubeApiserver: env.XDPLB_KUBE_APISERVER, etcd: env.XDPLB_ETCD, kubectl: env.XDPLB_KUBECTL };
  }
  // Prints the cache directory; builds into it first when it is empty (minutes, once).
  const dir = execFileSync('bash', [BUILD_SCRIPT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!;
  return { kubeApiserver: join(dir, 'kube-apiserver'), etcd: join(dir, 'etcd'), kubectl: join(dir, 'kubectl') };
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function get(url: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { authorization: `Bearer ${token}` }, rejectUnauthorized: false, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** The stderr of a command that must fail; throws when it succeeds. */
export function failureOutput(run: () => unknown, what: string): string {
  try {
    run();
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
  throw new Error(`${what} succeeded, a failure was expected`);
}

/** Whether a child has exited: exitCode stays null for one killed by a signal, signalCode says so. */
const exited = (p: ChildProcess) => p.exitCode !== null || p.signalCode !== null;

/** SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT_MS; resolves once it has exited. */
async function stopProcess(p: ChildProcess): Promise<void> {
  if (exited(p)) return;
  const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  p.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), STOP_TIMEOUT_MS)));
  if ((await Promise.race([gone, late])) === 'late') {
    p.kill('SIGKILL');
    await gone;
  }
  clearTimeout(timer);
}

function writeKubeconfig(path: string, server: string, token: string): string {
  writeFileSync(path, [
    'apiVersion: v1', 'kind: Config', 'current-context: xdplb-test',
    `clusters: [{name: xdplb-test, cluster: {server: "${server}", insecure-skip-tls-verify: true}}]`,
    `users: [{name: user, user: {token: "${token}"}}]`,
    'contexts: [{name: xdplb-test, context: {cluster: xdplb-test, user: user}}]', '',
  ].join('\n'));
  return path;
}

export class ControlPlane {
  private stopped = false;
  private readonly unregisterCleanup: () => void;

  private constructor(
    readonly dir: string,
    readonly server: string,
    readonly token: string,
    readonly kubeconfig: string,
    readonly bin: Binaries,
    private readonly etcd: ChildProcess,
    private readonly apiserver: ChildProcess,
    private readonly saKubeconfigs: Map<TestServiceAccount, string>,
  ) {
    this.unregisterCleanup = onExitOrSignal(() => this.stopSync());
  }

  static async start(): Promise<ControlPlane> {
    const bin = binaries();
    const dir = mkdtempSync(join(tmpdir(), 'xdplb-control-plane-'));
    const procs: ChildProcess[] = []; // etcd, kube-apiserver
    const fail = (err: unknown) => {
      for (const p of procs) p.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw err;
    };
    try {
      const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
      const token = randomBytes(16).toString('hex');
      const saTokens = new Map<TestServiceAccount, string>(TEST_SERVICE_ACCOUNTS.map((sa) => [sa, randomBytes(16).toString('hex')]));
      const userTokens = new Map<TestServiceAccount, string>(TEST_USERS.map((u) => [u, randomBytes(16).toString('hex')]));
      writeFileSync(join(dir, 'tokens.csv'), [
        `${token},admin,admin,system:masters`,
        ...[...saTokens].map(([sa, t]) => {
          const [ns, name] = sa.split('/');
          return `${t},system:serviceaccount:${ns}:${name},${sa},"system:serviceaccounts,system:serviceaccounts:${ns},system:authenticated"`;
        }),
        ...[...userTokens].map(([user, t]) => `${t},${user},${user},system:authenticated`),
        '',
      ].join('\n'));
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
      writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
      const etcdUrl = `http://127.0.0.1:${etcdClient}`;
      procs.push(spawn(bin.etcd, [
        '--data-dir', join(dir, 'etcd'), '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
        '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`,
        '--initial-cluster', `default=http://127.0.0.1:${etcdPeer}`, '--log-level', 'error',
      ], { stdio: 'ignore' }));
      procs.push(spawn(bin.kubeApiserver, [
        '--etcd-servers', etcdUrl, '--bind-address', '127.0.0.1', '--advertise-address', '127.0.0.1',
        '--secure-port', String(apiPort), '--cert-dir', join(dir, 'certs'), '--token-auth-file', join(dir, 'tokens.csv'),
        '--authorization-mode', 'RBAC', '--service-account-key-file', join(dir, 'sa.pub'),
        '--service-account-signing-key-file', join(dir, 'sa.key'), '--service-account-issuer', 'https://xdplb.test',
        '--service-cluster-ip-range', SERVICE_CIDR,
        // No controller-manager makes default ServiceAccounts: pods would be refused.
        '--disable-admission-plugins', 'ServiceAccount',
        // The agent DaemonSet's init container that mounts a bpffs is privileged; kubelets allow it the same way.
        '--allow-privileged=true',
      ], { stdio: 'ignore' }));
      const server = `https://127.0.0.1:${apiPort}`;
      const deadline = Date.now() + READY_TIMEOUT_MS;
      for (;;) {
        const dead = procs.find(exited);
        if (dead) throw new Error(`${dead.spawnfile} exited with ${dead.exitCode ?? dead.signalCode} while starting`);
        const r = await get(`${server}/readyz`, token).catch(() => null);
        if (r?.status === 200) break;
        if (Date.now() > deadline) throw new Error(`kube-apiserver not ready after ${READY_TIMEOUT_MS} ms (last: ${r?.status} ${r?.body.slice(0, 200)})`);
        await new Promise((res) => setTimeout(res, 250));
      }
      const kubeconfig = writeKubeconfig(join(dir, 'kubeconfig'), server, token);
      const saKubeconfigs = new Map([...saTokens, ...userTokens].map(([sa, t]) => [sa, writeKubeconfig(join(dir, `kubeconfig-${sa.replace('/', '-')}`), server, t)]));
      return new ControlPlane(dir, server, token, kubeconfig, bin, procs[0]!, procs[1]!, saKubeconfigs);
    } catch (err) {
      return fail(err);
    }
  }

  /** A kubeconfig that authenticates as one of TEST_SERVICE_ACCOUNTS. */
  kubeconfigAs(sa: TestServiceAccount): string {
    return this.saKubeconfigs.get(sa)!;
  }

  /**
   * A kubeconfig for the agent on `node` with the token a kubelet would project
   * into its pod: a TokenRequest for the xdplb-agent ServiceAccount bound to a
   * Pod on that node, so the API server puts the node name claim
   * (authentication.kubernetes.io/node-name) in its user info, which
   * deploy/agent-node-restriction.yaml requires. The static token of
   * kubeconfigAs('xdplb-system/xdplb-agent') has no such claim. Creates the Node
   * (without it the token has no node claim) and, unless `pod` names an existing
   * one (with serviceAccountName xdplb-agent and spec.nodeName `node`), a
   * bare Pod for the token; the ServiceAccount must exist (deploy/rbac-agent.yaml).
   * The token is valid until that Pod is deleted (or for a day).
   */
  agentKubeconfigOn(node: string, opts: { pod?: string } = {}): string {
    const [ns, sa] = ['xdplb-system', 'xdplb-agent'];
    if (!this.kubectl(['get', 'node', node, '--ignore-not-found', '-o', 'name']).trim()) {
      this.kubectl(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: node } }));
    }
    const pod = opts.pod ?? `${sa}-token-${node}`;
    if (!opts.pod && !this.kubectl(['get', 'pod', pod, '-n', ns, '--ignore-not-found', '-o', 'name']).trim()) {
      this.kubectl(['create', '-f', '-'], JSON.stringify({
        apiVersion: 'v1', kind: 'Pod', metadata: { name: pod, namespace: ns },
        spec: { nodeName: node, serviceAccountName: sa, containers: [{ name: 'agent', image: 'xdplb-token-holder' }] },
      }));
    }
    const token = this.kubectl(['create', 'token', sa, '-n', ns, '--bound-object-kind', 'Pod', '--bound-object-name', pod, '--duration', '24h']).trim();
    return writeKubeconfig(join(this.dir, `kubeconfig-agent-${node}-${pod}`), this.server, token);
  }

  /** Runs kubectl against this control plane; throws with its stderr when it fails. */
  kubectl(args: string[], input?: string): string {
    return execFileSync(this.bin.kubectl, ['--kubeconfig', this.kubeconfig, ...args], {
      input,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  }

  /** kubectl that is expected to fail: returns its error output. */
  kubectlError(args: string[], input?: string): string {
    return failureOutput(() => this.kubectl(args, input), `kubectl ${args.join(' ')}`);
  }

  /**
   * kube-apiserver first, while etcd still answers: stopped after etcd it
   * retries etcd for over 10 s before it exits; stopped first, about 1 s.
   */
  async stop(): Promise<void> {
    await stopProcess(this.apiserver);
    await stopProcess(this.etcd);
    this.stopSync();
  }

  private stopSync(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.unregisterCleanup();
    for (const p of [this.apiserver, this.etcd]) if (!exited(p)) p.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
