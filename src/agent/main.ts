#!/usr/bin/env node
/**
 * xdplb-agent: the per-node balancer daemon. Cluster mode (the default)
 * follows the LoadBalancerVips of one XdpBalancer; standalone mode (--config)
 * a YAML file of VIPs. With --mode backend, the backend node's daemon instead
 * (backend/backend-mode.ts): pods of this node serve VIPs with delivery Node.
 */
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { DEFAULT_BALANCER } from '../api/loadbalancervip.js';
import { DEFAULT_DRAIN_SECONDS, DEFAULT_METRICS_PORT, tracePortFor } from '../api/xdpbalancer.js';
import { realSlotsFor } from '../bpf/maps.js';
import { loadKubeConfig } from '../lib/kube-config.js';
import { componentLog } from '../lib/log.js';
import { Agent, type AgentBgp, type AgentOptions, cleanup, type XdpModeOption } from './agent.js';
import { KubeAccessReviewer } from '../lib/access-review.js';
import { checkMetricsExposure, metricsEndpoint, parseAuthMode, reviewedEndpointTls } from '../lib/metrics-auth.js';
import { type ServingTls, servingTls } from '../lib/serving-tls.js';
import { VipOwners } from './trace/trace-access.js';
import { defaultNic } from './net/next-hop.js';
import { ClusterSource } from './sources/cluster-source.js';
import { FileSource } from './sources/file-source.js';
import type { VipSource } from './sources/source.js';
import { backendRemoval, type ExitDecision, exitDecision, getBalancer } from './sources/uninstall.js';
import { RemovalWatch } from './sources/removal-watch.js';
import { waitForTrafficToMove } from './drain.js';
import { ApiProbe, DEFAULT_API_LOSS_SECONDS } from './announce/api-probe.js';
import { DEFAULT_WITHDRAW_SETTLE_MS } from './announce/announcer.js';
import { parseBgpSettings } from './announce/bgp-settings.js';
import { AgentLease } from './announce/l2-lease.js';
import { agentEndpoints, NodeReport } from './announce/node-report.js';
import { removeBackend } from './backend/backend-agent.js';
import { BACKEND_DAEMONSET, DEFAULT_BACKEND_METRICS_PORT, DEFAULT_BACKEND_PIN_DIR, runBackendMode } from './backend/backend-mode.js';
import { BackendClusterSource, BackendFileSource, type BackendSource } from './backend/backend-sources.js';
import { clusterHealth, localHealth } from './health/agent-health.js';
import type { ClusterHealth } from './health/cluster-health.js';
import type { LocalHealth } from './health/local-health.js';
import type { StandaloneVip } from './sources/standalone-config.js';
import { AGENT_CAPABILITIES, missingCapabilities, ownEffectiveCapabilities } from '../lib/capabilities.js';

const log = componentLog('main');

const DEFAULT_BIRD_DIR = '/run/xdplb/bird';
const MS_PER_S = 1000;
/** The CRD's minimum of spec.l2.leaseSeconds: renewals every second at least. */
const MIN_L2_LEASE_SECONDS = 3;

const USAGE = `usage: xdplb-agent [run] --node-name NODE [--balancer NAME] [options]   (cluster mode)
       xdplb-agent [run] --config FILE [options]                           (standalone)
       xdplb-agent cleanup [--nic IF] [--pin-dir DIR]
       xdplb-agent --mode backend [run] --node-name NODE | --config FILE [backend options]
       xdplb-agent --mode backend cleanup [--pin-dir DIR]

  --mode MODE           balancer (default) | backend: on a backend node, hand tunnelled packets to this node's
                        pods for the VIPs with delivery Node, translating ports (XDPLB_MODE)

  --node-name NODE      this node, for its XdpNodeReport                (NODE_NAME)
  --balancer NAME       the XdpBalancer whose VIPs to serve; default "default" (XDPLB_BALANCER)
  --kubeconfig FILE     default: KUBECONFIG, else the pod's service account (KUBECONFIG)
  --config FILE         standalone: YAML file of VIPs, watched for changes (XDPLB_CONFIG)
  --nic IF              NIC to attach to; default: the default route's (XDPLB_NIC)
  --xdp-mode MODE       auto | native | generic; default auto          (XDPLB_XDP_MODE)
  --pin-dir DIR         bpffs directory; default /sys/fs/bpf/xdplb/default (XDPLB_PIN_DIR)
  --metrics-address A   HOST:PORT of /metrics /healthz /readyz; default 127.0.0.1:9641, node-local (XDPLB_METRICS_ADDRESS)
  --metrics-auth MODE   none: /metrics open, the address must be loopback; kubernetes: /metrics only for a bearer
                        token allowed "get /metrics" (TokenReview + SubjectAccessReview), any address.
                        /healthz and /readyz stay open for the kubelet. Default none (XDPLB_METRICS_AUTH)
  --trace-address A     HOST:PORT of /trace for xdplb trace; default 127.0.0.1:9642, "" disables (XDPLB_TRACE_ADDRESS)
  --trace-auth MODE     none: any local caller traces anything, the address must be loopback; kubernetes: a bearer
                        token allowed "create loadbalancervips/trace" in each traced VIP's namespace (all namespaces
                        for a trace without VIP), with per-caller quotas. Default none (XDPLB_TRACE_AUTH)
  --tls-cert-file F, --tls-key-file F  with either auth kubernetes, its endpoints serve HTTPS (tokens never cross
                        the network in clear text) with this certificate; default: a self-signed one made at start,
                        whose SHA-256 fingerprint the node's status entry publishes (XDPLB_TLS_CERT_FILE, _KEY_FILE)
  --advertise-address IP  cluster mode: the address clients reach this agent's endpoints at, published in the
                        node's status entry with the ports and the fingerprint (xdplb trace --node connects there);
                        in a pod, the node's (XDPLB_ADVERTISE_ADDRESS from status.hostIP)
  --next-hop-mac MAC    fixed next hop instead of the gateway's MAC    (XDPLB_NEXT_HOP_MAC)
  --src-v4 IP, --src-v6 IP  outer source addresses; default: the NIC's (XDPLB_SRC_V4, XDPLB_SRC_V6)
  --connection-table N  connection table entries; default 1048576     (XDPLB_CONNECTION_TABLE)
  --max-vips N          VIP capacity; default 512 (ring memory: N x 512 KiB) (XDPLB_MAX_VIPS)
  --max-reals N         real capacity; default 4095                    (XDPLB_MAX_REALS)
  --bgp JSON            announce the programmed VIPs by BGP through BIRD: {"localASN", "routerID"?, "peers":
                        [{"address", "asn", "port"?, "passwordFile"?, "addressFamilies"?}], "communities"?,
                        "bfd"?: {"minIntervalMilliseconds"? (300), "multiplier"? (3)}} (XDPLB_BGP)
  --bird-dir DIR        where BIRD's configuration (written by the agent) and control socket are;
                        default ${DEFAULT_BIRD_DIR} (XDPLB_BIRD_DIR)
  --bgp-api-loss-seconds N  cluster mode: withdraw the VIP routes when the API server has not answered for N s;
                        0: never; default ${DEFAULT_API_LOSS_SECONDS} (XDPLB_BGP_API_LOSS_SECONDS)
  --bgp-withdraw-seconds N  on SIGTERM, after the withdrawal, how long routers get to move the traffic
                        before the agent goes on; default ${DEFAULT_WITHDRAW_SETTLE_MS / MS_PER_S} (XDPLB_BGP_WITHDRAW_SECONDS)
  --drain-seconds N     when it detaches after withdrawing its routes (BGP) or its L2 addresses, wait at most N s for its
                        forwarded packets to stop (the routers moved the traffic); default ${DEFAULT_DRAIN_SECONDS}
                        (XDPLB_DRAIN_SECONDS)
  --l2-lease-seconds N  cluster mode, L2 announcement: hold a Lease in the agents' namespace (renewed every
                        N/3 s, deleted on stop) and answer ARP/NDP for the VIPs the controller names this
                        node for (status.l2.node), announcing each it takes over (XDPLB_L2_LEASE_SECONDS)
  --namespace NS        the agents' namespace, for the L2 Lease; default: the pod's (POD_NAMESPACE)
  --no-health-checks    probe no backend (spec.healthCheck of every VIP ignored); default: probe each backend along
                        its tunnel path, needs CAP_NET_RAW (XDPLB_HEALTH_CHECKS=false)
  --detach-on-exit      detach and unpin on SIGTERM. Default: stay attached, traffic keeps flowing;
                        in cluster mode, detach and unpin when no agent of the balancer will run on the
                        node again (XdpBalancer or DaemonSet gone, node no longer selected)

backend mode (--mode backend) takes --node-name (the backends of status.backends on this node, of every
LoadBalancerVip with delivery Node), --kubeconfig, --config FILE (standalone: {backends: [{vip, vipPort,
protocol, podAddress, targetPort, nodeAddress, weight, ignoreSourcePort}]}; nodeAddress: Node addressing), and:
  --pin-dir DIR         default ${DEFAULT_BACKEND_PIN_DIR}
  --metrics-address A   default 0.0.0.0:${DEFAULT_BACKEND_METRICS_PORT} with --metrics-auth kubernetes, else 127.0.0.1:${DEFAULT_BACKEND_METRICS_PORT}
  --metrics-auth MODE   as the balancer's: none (the address must be loopback) or kubernetes (cluster mode; HTTPS)
  --tls-cert-file F, --tls-key-file F  as the balancer's
  --drain-seconds N     how long a backend's entries stay after it leaves (its flows finish); default
                        ${DEFAULT_DRAIN_SECONDS}, the balancers' default drainSeconds
  --nic DEV[,DEV]       Node addressing: the devices whose ingress takes the tunnel packets to the node's
                        address; default: the devices that carry the node addresses of status.backends[].nodeIP
  --detach-on-exit      on SIGTERM detach from the pods and unpin; default: stay, the next agent adopts them,
                        unless (in a pod, POD_NAMESPACE) its DaemonSet ${BACKEND_DAEMONSET} was seen deleted: uninstall
`;

/** The flags backend mode reads; any other is the balancer's. */
const BACKEND_FLAGS = new Set(['mode', 'node-name', 'kubeconfig', 'config', 'pin-dir', 'metrics-address', 'metrics-auth', 'tls-cert-file', 'tls-key-file', 'drain-seconds', 'nic',
  'detach-on-exit', 'help']);
const MODES = ['balancer', 'backend'];

const DEFAULT_PIN_DIR = '/sys/fs/bpf/xdplb/default';
const DEFAULT_METRICS_ADDRESS = `127.0.0.1:${DEFAULT_METRICS_PORT}`;
const DEFAULT_TRACE_ADDRESS = `127.0.0.1:${tracePortFor(DEFAULT_METRICS_PORT)}`;
const XDP_MODES: XdpModeOption[] = ['auto', 'native', 'generic'];

function fail(message: string): never {
  process.stderr.write(`xdplb-agent: ${message}\n\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        mode: { type: 'string' },
        config: { type: 'string' },
        'node-name': { type: 'string' },
        balancer: { type: 'string' },
        kubeconfig: { type: 'string' },
        nic: { type: 'string' },
        'xdp-mode': { type: 'string' },
        'pin-dir': { type: 'string' },
        'metrics-address': { type: 'string' },
        'trace-address': { type: 'string' },
        'metrics-auth': { type: 'string' },
        'trace-auth': { type: 'string' },
        'tls-cert-file': { type: 'string' },
        'tls-key-file': { type: 'string' },
        'advertise-address': { type: 'string' },
        'next-hop-mac': { type: 'string' },
        'src-v4': { type: 'string' },
        'src-v6': { type: 'string' },
        'connection-table': { type: 'string' },
        'max-vips': { type: 'string' },
        'max-reals': { type: 'string' },
        'detach-on-exit': { type: 'boolean' },
        'no-health-checks': { type: 'boolean' },
        bgp: { type: 'string' },
        'bird-dir': { type: 'string' },
        'bgp-api-loss-seconds': { type: 'string' },
        'bgp-withdraw-seconds': { type: 'string' },
        'drain-seconds': { type: 'string' },
        'l2-lease-seconds': { type: 'string' },
        namespace: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    fail((err as Error).message);
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    process.stdout.write(USAGE);
    return;
  }
  const env = process.env;
  const command = positionals[0] ?? 'run';
  const mode = v.mode ?? env.XDPLB_MODE ?? 'balancer';
  if (!MODES.includes(mode)) fail(`--mode must be one of ${MODES.join(', ')}, not "${mode}"`);
  if (mode === 'backend') return backendMain(v, command);
  const pinDir = v['pin-dir'] ?? env.XDPLB_PIN_DIR ?? DEFAULT_PIN_DIR;
  const nic = v.nic ?? env.XDPLB_NIC;

  if (command === 'cleanup') {
    const target = nic ?? (await defaultNic());
    const { detached } = cleanup(target, pinDir);
    log.info({ nic: target, pinDir, detached }, 'cleaned up');
    return;
  }
  if (command !== 'run') fail(`unknown command "${command}"`);

  const config = v.config ?? env.XDPLB_CONFIG;
  const nodeName = v['node-name'] ?? env.NODE_NAME;
  if (!config && !nodeName) fail('give --node-name (cluster mode) or --config (standalone mode)');
  const xdpMode = (v['xdp-mode'] ?? env.XDPLB_XDP_MODE ?? 'auto') as XdpModeOption;
  if (!XDP_MODES.includes(xdpMode)) fail(`--xdp-mode must be one of ${XDP_MODES.join(', ')}`);
  const integer = (flag: string, raw: string | undefined, min: number): number | undefined => {
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) fail(`--${flag} must be an integer of at least ${min}, not "${raw}"`);
    return n;
  };
  const count = (flag: string, raw: string | undefined) => integer(flag, raw, 1);
  const maxReals = count('max-reals', v['max-reals'] ?? env.XDPLB_MAX_REALS);
  const capacity = {
    connectionTable: count('connection-table', v['connection-table'] ?? env.XDPLB_CONNECTION_TABLE),
    vips: count('max-vips', v['max-vips'] ?? env.XDPLB_MAX_VIPS),
    reals: maxReals === undefined ? undefined : realSlotsFor(maxReals),
  };

  const bgpJson = v.bgp ?? env.XDPLB_BGP;
  let bgp: AgentBgp | undefined;
  if (bgpJson) {
    try {
      bgp = { settings: parseBgpSettings(bgpJson), birdDir: v['bird-dir'] ?? env.XDPLB_BIRD_DIR ?? DEFAULT_BIRD_DIR, checks: [] };
    } catch (err) {
      fail(`--bgp: ${(err as Error).message}`);
    }
    const settleS = integer('bgp-withdraw-seconds', v['bgp-withdraw-seconds'] ?? env.XDPLB_BGP_WITHDRAW_SECONDS, 0);
    if (settleS !== undefined) bgp.withdrawSettleMs = settleS * MS_PER_S;
  }
  const l2LeaseSeconds = integer('l2-lease-seconds', v['l2-lease-seconds'] ?? env.XDPLB_L2_LEASE_SECONDS, MIN_L2_LEASE_SECONDS);
  if (l2LeaseSeconds !== undefined && config) fail('--l2-lease-seconds needs cluster mode: the controller chooses which node announces each VIP');
  const agentNamespace = v.namespace ?? env.POD_NAMESPACE;
  if (l2LeaseSeconds !== undefined && !agentNamespace) fail('--l2-lease-seconds needs the agents\' namespace for its Lease: give --namespace (in a pod, POD_NAMESPACE)');
  const drainSeconds = integer('drain-seconds', v['drain-seconds'] ?? env.XDPLB_DRAIN_SECONDS, 0) ?? DEFAULT_DRAIN_SECONDS;
  const apiLossSeconds = integer('bgp-api-loss-seconds', v['bgp-api-loss-seconds'] ?? env.XDPLB_BGP_API_LOSS_SECONDS, 0) ?? DEFAULT_API_LOSS_SECONDS;

  const metricsAddress = v['metrics-address'] ?? env.XDPLB_METRICS_ADDRESS ?? DEFAULT_METRICS_ADDRESS;
  let metricsAuth, traceAuth;
  try {
    metricsAuth = parseAuthMode('metrics-auth', v['metrics-auth'] ?? env.XDPLB_METRICS_AUTH);
    traceAuth = parseAuthMode('trace-auth', v['trace-auth'] ?? env.XDPLB_TRACE_AUTH);
    checkMetricsExposure(metricsAddress, metricsAuth);
  } catch (err) {
    fail((err as Error).message);
  }
  for (const [flag, mode] of [['metrics-auth', metricsAuth], ['trace-auth', traceAuth]]) {
    if (mode === 'kubernetes' && config) fail(`--${flag} kubernetes needs cluster mode: tokens and RBAC are the API server's`);
  }
  const traceAddress = v['trace-address'] ?? env.XDPLB_TRACE_ADDRESS ?? DEFAULT_TRACE_ADDRESS;
  const advertise = v['advertise-address'] ?? env.XDPLB_ADVERTISE_ADDRESS;
  if (advertise !== undefined && !isIP(advertise)) fail(`--advertise-address must be an IP address, not "${advertise}"`);
  // Endpoints that take bearer tokens serve HTTPS; loopback-only ones without review stay plain HTTP.
  let tls: ServingTls | undefined;
  if (metricsAuth === 'kubernetes' || traceAuth === 'kubernetes') {
    try {
      tls = servingTls({
        certFile: v['tls-cert-file'] ?? env.XDPLB_TLS_CERT_FILE,
        keyFile: v['tls-key-file'] ?? env.XDPLB_TLS_KEY_FILE,
        commonName: `xdplb-agent ${nodeName}`,
        ipAddresses: [...new Set([advertise, '127.0.0.1', '::1'].filter((a): a is string => !!a))],
      });
    } catch (err) {
      fail((err as Error).message);
    }
  }
  const agentOptions: AgentOptions = {
    nic,
    xdpMode,
    pinDir,
    metricsAddress,
    traceAddress,
    metricsTls: metricsAuth === 'kubernetes' ? tls : undefined,
    traceTls: traceAuth === 'kubernetes' ? tls : undefined,
    nodeName,
    nextHopMac: v['next-hop-mac'] ?? env.XDPLB_NEXT_HOP_MAC,
    srcV4: v['src-v4'] ?? env.XDPLB_SRC_V4,
    srcV6: v['src-v6'] ?? env.XDPLB_SRC_V6,
    capacity,
    bgp,
    l2: l2LeaseSeconds !== undefined,
  };
  const agent = new Agent(agentOptions);
  let apiProbe: ApiProbe | null = null;
  let lease: AgentLease | null = null;
  let report: NodeReport | null = null;
  let source: VipSource;
  const healthChecks = !v['no-health-checks'] && env.XDPLB_HEALTH_CHECKS !== 'false';
  /** Set once the agent is open (their sockets go on its NIC). */
  const hc: { local: LocalHealth | null; cluster: ClusterHealth | null } = { local: null, cluster: null };
  let startHealth = () => undefined as void;
  /** On SIGTERM without --detach-on-exit: stay attached, or detach because xdplb is being uninstalled. */
  let onExit: () => Promise<ExitDecision | null> = () => Promise.resolve(null);
  if (config) {
    source = new FileSource(config, { onVips: (vips) => hc.local?.setFile(vips) });
    // Standalone: every real probed by this node, the result applied to its own maps.
    if (healthChecks) startHealth = () => { hc.local = localHealth(agent); };
  } else {
    let kc;
    try {
      kc = loadKubeConfig(v.kubeconfig ?? env.KUBECONFIG);
    } catch (err) {
      fail((err as Error).message);
    }
    const balancer = v.balancer ?? env.XDPLB_BALANCER ?? DEFAULT_BALANCER;
    const reviewer = metricsAuth === 'kubernetes' || traceAuth === 'kubernetes' ? new KubeAccessReviewer(kc) : undefined;
    if (metricsAuth === 'kubernetes') agentOptions.metricsReviewer = reviewer;
    const owners = new VipOwners();
    if (traceAuth === 'kubernetes') agentOptions.traceAuth = { reviewer: reviewer!, owners: (id) => owners.of(id) };
    source = new ClusterSource(kc, { balancer, node: nodeName!, onProgrammed: (vips) => {
      owners.set(vips);
      hc.cluster?.setVips(vips);
    } });
    const client = kc;
    // Cluster: this node's share of the backends probed, what it judged in its node report, weight 0 from the VIPs' status.
    if (healthChecks) startHealth = () => { hc.cluster = clusterHealth(client, agent, balancer, nodeName!); hc.cluster?.start(); };
    // In a pod (POD_NAMESPACE set by the DaemonSet), the DaemonSet and this node say whether an agent will run here again.
    const where = env.POD_NAMESPACE && nodeName ? { node: nodeName, namespace: env.POD_NAMESPACE } : undefined;
    const removal = where ? new RemovalWatch(kc, balancer, where.namespace) : null;
    void removal?.start();
    onExit = () => exitDecision(kc, balancer, { nic: agent.nic, pinDir }, where, undefined, () => removal?.seen() ?? null)
      .finally(() => removal?.stop());
    // Its node's entry of the balancer's status: where it announces (BGP or L2), health checks, and where its
    // HTTPS endpoints are with the certificate's fingerprint (what xdplb trace --node pins).
    const endpoints = tls && advertise ? agentEndpoints(advertise, tls, agentOptions) : undefined;
    if (bgp || l2LeaseSeconds !== undefined || healthChecks || endpoints) {
      report = new NodeReport(kc, balancer, nodeName!, () => ({ ...agent.announcements(), ...(hc.cluster ? { health: hc.cluster.report() } : {}),
        ...(endpoints ? { endpoints } : {}) }));
    }
    if (l2LeaseSeconds !== undefined) lease = new AgentLease(kc, { balancer, node: nodeName!, namespace: agentNamespace!, leaseSeconds: l2LeaseSeconds });
    if (bgp) {
      apiProbe = new ApiProbe(() => getBalancer(client, balancer), apiLossSeconds);
      bgp.checks!.push(apiProbe);
    }
  }
  // A bad file fails before the kernel is touched; then adopt the pinned state (metrics served while a
  // cluster list may still be retrying), program what the source wants (a diff), then attach.
  const started = await source.start();
  // Flags, file and kubeconfig are checked first (a usage error says so whatever the capabilities); then, before the kernel is touched:
  const missing = missingCapabilities(ownEffectiveCapabilities(), AGENT_CAPABILITIES);
  if (missing.length) {
    throw new Error(`the agent lacks ${missing.map((m) => `CAP_${m}`).join(', ')}: loading and attaching its XDP program needs ${AGENT_CAPABILITIES.map((m) => `CAP_${m}`).join(', ')} (see the README's Security section: what the agent runs with)`);
  }
  await agent.open();
  startHealth();
  hc.local?.setFile(started as StandaloneVip[]);
  await agent.run(await source.initial(agent));
  await source.follow(hc.local ?? agent);
  apiProbe?.start();
  // Alive once programmed and attached: only then may the controller name this node for a VIP.
  await lease?.start();
  report?.start();
  log.info({ ...source.describe(), nic: agent.nic, mode: agent.mode, pinDir }, `xdplb-agent running (${source.mode})`);

  onStopSignal((signal) => {
    const forced = !!v['detach-on-exit'];
    log.info({ signal, detachOnExit: forced }, 'stopping');
    apiProbe?.stop();
    hc.local?.close();
    void hc.cluster?.stop();
    // Routes (or L2 addresses) first: no new flow may arrive at a node that is stopping (and may detach).
    return agent.withdraw().then(() => lease?.release()).then(async () => {
      // The withdrawal in the node's status before the agent goes.
      report?.stop();
      await report?.check();
      const decided = forced ? Promise.resolve(null) : onExit();
      return Promise.all([decided, source.stop()]);
    }).then(async ([decision]) => {
      if (decision) log[decision.level](decision.message);
      const detach = forced || !!decision?.detach;
      // Nothing programmed stays here: the controller must not count this node as holding any VIP.
      if (detach) await source.withdrawReport?.();
      // Leaving for good, routes or L2 addresses withdrawn: let the routers or clients move the flows before the program goes.
      if (detach && agent.announces) {
        log.info({ drainSeconds }, 'waiting for the traffic to move before detaching');
        const drained = await waitForTrafficToMove(() => agent.forwardedPackets(), { maxMs: drainSeconds * MS_PER_S });
        log[drained.quiet ? 'info' : 'warn']({ ...drained, packets: Number(drained.packets) },
          drained.quiet ? 'traffic moved: detaching' : `traffic still arriving after ${drainSeconds} s (drainSeconds): detaching anyway`);
      }
      return agent.stop({ detach });
    });
  });
}

/** --mode backend: the backend node's daemon, or its cleanup. */
async function backendMain(v: Record<string, string | boolean | undefined>, command: string): Promise<void> {
  const env = process.env;
  const other = Object.keys(v).filter((k) => v[k] !== undefined && !BACKEND_FLAGS.has(k));
  if (other.length) fail(`--${other.join(', --')}: balancer flag(s), not for --mode backend`);
  const str = (k: string) => v[k] as string | undefined;
  const pinDir = str('pin-dir') ?? env.XDPLB_PIN_DIR ?? DEFAULT_BACKEND_PIN_DIR;
  if (command === 'cleanup') {
    const detached = removeBackend(pinDir);
    log.info({ pinDir, detached }, 'backend mode cleaned up');
    return;
  }
  if (command !== 'run') fail(`unknown command "${command}"`);
  const config = str('config') ?? env.XDPLB_CONFIG;
  const nodeName = str('node-name') ?? env.NODE_NAME;
  if (!config && !nodeName) fail('give --node-name (cluster mode) or --config (standalone mode)');
  const rawDrain = str('drain-seconds') ?? env.XDPLB_DRAIN_SECONDS;
  const drainSeconds = rawDrain === undefined ? DEFAULT_DRAIN_SECONDS : Number(rawDrain);
  if (!Number.isInteger(drainSeconds) || drainSeconds < 0) fail(`--drain-seconds must be an integer of at least 0, not "${rawDrain}"`);
  let metrics;
  let metricsTls;
  try {
    metrics = metricsEndpoint(str('metrics-auth') ?? env.XDPLB_METRICS_AUTH, str('metrics-address') ?? env.XDPLB_METRICS_ADDRESS, DEFAULT_BACKEND_METRICS_PORT);
    metricsTls = reviewedEndpointTls(metrics.auth, { certFile: str('tls-cert-file') ?? env.XDPLB_TLS_CERT_FILE,
      keyFile: str('tls-key-file') ?? env.XDPLB_TLS_KEY_FILE }, `xdplb-backend ${nodeName ?? ''}`.trim());
  } catch (err) {
    fail((err as Error).message);
  }
  if (metrics.auth === 'kubernetes' && config) fail('--metrics-auth kubernetes needs cluster mode: tokens and RBAC are the API server\'s');
  let source: BackendSource;
  let removal: RemovalWatch | null = null;
  let removalOnStop = (): Promise<string | null> => Promise.resolve(null);
  let metricsReviewer: KubeAccessReviewer | undefined;
  if (config) {
    source = new BackendFileSource(config);
  } else {
    let kc;
    try {
      kc = loadKubeConfig(str('kubeconfig') ?? env.KUBECONFIG);
    } catch (err) {
      fail((err as Error).message);
    }
    source = new BackendClusterSource(kc, nodeName!);
    if (metrics.auth === 'kubernetes') metricsReviewer = new KubeAccessReviewer(kc);
    // In a pod: its DaemonSet seen deleted means an uninstall, and the agent leaves nothing behind.
    if (env.POD_NAMESPACE) {
      const namespace = env.POD_NAMESPACE;
      const watch = new RemovalWatch(kc, null, namespace, BACKEND_DAEMONSET);
      removal = watch;
      void watch.start();
      // Its DaemonSet read on stop (a watch can miss a deletion while it reconnects); what the watch saw when it cannot be read.
      removalOnStop = () => backendRemoval(kc, namespace, BACKEND_DAEMONSET, watch);
    }
  }
  const running = await runBackendMode(source, {
    pinDir,
    drainSeconds,
    metricsAddress: metrics.address,
    metricsReviewer,
    metricsTls,
    detachOnExit: !!v['detach-on-exit'],
    removal: removalOnStop,
    nics: str('nic')?.split(',').filter(Boolean),
  });
  onStopSignal((signal) => {
    log.info({ signal, detachOnExit: !!v['detach-on-exit'] }, 'stopping');
    return running.stop().finally(() => removal?.stop());
  });
}

/** Runs `stop` once, on the first SIGTERM or SIGINT, then exits: 0 when it resolved, 1 when it failed. */
function onStopSignal(stop: (signal: string) => Promise<unknown>): void {
  let stopping = false;
  const handle = (signal: string) => {
    if (stopping) return;
    stopping = true;
    stop(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: (err as Error).message }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => handle('SIGTERM'));
  process.on('SIGINT', () => handle('SIGINT'));
}

main().catch((err: unknown) => {
  log.fatal({ err: (err as Error).message }, 'xdplb-agent failed');
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
});
