/**
 * Announcing VIPs by BGP on a real cluster, run by test/e2e/kind/run.sh after
 * the operator scenarios and before test/e2e/kind/cluster.test.ts (drain, then
 * uninstall, last). The client container plays the router: its BIRD peers
 * with both balancer workers (TCP MD5, the password from a Secret in
 * xdplb-system) and merges what they announce into an ECMP route in its
 * kernel table, in place of the static route run.sh gave it. What it proves:
 * BIRD as a native sidecar under a real kubelet, bird2 in the image, the
 * memory-backed configuration volume, the mounted password.
 *
 * It leaves things as it found them: spec.bgp removed (the agents roll back),
 * the client's BIRD stopped and its static route back, the Secret gone.
 * Environment as cluster.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { KindOperatorEnv } from '../operator/kind-env.js';
import { AGENT_NAMESPACE, waitFor } from '../operator/lab-env.js';
import { vipManifest } from '../invalid-vips.js';
import { sample } from '../../support/prometheus.js';
import { BIRD_DIR } from '../../../src/controller/agent-daemonset.js';
import { BALANCER_ASN, ROUTER_ASN } from '../../lab/router-bird.js';

const HTTP = 80;
const CLIENT = process.env.XDPLB_E2E_CLIENT ?? 'xdplb-e2e-client';
const AGENT_SELECTOR = 'app.kubernetes.io/name=xdplb-agent';
const AGENT_DS = 'ds/xdplb-agent-default';
const SECRET = 'xdplb-e2e-bgp';
const SECRET_KEY = 'client';
/** Letters and digits only: it goes into both BIRD configurations. */
const PASSWORD = 'kind0e2e0md5';
/** The client's BIRD, its configuration, control socket and log. */
const ROUTER_DIR = '/tmp/xdplb-router';
/** A second VIP, announced and then deleted (no backend answers on it: announcing needs none). */
const OTHER_VIP = { name: 'web-other', address: '198.19.0.11' };
/** Agents roll one node at a time, each waiting out its withdrawal and drain. */
const ROLL_WAIT = '300s';
/** BIRD retries a session every few seconds (connect retry time 2 on the client). */
const SESSION_WAIT_MS = 120_000;
const ROUTE_WAIT_MS = 60_000;
/** The client's kernel spreads flows over the ECMP next hops by their ports too (the default hashes addresses only). */
const MULTIPATH_HASH = 'net.ipv4.fib_multipath_hash_policy';

/** What `ip -j route` says of a route: one gateway, or several (multipath). */
interface KernelRoute { gateway?: string; nexthops?: { gateway: string }[] }

function onClient(args: string[], input?: string): string {
  return execFileSync('docker', ['exec', '-i', CLIENT, ...args], { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }).trim();
}

/** A sysctl of the client's network namespace (its /proc/sys is read-only inside the container). */
function clientSysctl(setting: string): string {
  const pid = execFileSync('docker', ['inspect', '-f', '{{.State.Pid}}', CLIENT], { encoding: 'utf8' }).trim();
  return execFileSync('nsenter', ['-t', pid, '-n', 'sysctl', '-n', ...(setting.includes('=') ? ['-w', setting] : [setting])], { encoding: 'utf8' }).trim();
}

/** The next hops of the client's route to `address`, by who made it: BIRD, or `ip route add` (proto boot). */
function clientNextHops(address: string, protocol: 'bird' | 'boot'): string[] {
  const routes = JSON.parse(onClient(['ip', '-j', 'route', 'show', `${address}/32`, 'proto', protocol]) || '[]') as KernelRoute[];
  return routes.flatMap((r) => r.nexthops?.map((h) => h.gateway) ?? (r.gateway ? [r.gateway] : [])).sort();
}

/** The router's configuration: one session per balancer worker, VIP /32s accepted and merged into ECMP kernel routes, nothing exported. */
function routerConfig(routerId: string, workers: string[]): string {
  return [
    `router id ${routerId};`,
    `log "${ROUTER_DIR}/bird.log" all;`,
    'protocol device { scan time 1; }',
    'protocol kernel { ipv4 { import none; export all; }; merge paths on; scan time 2; }',
    'filter vips { if net ~ [ 198.19.0.0/16{32,32} ] then accept; reject; }',
    ...workers.map((ip, i) => [
      `protocol bgp worker${i + 1} {`,
      `  local as ${ROUTER_ASN};`,
      `  neighbor ${ip} as ${BALANCER_ASN};`,
      `  password "${PASSWORD}";`,
      '  connect retry time 2;',
      '  error wait time 1, 4;',
      '  ipv4 { import filter vips; export none; };',
      '}',
    ].join('\n')),
    '',
  ].join('\n');
}

describe('kind: announcing the VIP by BGP to the client', () => {
  let env: KindOperatorEnv;
  let clientIp: string;
  /** Balancer worker -> its address on the kind network. */
  const workerIps = new Map<string, string>();
  const workers = () => [...workerIps.values()].sort();
  const agentPods = () => JSON.parse(env.kubectl(['get', 'pods', '-n', AGENT_NAMESPACE, '-l', AGENT_SELECTOR, '-o', 'json'])) as {
    items: {
      metadata: { name: string; deletionTimestamp?: string }; spec: { nodeName: string; initContainers?: { name: string }[] };
      status: { initContainerStatuses?: { name: string; started?: boolean; ready?: boolean; state?: { running?: unknown } }[] };
    }[];
  };
  const initContainerNames = () => env.kubectl(['get', AGENT_DS, '-n', AGENT_NAMESPACE, '-o', 'jsonpath={.spec.template.spec.initContainers[*].name}']);
  const rollout = () => env.kubectl(['rollout', 'status', '-n', AGENT_NAMESPACE, AGENT_DS, `--timeout=${ROLL_WAIT}`]);
  const getPods = () => env.kubectl(['get', 'pods', '-n', AGENT_NAMESPACE, '-l', AGENT_SELECTOR, '-o', 'wide']).trimEnd();
  let hashPolicy: string | undefined;
  const addStaticRoute = () => onClient(['ip', 'route', 'replace', `${env.vip4}/32`, ...workers().flatMap((ip) => ['nexthop', 'via', ip])]);

  before(async () => {
    env = await KindOperatorEnv.up();
    for (const node of env.nodes) {
      workerIps.set(node, env.kubectl(['get', 'node', node, '-o', 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}']));
    }
    clientIp = execFileSync('docker', ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', CLIENT], { encoding: 'utf8' }).trim();
    for (const b of env.backendNames) await env.setBackend(b, 'ready');
    env.kubectl(['apply', '-f', '-'], vipManifest(`  address: ${env.vip4}\n  ports: [{port: ${HTTP}, targetPort: ${env.backendPort}}]\n  backendSelector: {matchLabels: {app: web}}`, 'web', env.namespace));
    await waitFor('every backend served (static route)', () => env.connect(env.vip4, HTTP, 300),
      (r) => r.failures === 0 && env.backendNames.every((b) => !!r.byReal[b]), 60_000, 500);
  });

  after(async () => {
    // Put everything back even when a test failed: drain and uninstall run next.
    const quiet = (f: () => unknown) => { try { f(); } catch { /* best effort */ } };
    quiet(() => addStaticRoute());
    quiet(() => { if (hashPolicy !== undefined) clientSysctl(`${MULTIPATH_HASH}=${hashPolicy}`); });
    quiet(() => env.kubectl(['patch', 'xdpbalancer', 'default', '--type=json', '-p', '[{"op": "remove", "path": "/spec/bgp"}]']));
    quiet(() => onClient(['sh', '-c', `[ -S ${ROUTER_DIR}/bird.ctl ] && birdc -s ${ROUTER_DIR}/bird.ctl down; rm -rf ${ROUTER_DIR}`]));
    quiet(() => env.kubectl(['delete', 'lbvip', OTHER_VIP.name, '-n', env.namespace, '--ignore-not-found']));
    await waitFor('the agent DaemonSet without the bird sidecar', initContainerNames, (x) => !x.split(' ').includes('bird')).catch(() => undefined);
    quiet(() => rollout());
    quiet(() => env.kubectl(['delete', 'secret', SECRET, '-n', AGENT_NAMESPACE, '--ignore-not-found']));
    await env?.down();
  });

  test('spec.bgp with an MD5 password from a Secret: the agents roll with BIRD as a native sidecar; sessions with the client come up', async (t) => {
    // The client routes by BGP from now on: its BIRD first, the static route gone.
    onClient(['mkdir', '-p', ROUTER_DIR]);
    onClient(['sh', '-c', `cat >${ROUTER_DIR}/bird.conf`], routerConfig(clientIp, workers()));
    onClient(['bird', '-c', `${ROUTER_DIR}/bird.conf`, '-s', `${ROUTER_DIR}/bird.ctl`, '-P', `${ROUTER_DIR}/bird.pid`]);
    onClient(['ip', 'route', 'del', `${env.vip4}/32`]);

    env.kubectl(['create', 'secret', 'generic', SECRET, '-n', AGENT_NAMESPACE, `--from-literal=${SECRET_KEY}=${PASSWORD}`]);
    env.kubectl(['patch', 'xdpbalancer', 'default', '--type=merge', '-p', JSON.stringify({
      spec: { bgp: { localASN: BALANCER_ASN, peers: [{ address: clientIp, asn: ROUTER_ASN, passwordSecretRef: { name: SECRET, key: SECRET_KEY } }] } },
    })]);
    await waitFor('the agent DaemonSet has the bird sidecar', initContainerNames, (x) => x.split(' ').includes('bird'));
    rollout();

    const pods = await waitFor('an agent with a running bird sidecar on every balancer worker', agentPods, (p) => {
      const live = p.items.filter((i) => !i.metadata.deletionTimestamp);
      return live.length === env.nodes.length && live.every((i) => i.status.initContainerStatuses?.some((s) => s.name === 'bird' && s.started && s.ready && s.state?.running));
    }, ROUTE_WAIT_MS, 1000);
    assert.deepEqual(pods.items.map((i) => i.spec.nodeName).sort(), [...env.nodes].sort());
    const table = getPods();
    t.diagnostic(`kubectl get pods:\n${table}`);
    // The READY column counts the sidecar: 2/2.
    for (const line of table.split('\n').slice(1)) assert.match(line, /\s2\/2\s+Running\s/, `agent pod not 2/2 Running: ${line}`);

    for (const node of env.nodes) {
      const m = await waitFor(`${node}'s session with the client up (xdplb_bgp_session_up)`, () => env.agentMetrics(node),
        (s) => sample(s, 'xdplb_bgp_session_up', { peer: clientIp }) === 1, SESSION_WAIT_MS, 1000);
      t.diagnostic(`${node}: xdplb_bgp_session_up{peer="${clientIp}"} ${sample(m, 'xdplb_bgp_session_up', { peer: clientIp })}, ` +
        `xdplb_bgp_announced_prefixes ${sample(m, 'xdplb_bgp_announced_prefixes', { peer: clientIp })}, xdplb_bgp_vips_announced ${sample(m, 'xdplb_bgp_vips_announced')}`);
    }
    // Each worker's sessions in the XdpBalancer's status too (written by its agent).
    const entries = await waitFor('each worker\'s BGP session in the XdpBalancer status', () =>
      JSON.parse(env.kubectl(['get', 'xdpbalancer', 'default', '-o', 'jsonpath={.status.nodes}']) || '[]') as { node: string; bgp?: { sessions: { peer: string; established: boolean }[] } }[],
    (e) => env.nodes.every((n) => e.find((x) => x.node === n)?.bgp?.sessions.some((s) => s.peer === clientIp && s.established)), SESSION_WAIT_MS, 1000);
    t.diagnostic(`kubectl get xdpbalancer default -o jsonpath={.status.nodes}: ${JSON.stringify(entries)}`);
    const protocols = onClient(['birdc', '-s', `${ROUTER_DIR}/bird.ctl`, 'show', 'protocols']);
    t.diagnostic(`client: birdc show protocols\n${protocols}`);

    // BIRD's configuration holds the password: in memory, for root only. birdc in the sidecar, as the README says to look.
    const pod = pods.items[0]!.metadata.name;
    const inSidecar = (script: string) => env.kubectl(['exec', '-n', AGENT_NAMESPACE, pod, '-c', 'bird', '--', 'sh', '-c', script]).trim();
    assert.equal(inSidecar(`stat -f -c %T ${BIRD_DIR}`), 'tmpfs', `${BIRD_DIR} is memory-backed`);
    assert.equal(inSidecar(`stat -c '%a %U' ${BIRD_DIR}/bird.conf`), '600 root');
    assert.equal(inSidecar(`grep -c 'password "${PASSWORD}"' ${BIRD_DIR}/bird.conf`), '1', 'the Secret\'s password is in BIRD\'s configuration');
    const sidecarProtocols = inSidecar(`birdc -s ${BIRD_DIR}/bird.ctl show protocols`);
    t.diagnostic(`${pods.items[0]!.spec.nodeName}: kubectl exec -c bird -- birdc show protocols\n${sidecarProtocols}`);
    assert.match(sidecarProtocols, new RegExp(String.raw`^xdplb_peer_${clientIp.replace(/\./g, '_')}\s+BGP\s+---\s+up\s.*Established`, 'm'));
  });

  test('the client learns the VIP /32 from both balancer workers (two ECMP next hops); TCP to the VIP is served through it', async (t) => {
    assert.deepEqual(clientNextHops(env.vip4, 'boot'), [], 'the static route is gone');
    const hops = await waitFor(`the client's BGP route to ${env.vip4} through both workers`, () => clientNextHops(env.vip4, 'bird'),
      (h) => JSON.stringify(h) === JSON.stringify(workers()), ROUTE_WAIT_MS, 500);
    t.diagnostic(`client: ${onClient(['ip', 'route', 'show', `${env.vip4}/32`]).replace(/\s+/g, ' ')}`);
    assert.deepEqual(hops, workers());
    // Flows hashed by their ports too, so both next hops carry some: each worker's balancer counts the VIP's packets.
    hashPolicy = clientSysctl(MULTIPATH_HASH);
    clientSysctl(`${MULTIPATH_HASH}=1`);
    const vipPackets = async () => Promise.all(env.nodes.map(async (n) => sample(await env.agentMetrics(n), 'xdplb_vip_packets_total', { vip: `${env.vip4}:${HTTP}/TCP` })));
    const before = await vipPackets();
    const r = await waitFor('every backend served through the BGP route', () => env.connect(env.vip4, HTTP, 300),
      (x) => x.failures === 0 && env.backendNames.every((b) => !!x.byReal[b]), 60_000, 500);
    const after = await vipPackets();
    const through = env.nodes.map((n, i) => `${n} ${after[i]! - before[i]!}`).join(', ');
    t.diagnostic(`300 connections through the BGP route: ${JSON.stringify(r.byReal)}; VIP packets balanced by ${through}`);
    env.nodes.forEach((n, i) => assert.ok(after[i]! > before[i]!, `${n} balanced none of the VIP's packets: ${through}`));
    clientSysctl(`${MULTIPATH_HASH}=${hashPolicy}`);
    hashPolicy = undefined;
  });

  test('a VIP applied is announced by both workers; deleted, it is withdrawn from the client\'s table', async (t) => {
    env.kubectl(['apply', '-f', '-'], vipManifest(`  address: ${OTHER_VIP.address}\n  ports: [{port: ${HTTP}, targetPort: ${env.backendPort}}]\n  backendSelector: {matchLabels: {app: web}}`, OTHER_VIP.name, env.namespace));
    await waitFor(`the client's BGP route to ${OTHER_VIP.address} through both workers`, () => clientNextHops(OTHER_VIP.address, 'bird'),
      (h) => JSON.stringify(h) === JSON.stringify(workers()), ROUTE_WAIT_MS, 500);
    t.diagnostic(`client, ${OTHER_VIP.name} applied: ${onClient(['ip', 'route', 'show', `${OTHER_VIP.address}/32`]).replace(/\s+/g, ' ')}`);
    env.kubectl(['delete', 'lbvip', OTHER_VIP.name, '-n', env.namespace]);
    await waitFor(`the client's route to ${OTHER_VIP.address} withdrawn`, () => onClient(['ip', 'route', 'show', `${OTHER_VIP.address}/32`]), (x) => x === '', ROUTE_WAIT_MS, 500);
    t.diagnostic(`client, ${OTHER_VIP.name} deleted: no route to ${OTHER_VIP.address}; ${env.vip4} still via ${clientNextHops(env.vip4, 'bird').join(', ')}`);
    assert.deepEqual(clientNextHops(env.vip4, 'bird'), workers(), `${env.vip4} is still announced by both`);
  });

  test('spec.bgp removed: the agents roll back without the sidecar; with its static route back the client is served as before', async (t) => {
    addStaticRoute();
    env.kubectl(['patch', 'xdpbalancer', 'default', '--type=json', '-p', '[{"op": "remove", "path": "/spec/bgp"}]']);
    await waitFor('the agent DaemonSet without the bird sidecar', initContainerNames, (x) => !x.split(' ').includes('bird'));
    rollout();
    await waitFor('no agent pod with a bird sidecar', agentPods, (p) =>
      p.items.length === env.nodes.length && p.items.every((i) => !i.metadata.deletionTimestamp && !i.spec.initContainers?.some((c) => c.name === 'bird')),
    ROUTE_WAIT_MS, 1000);
    t.diagnostic(`kubectl get pods:\n${getPods()}`);
    // Both agents withdrew on their way out: the client's BIRD has nothing left to install.
    await waitFor(`the client's BGP route to ${env.vip4} withdrawn`, () => clientNextHops(env.vip4, 'bird'), (h) => h.length === 0, ROUTE_WAIT_MS, 500);
    onClient(['birdc', '-s', `${ROUTER_DIR}/bird.ctl`, 'down']);
    onClient(['rm', '-rf', ROUTER_DIR]);
    env.kubectl(['delete', 'secret', SECRET, '-n', AGENT_NAMESPACE]);
    assert.deepEqual(clientNextHops(env.vip4, 'boot'), workers());
    await waitFor('every backend served (static route)', () => env.connect(env.vip4, HTTP, 300),
      (x) => x.failures === 0 && env.backendNames.every((b) => !!x.byReal[b]), 60_000, 500);
  });
});
