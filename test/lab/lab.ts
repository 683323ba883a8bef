/**
 * The network-namespace lab: a client, an ECMP router, two balancer nodes and
 * N reals, each in its own namespace, on 198.18.0.0/15 and 2001:db8::/32.
 *
 *   client ── router ─┬─ lb1 (xdplb-agent, XDP on eth0)
 *                     ├─ lb2 (xdplb-agent, XDP on eth0)
 *                     ├─ real1..N (decap XDP on eth0, VIPs on lo)
 *                     ├─ w1 (xdplb-agent --mode backend) ── w1-pod1..M
 *                     └─ w2 (xdplb-agent --mode backend) ── w2-pod1..M
 *
 * The router sends the VIP prefixes to lb1 and lb2 by ECMP (L4 hash); the
 * balancers encapsulate back to the router, which routes to the reals; the
 * reals answer the client through the router directly (DSR).
 *
 * Worker nodes (Lab.up({ pods })) hold pods laid out as a CNI plugin lays
 * them out (ptp, Calico): each pod its own namespace behind a veth pair, its
 * addresses /32 and /128 on its eth0, default routes to a link-local gateway
 * the node's veth answers for, and host routes to it on the node. The pods
 * run an unmodified TCP and UDP server on every address, port POD_PORT: no
 * VIP, no privilege, no BPF. The router routes w1's pod network (routed pod
 * CIDRs); w2's pods are reachable only through w2, as with an overlay.
 *
 * Routing 'bgp' (the default): the router learns the VIP routes by BGP from a
 * BIRD beside each agent (the agent announces what it serves), merging them
 * into ECMP routes; asked to, the router and the agents run BFD, and the
 * router offers a shorter hold time (LabBgpOptions). Routing 'static': fixed routes the test sets (routeVia),
 * for tests that steer traffic to chosen nodes.
 * Everything is removed by down(), also on process exit or an interrupt signal.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as yaml from 'js-yaml';
import type { StandaloneVip } from '../../src/agent/sources/standalone-config.js';
import type { PodBackend } from '../../src/agent/backend/service-plan.js';
import { type AgentBgpSettings, type BgpBfd, BIRD_SOCKET_NAME, birdCommand } from '../../src/api/xdpbalancer.js';
import { bfdTimers } from '../../src/agent/announce/bgp-settings.js';
import { BALANCER_ASN, ROUTER_ASN, routerBirdConfig } from './router-bird.js';
import { onExitOrSignal } from '../support/cleanup.js';
import { parseMetrics, sample, type Samples } from '../support/prometheus.js';

const DIST = fileURLToPath(new URL('../../', import.meta.url)); // dist/
const AGENT = join(DIST, 'src/agent/main.js');
const DECAP = join(DIST, 'src/decap/main.js');
const SERVER = join(DIST, 'test/lab/programs/server.js');
const CLIENT = join(DIST, 'test/lab/programs/client.js');
const API_FORWARD = join(DIST, 'test/lab/programs/api-forward.js');

export const LAB_PREFIX = 'xdplb-lab';
// Room for the outer header behind a 1500-byte client; native XDP on veth needs a frame to fit a page.
const FABRIC_MTU = 3000;
export const CLIENT_MTU = 1500;
const METRICS_PORT = 9641;
/** An agent is ready within seconds; generous, for a loaded CI machine (load averages of 20 were seen here). */
const READY_TIMEOUT_MS = 60_000;
/** BGP sessions come up and routes converge within seconds; generous, for a loaded CI machine. */
export const ROUTES_TIMEOUT_MS = 90_000;
const POLL_MS = 100;
const ROUTER_ID = '198.18.10.1';
/** Routing 'static': the router's routes to the VIP ranges. */
const STATIC_VIP_ROUTES = { v4: '198.19.0.0/24', v6: '2001:db8:19::/64' };
/** How far two readings of one BIRD session's "since" may differ (sameSessions). */
const SINCE_JITTER_MS = 1000;
/** Lines of a BIRD's log kept for error messages. */
const BIRD_LOG_LINES = 200;

/**
 * How traffic reaches the VIPs: learnt by BGP from the balancers, static
 * routes the test sets, or 'l2': the client and the balancers share one
 * Ethernet segment (a bridge in the router's namespace), the client reaches
 * the VIP range on-link and the balancer the controller names answers ARP/NDP.
 */
export type LabRouting = 'bgp' | 'static' | 'l2';
/** Routing 'bgp': what the sessions between the router and the nodes run besides BGP. */
export interface LabBgpOptions {
  /** BFD on both ends of every session: the router's, and spec.bgp.bfd in the agents' --bgp (the same timers). */
  bfd?: BgpBfd;
  /** The hold time the router offers (the sessions take it when shorter than the nodes' 240 s). */
  holdSeconds?: number;
}

/** Routing 'l2': the bridge joining the client, the balancers and the router. */
const SEGMENT = 'seg';

export const VIP4 = '198.19.0.10';
export const VIP4_V6REALS = '198.19.0.11';
export const VIP6 = '2001:db8:19::10';
export const CLIENT4 = '198.18.10.2';
const CLIENT6 = '2001:db8:10::2';

export interface LabReal {
  name: string;
  ns: string;
  v4: string;
  v6: string;
}

/** A worker node: a backend agent (--mode backend) and the pods on it. */
export interface LabWorker {
  name: string;
  ns: string;
  v4: string;
  v6: string;
  /** The pod network: /24 and /64 (first three groups of each). */
  podNet: { v4: string; v6: string };
  /** Whether the router routes the pod network to this node. */
  routed: boolean;
  pinDir: string;
  /** The backend agent's standalone file. */
  backendsPath: string;
  agent: ChildProcess | null;
  log: string[];
  pods: LabPod[];
  /** Pods ever made here: numbers are not reused, as a pod's new address would not be. */
  made: number;
}

export interface LabPod {
  name: string;
  ns: string;
  worker: LabWorker;
  v4: string;
  v6: string;
  /** The host side of its veth, in the worker's namespace. */
  veth: string;
  server: ChildProcess | null;
}

/** What a pod's unmodified server listens on, TCP and UDP, on every address (dual stack). */
export const POD_PORT = 8080;
/** The gateway a pod's default routes point at: link-local, answered by the node's end of the veth (Calico's layout). */
const POD_GATEWAY = { v4: '169.254.1.1', v6: 'fe80::1' };
const WORKER_METRICS_PORT = 9643;
/** The worker that the router does not route the pod network of. */
const UNROUTED_WORKER = 'w2';

/** How an agent is started besides its flags. */
export interface AgentLaunch {
  /** A command the agent runs under, exec'ing it (setpriv with the DaemonSet's capabilities): its PID stays the agent's. */
  prefix?: string[];
}

export interface Balancer {
  name: string;
  ns: string;
  v4: string;
  v6: string;
  pinDir: string;
  /** The router's addresses on the node's link: its BGP peers. */
  gatewayV4: string;
  gatewayV6: string;
  /** BIRD's configuration (the agent writes it) and control socket. */
  birdDir: string;
  bird: ChildProcess | null;
  agent: ChildProcess | null;
  log: string[];
}

/** How a node's agent reaches the API server: a kubeconfig for 127.0.0.1:port, relayed to the socket the test's bridge listens on. */
export interface LabApi {
  kubeconfig: string;
  port: number;
  socket: string;
}

/** Where `npm run lab -- up` keeps what `down` needs. */
export const LAB_STATE_DIR = '/run/xdplb-lab';

export interface LabState {
  tag: string;
  namespaces: string[];
  pinRoot: string;
  workDir: string;
  pids: number[];
}

/** An entry of a backend agent's standalone file. */
export type StandaloneBackend = PodBackend;

const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

export class Lab {
  readonly router: string;
  readonly client: string;
  /** The router's end of the client's link (the client's is its eth0). */
  readonly clientLink = 'c1';
  readonly balancers: Balancer[];
  readonly reals: LabReal[];
  readonly workers: LabWorker[];
  /** The client's addresses (wire() gives it .2 of its link). */
  readonly clientAddress = { v4: CLIENT4, v6: CLIENT6 };
  readonly pinRoot: string;
  readonly workDir: string;
  readonly configPath: string;
  private readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();
  /** Log-file pollers of detached processes: stopped by detach(), or they keep this process alive. */
  private readonly pollers = new Set<NodeJS.Timeout>();
  private unregisterCleanup: () => void = () => undefined;
  private isDown = false;
  private readonly pids: number[] = [];
  /** Namespaces with an API forwarder running. */
  private readonly forwarders = new Set<string>();
  private routerBird: ChildProcess | null = null;
  readonly routerBirdDir: string;

  private constructor(readonly tag: string, realCount: number, private readonly podsPerWorker: readonly number[], readonly persistent: boolean,
    public routing: LabRouting, readonly bgp: LabBgpOptions) {
    const ns = (n: string) => `${LAB_PREFIX}-${tag}-${n}`;
    this.router = ns('router');
    this.client = ns('client');
    this.pinRoot = `/sys/fs/bpf/${LAB_PREFIX}-${tag}`;
    this.balancers = [1, 2].map((i) => ({
      name: `lb${i}`,
      ns: ns(`lb${i}`),
      v4: `198.18.2${i}.2`,
      v6: `2001:db8:2${i}::2`,
      pinDir: `${this.pinRoot}/lb${i}`,
      gatewayV4: `198.18.2${i}.1`,
      gatewayV6: `2001:db8:2${i}::1`,
      birdDir: '', // in workDir, made below
      bird: null,
      agent: null,
      log: [],
    }));
    this.reals = Array.from({ length: realCount }, (_, j) => ({
      name: `real${j + 1}`,
      ns: ns(`real${j + 1}`),
      v4: `198.18.3${j + 1}.2`,
      v6: `2001:db8:3${j + 1}::2`,
    }));
    this.workDir = mkdtempSync(join(tmpdir(), `${LAB_PREFIX}-`));
    this.workers = podsPerWorker.length === 0 ? [] : [1, 2].map((i) => ({
      name: `w${i}`,
      ns: ns(`w${i}`),
      v4: `198.18.4${i}.2`,
      v6: `2001:db8:4${i}::2`,
      podNet: { v4: `198.18.14${i}`, v6: `2001:db8:14${i}` },
      routed: `w${i}` !== UNROUTED_WORKER,
      pinDir: `${this.pinRoot}/w${i}`,
      backendsPath: join(this.workDir, `backends-w${i}.yaml`),
      agent: null,
      log: [],
      pods: [],
      made: 0,
    }));
    this.configPath = join(this.workDir, 'vips.yaml');
    for (const b of this.balancers) b.birdDir = join(this.workDir, `bird-${b.name}`);
    this.routerBirdDir = join(this.workDir, 'bird-router');
  }

  /** Builds the lab. Removes namespaces a crashed earlier run with the same tag left. */
  /** Routed by BGP (the default), the lab's VIPs, and every node's agent running and announcing. */
  static async upServing(bgp: LabBgpOptions = {}): Promise<Lab> {
    const lab = await Lab.up(bgp);
    lab.writeVips(labVips(lab));
    for (const b of lab.balancers) await lab.startAgent(b);
    return lab;
  }

  /** Static routes to lb1 alone, the lab's VIPs, and lb1's agent running: every packet of a test goes through lb1. */
  static async upThroughFirstBalancer(reals = 2): Promise<{ lab: Lab; lb1: Balancer }> {
    const lab = await Lab.up({ routing: 'static', reals });
    const lb1 = lab.balancers[0]!;
    lab.writeVips(labVips(lab));
    lab.routeVia([lb1]);
    await lab.startAgent(lb1);
    return { lab, lb1 };
  }

  /** `pods`: the worker nodes w1 and w2 with that many pods each, or [w1's, w2's] (no workers by default). */
  static async up(opts: { tag?: string; reals?: number; pods?: number | [number, number]; persistent?: boolean; routing?: LabRouting } & LabBgpOptions = {}): Promise<Lab> {
    const pods = opts.pods === undefined ? [] : typeof opts.pods === 'number' ? [opts.pods, opts.pods] : opts.pods;
    const lab = new Lab(opts.tag ?? String(process.pid), opts.reals ?? 3, pods, opts.persistent ?? false, opts.routing ?? 'bgp',
      { bfd: opts.bfd, holdSeconds: opts.holdSeconds });
    lab.unregisterCleanup = onExitOrSignal(() => lab.downSync());
    try {
      lab.removeStale();
      await lab.build();
    } catch (err) {
      lab.downSync();
      throw err;
    }
    return lab;
  }

  /** Runs `ip` inside a namespace. */
  ip(ns: string, ...args: string[]): string {
    return run('ip', ['-n', ns, ...args]);
  }

  /** Runs `ip` in a namespace's network only: /sys/fs/bpf stays visible (`ip -n` remounts /sys), so pinned objects can be named. */
  nsenterIp(ns: string, ...args: string[]): string {
    return run('nsenter', [`--net=/var/run/netns/${ns}`, 'ip', ...args]);
  }

  private sysctl(ns: string, ...settings: string[]): void {
    run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...settings]);
  }

  private addNs(name: string): void {
    run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    this.ip(name, 'link', 'set', 'lo', 'up');
    this.sysctl(name, 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0', 'net.ipv6.conf.default.accept_ra=0');
  }

  /** A veth between the router (routerIf) and a node's eth0, with /24 and /64 on both ends. */
  /** A veth from the router to the namespace's eth0; in the 'l2' lab the client's and balancers' join the segment, where the router's addresses go. */
  private wire(ns: string, routerIf: string, v4net: string, v6net: string, mtu: number): void {
    this.ip(this.router, 'link', 'add', routerIf, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns, 'mtu', String(mtu));
    const onSegment = this.routing === 'l2' && (ns === this.client || this.balancers.some((b) => b.ns === ns));
    if (onSegment) this.ip(this.router, 'link', 'set', routerIf, 'master', SEGMENT);
    const routerSide = onSegment ? SEGMENT : routerIf;
    this.ip(this.router, 'addr', 'add', `${v4net}.1/24`, 'dev', routerSide);
    this.ip(this.router, '-6', 'addr', 'add', `${v6net}::1/64`, 'dev', routerSide, 'nodad');
    this.ip(ns, 'addr', 'add', `${v4net}.2/24`, 'dev', 'eth0');
    this.ip(ns, '-6', 'addr', 'add', `${v6net}::2/64`, 'dev', 'eth0', 'nodad');
    this.ip(this.router, 'link', 'set', routerIf, 'up');
    this.ip(ns, 'link', 'set', 'eth0', 'up');
    this.ip(ns, 'route', 'add', 'default', 'via', `${v4net}.1`);
    this.ip(ns, '-6', 'route', 'add', 'default', 'via', `${v6net}::1`);
  }

  private async build(): Promise<void> {
    this.addNs(this.router);
    this.sysctl(this.router, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1',
      'net.ipv4.fib_multipath_hash_policy=1', 'net.ipv6.fib_multipath_hash_policy=1');
    this.addNs(this.client);
    // Tests make thousands of back-to-back connections from one address to one VIP:port; each leaves its port in
    // TIME_WAIT for 60 s, and a run of tests exhausts the ephemeral range (connect: EADDRNOTAVAIL). A real client
    // population has many addresses; this one reuses TIME_WAIT ports, which timestamps make safe.
    this.sysctl(this.client, 'net.ipv4.tcp_tw_reuse=1');
    if (this.routing === 'l2') {
      // One broadcast domain; no multicast snooping, so Neighbor Solicitations reach every balancer.
      this.ip(this.router, 'link', 'add', SEGMENT, 'type', 'bridge', 'mcast_snooping', '0');
      this.ip(this.router, 'link', 'set', SEGMENT, 'up');
    }
    this.wire(this.client, this.clientLink, '198.18.10', '2001:db8:10', CLIENT_MTU);
    if (this.routing === 'l2') {
      for (const prefix of Object.values(STATIC_VIP_ROUTES)) this.ip(this.client, 'route', 'add', prefix, 'dev', 'eth0');
    }
    // With checksum offload, veth hands XDP frames whose TCP/UDP checksum is not
    // filled in yet (CHECKSUM_PARTIAL); the balancer sends the bytes as they are
    // and the real drops them. A physical NIC never delivers such frames, so the
    // lab's client computes checksums in software, as a host across a wire does.
    run('ip', ['netns', 'exec', this.client, 'ethtool', '-K', 'eth0', 'tx', 'off']);
    for (const [i, b] of this.balancers.entries()) {
      this.addNs(b.ns);
      this.wire(b.ns, b.name, `198.18.2${i + 1}`, `2001:db8:2${i + 1}`, FABRIC_MTU);
      // A veth receives XDP_TX frames only if its peer runs XDP: decap with no addresses passes everything.
      await this.runNode(this.router, DECAP, ['attach', '--nic', b.name, '--pin-dir', `${this.pinRoot}/router-${b.name}`]);
    }
    for (const [j, r] of this.reals.entries()) {
      this.addNs(r.ns);
      this.wire(r.ns, `r${j + 1}`, `198.18.3${j + 1}`, `2001:db8:3${j + 1}`, FABRIC_MTU);
      for (const vip of [VIP4, VIP4_V6REALS]) this.ip(r.ns, 'addr', 'add', `${vip}/32`, 'dev', 'lo');
      this.ip(r.ns, '-6', 'addr', 'add', `${VIP6}/128`, 'dev', 'lo', 'nodad');
      await this.runNode(r.ns, DECAP, ['attach', '--nic', 'eth0', '--addr', r.v4, '--addr', r.v6, '--pin-dir', `${this.pinRoot}/${r.name}`]);
      await this.startServer(r);
    }
    for (const [i, w] of this.workers.entries()) {
      this.addNs(w.ns);
      this.wire(w.ns, w.name, `198.18.4${i + 1}`, `2001:db8:4${i + 1}`, FABRIC_MTU);
      this.sysctl(w.ns, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
      if (w.routed) {
        this.ip(this.router, 'route', 'add', `${w.podNet.v4}.0/24`, 'via', w.v4);
        this.ip(this.router, '-6', 'route', 'add', `${w.podNet.v6}::/64`, 'via', w.v6);
      }
      for (let k = 0; k < this.podsPerWorker[i]!; k++) await this.addPod(w);
    }
    if (this.routing === 'bgp') await this.startBgp();
    else if (this.routing === 'static') this.routeVia(this.balancers);
  }

  /**
   * Starts BIRD on the router and beside each balancer node (each waits for
   * the configuration its agent writes) and leaves the VIP routes to BGP.
   */
  async startBgp(): Promise<void> {
    this.routing = 'bgp';
    for (const b of this.balancers) {
      if (b.bird) continue;
      mkdirSync(b.birdDir, { recursive: true });
      const [cmd, ...args] = birdCommand(b.birdDir);
      b.bird = this.keepLog(this.spawnIn(b.ns, [cmd!, ...args], `bird-${b.name}`), `bird-${b.name}`);
      b.bird.on('exit', () => (b.bird = null));
    }
    if (this.routerBird) return;
    for (const prefix of Object.values(STATIC_VIP_ROUTES)) {
      try {
        this.ip(this.router, 'route', 'del', prefix);
      } catch {
        /* none yet */
      }
    }
    mkdirSync(this.routerBirdDir, { recursive: true });
    const conf = join(this.routerBirdDir, 'bird.conf');
    const peers = this.balancers.map((b) => ({ name: b.name, v4: b.v4, v6: b.v6 }));
    writeFileSync(conf, routerBirdConfig(ROUTER_ID, peers, { bfd: this.bgp.bfd && bfdTimers(this.bgp.bfd), holdSeconds: this.bgp.holdSeconds }));
    const socket = join(this.routerBirdDir, BIRD_SOCKET_NAME);
    this.routerBird = this.keepLog(this.spawnIn(this.router, ['bird', '-f', '-c', conf, '-s', socket], 'bird-router'), 'bird-router');
    this.routerBird.on('exit', () => (this.routerBird = null));
    await this.until('the router\'s BIRD to listen', () => existsSync(socket), READY_TIMEOUT_MS);
  }

  /** BIRD's last log lines, by process name (bird-router, bird-lb1, ...). */
  readonly birdLogs = new Map<string, string[]>();

  /** Reads a BIRD's output as it comes (a full pipe would stop BIRD), keeping its last lines. */
  private keepLog(child: ChildProcess, name: string): ChildProcess {
    const lines: string[] = [];
    this.birdLogs.set(name, lines);
    const stop = this.follow(child, name, (text) => {
      lines.push(...text.split('\n').filter(Boolean));
      lines.splice(0, Math.max(0, lines.length - BIRD_LOG_LINES));
    });
    child.on('exit', stop);
    return child;
  }

  /** Stops the router's BIRD (its routes leave the kernel with it) and routes statically to every balancer. */
  async useStaticRoutes(): Promise<void> {
    this.routing = 'static';
    const bird = this.routerBird;
    if (bird) {
      const exited = new Promise((r) => bird.once('exit', r));
      bird.kill('SIGTERM');
      await exited;
    }
    this.routeVia(this.balancers);
  }

  /** What a standalone agent is given to announce its VIPs: every router address (each node peers with those on its link). */
  bgpSettings(): AgentBgpSettings {
    const peers = this.balancers.flatMap((b) => [b.gatewayV4, b.gatewayV6].map((address) => ({ address, asn: ROUTER_ASN })));
    return { localASN: BALANCER_ASN, peers, ...(this.bgp.bfd ? { bfd: this.bgp.bfd } : {}) };
  }

  /** The gateways of the router's kernel route to exactly this address (/32 or /128), sorted; [] when it has none. */
  routerNextHops(address: string): string[] {
    const prefix = address.includes(':') ? `${address}/128` : `${address}/32`;
    const routes = JSON.parse(this.ip(this.router, '-j', address.includes(':') ? '-6' : '-4', 'route', 'show', 'exact', prefix) || '[]') as
      { gateway?: string; nexthops?: { gateway?: string }[] }[];
    return routes.flatMap((r) => (r.nexthops ?? [r]).flatMap((h) => (h.gateway ? [h.gateway] : []))).sort();
  }

  /** Waits until the router routes each address to exactly these balancers (none: no route). */
  async waitForRoutes(addresses: string[], via: Balancer[], timeoutMs = ROUTES_TIMEOUT_MS): Promise<void> {
    for (const address of addresses) {
      const want = via.map((b) => (address.includes(':') ? b.v6 : b.v4)).sort();
      await this.until(`the router to route ${address} via [${want.join(', ')}] (now [${this.routerNextHops(address).join(', ')}])`,
        () => this.routerNextHops(address).join() === want.join(), timeoutMs);
    }
  }

  /** birdc on the router: its sessions, or the routes it learnt. */
  routerBirdc(...command: string[]): string {
    return run('birdc', ['-s', join(this.routerBirdDir, BIRD_SOCKET_NAME), ...command]);
  }

  /**
   * The router's BGP sessions with the nodes and, when it runs BFD, its BFD
   * sessions, each "name state since" (a session that restarted has a new
   * since; see sameSessions).
   */
  routerSessions(): string[] {
    const bgp = this.routerBirdc('show', 'protocols').split('\n').filter((l) => /^lb\d_v[46]\s/.test(l))
      .map((l) => l.split(/\s+/)).map((c) => `${c[0]} ${c[3]} ${c[4]}`); // name proto table state since ...
    const bfd = !this.bgp.bfd ? [] : this.routerBirdc('show', 'bfd', 'sessions').split('\n').map((l) => l.trim().split(/\s+/))
      .filter((c) => c.length >= 4 && isIP(c[0]!)).map((c) => `${c[0]} ${c[2]} ${c[3]}`); // address interface state since ...
    return [...bgp, ...bfd];
  }

  private async untilAsync(what: string, ok: () => Promise<boolean>, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  private async until(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** Deletes a balancer node's NIC (as a driver reload does); its router-side peer, with the addresses, routes and decap there, goes too. */
  deleteNic(b: Balancer): void {
    this.ip(b.ns, 'link', 'del', 'eth0');
  }

  /** Creates a deleted balancer NIC again as build() made it: names, addresses, default routes, the router's decap on its side. Static VIP routes are the caller's (routeVia). */
  async restoreNic(b: Balancer): Promise<void> {
    const net = this.balancers.indexOf(b) + 1;
    this.wire(b.ns, b.name, `198.18.2${net}`, `2001:db8:2${net}`, FABRIC_MTU);
    await this.runNode(this.router, DECAP, ['attach', '--nic', b.name, '--pin-dir', `${this.pinRoot}/router-${b.name}`]);
  }

  /** Points the router's VIP routes at these balancers (ECMP when several). */
  routeVia(balancers: Balancer[]): void {
    const hops4 = balancers.flatMap((b) => ['nexthop', 'via', b.v4, 'dev', b.name]);
    const hops6 = balancers.flatMap((b) => ['nexthop', 'via', b.v6, 'dev', b.name]);
    this.ip(this.router, 'route', 'replace', STATIC_VIP_ROUTES.v4, ...hops4);
    this.ip(this.router, '-6', 'route', 'replace', STATIC_VIP_ROUTES.v6, ...hops6);
  }

  /**
   * Spawns node in a namespace (network only: bpffs stays visible). A
   * long-running process of a persistent lab (logName) is detached and logs
   * to workDir/<logName>.log, so it outlives this process.
   */
  spawnNode(ns: string, script: string, args: string[], logName?: string): ChildProcess {
    return this.spawnIn(ns, [process.execPath, script, ...args], logName);
  }

  /** spawnNode for any program. */
  spawnIn(ns: string, command: string[], logName?: string): ChildProcess {
    const argv = [`--net=/var/run/netns/${ns}`, ...command];
    const env = { ...process.env, XDPLB_LOG_LEVEL: process.env.XDPLB_LOG_LEVEL ?? 'info' };
    let child: ChildProcess;
    if (this.persistent && logName) {
      const fd = openSync(this.logPath(logName), 'a');
      child = spawn('nsenter', argv, { stdio: ['ignore', fd, fd], env, detached: true });
      closeSync(fd);
      child.unref();
      if (child.pid) this.pids.push(child.pid);
    } else {
      child = spawn('nsenter', argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
    }
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  logPath(name: string): string {
    return join(this.workDir, `${name}.log`);
  }

  /** Calls back with each chunk of a child's output, from its pipe or its log file. */
  private follow(child: ChildProcess, logName: string, onText: (text: string) => void): () => void {
    if (child.stdout) {
      const h = (d: Buffer) => onText(d.toString());
      child.stdout.on('data', h);
      child.stderr!.on('data', h);
      return () => undefined;
    }
    let offset = 0;
    const timer = setInterval(() => {
      if (!existsSync(this.logPath(logName))) return;
      const text = readFileSync(this.logPath(logName), 'utf8');
      if (text.length > offset) onText(text.slice(offset));
      offset = text.length;
    }, 50);
    this.pollers.add(timer);
    return () => {
      clearInterval(timer);
      this.pollers.delete(timer);
    };
  }

  /** Runs node in a namespace to completion; rejects with its stderr on failure. */
  runNode(ns: string, script: string, args: string[]): Promise<string> {
    const child = this.spawnNode(ns, script, args);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    return new Promise((resolve, reject) =>
      child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${script} in ${ns} exited ${code}: ${err || out}`)))),
    );
  }

  private startServer(r: LabReal): Promise<void> {
    const cfg = {
      name: r.name,
      tcp: [VIP4, VIP4_V6REALS, VIP6].map((address) => ({ address, port: 80 })),
      udp: [VIP4, VIP6].map((address) => ({ address, port: 53 })),
    };
    return this.serve(r.ns, cfg).then(() => undefined);
  }

  /** Starts the lab's server program in a namespace and waits until it listens. */
  private serve(ns: string, cfg: { name: string; tcp: { address: string; port: number }[]; udp: { address: string; port: number }[] }): Promise<ChildProcess> {
    const child = this.spawnNode(ns, SERVER, [JSON.stringify(cfg)], `server-${cfg.name}`);
    return new Promise((resolve, reject) => {
      let unfollow = () => undefined as void;
      const timer = setTimeout(() => {
        unfollow();
        reject(new Error(`server ${cfg.name} did not start`));
      }, READY_TIMEOUT_MS);
      unfollow = this.follow(child, `server-${cfg.name}`, (text) => {
        if (text.includes('ready')) {
          clearTimeout(timer);
          unfollow();
          resolve(child);
        }
      });
      child.on('exit', (code) => reject(new Error(`server ${cfg.name} exited ${code}`)));
    });
  }

  /**
   * Adds a pod to a worker, as a CNI plugin would: its namespace, a veth pair
   * (eth0 inside, `<pod>h` on the node), its addresses, routes both ways; then
   * starts its unmodified server on every address, TCP and UDP port POD_PORT.
   */
  async addPod(w: LabWorker): Promise<LabPod> {
    const k = ++w.made;
    const name = `${w.name}-pod${k}`;
    const pod: LabPod = {
      name, ns: `${LAB_PREFIX}-${this.tag}-${name}`, worker: w, v4: `${w.podNet.v4}.${k + 1}`, v6: `${w.podNet.v6}::${(k + 1).toString(16)}`,
      veth: `${name.replace('-', '')}h`, server: null,
    };
    this.addNs(pod.ns);
    this.ip(w.ns, 'link', 'add', pod.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.ns);
    // The node answers ARP for the pod's gateway (proxy ARP) and NDP from fe80::1 on its end.
    this.sysctl(w.ns, `net.ipv4.conf.${pod.veth}.proxy_arp=1`);
    this.ip(w.ns, '-6', 'addr', 'add', `${POD_GATEWAY.v6}/64`, 'dev', pod.veth, 'nodad');
    this.ip(w.ns, 'link', 'set', pod.veth, 'up');
    this.ip(pod.ns, 'addr', 'add', `${pod.v4}/32`, 'dev', 'eth0');
    this.ip(pod.ns, '-6', 'addr', 'add', `${pod.v6}/128`, 'dev', 'eth0', 'nodad');
    this.ip(pod.ns, 'link', 'set', 'eth0', 'up');
    this.ip(pod.ns, 'route', 'add', POD_GATEWAY.v4, 'dev', 'eth0', 'scope', 'link');
    this.ip(pod.ns, 'route', 'add', 'default', 'via', POD_GATEWAY.v4, 'dev', 'eth0');
    this.ip(pod.ns, '-6', 'route', 'add', 'default', 'via', POD_GATEWAY.v6, 'dev', 'eth0');
    this.ip(w.ns, 'route', 'add', `${pod.v4}/32`, 'dev', pod.veth);
    this.ip(w.ns, '-6', 'route', 'add', `${pod.v6}/128`, 'dev', pod.veth);
    // '::' takes IPv4 too (dual stack): one socket a protocol, as most servers do.
    pod.server = await this.serve(pod.ns, { name, tcp: [{ address: '::', port: POD_PORT }], udp: [{ address: '::', port: POD_PORT }] });
    pod.server.on('exit', () => (pod.server = null));
    w.pods.push(pod);
    return pod;
  }

  /** Deletes a pod as the kubelet and CNI plugin would: its server stops, its namespace goes and takes the veth and host routes with it. */
  async removePod(pod: LabPod): Promise<void> {
    await signalAndWait(pod.server, 'SIGKILL');
    run('ip', ['netns', 'del', pod.ns]);
    this.namespaces.splice(this.namespaces.indexOf(pod.ns), 1);
    pod.worker.pods.splice(pod.worker.pods.indexOf(pod), 1);
  }

  /** Every pod of every worker. */
  pods(): LabPod[] {
    return this.workers.flatMap((w) => w.pods);
  }

  /** Writes a worker's backend file (atomically); its agent applies it within its poll. */
  writeBackends(w: LabWorker, backends: StandaloneBackend[]): void {
    const tmp = `${w.backendsPath}.tmp`;
    writeFileSync(tmp, yaml.dump({ backends }));
    execFileSync('mv', [tmp, w.backendsPath]);
  }

  /** Writes a worker's backend file and waits until its running agent has applied it, none refused. */
  async applyBackends(w: LabWorker, backends: StandaloneBackend[]): Promise<void> {
    const applied = async () => sample(await this.backendMetrics(w), 'xdplb_backend_applied_total');
    const before = w.agent ? await applied() : 0;
    this.writeBackends(w, backends);
    if (!w.agent) return;
    await this.untilAsync(`the backend agent on ${w.name} to apply its file`, async () => (await applied()) > before);
    const refused = sample(await this.backendMetrics(w), 'xdplb_backend_refused');
    if (refused) throw new Error(`the backend agent on ${w.name} refused ${refused} backends:\n${w.log.slice(-10).join('\n')}`);
  }

  /**
   * Starts a worker's backend agent and waits until it is ready: standalone on
   * its backend file (`--config`), or given `api`, in cluster mode as node
   * w.name (as startClusterAgent does for a balancer node).
   */
  async startBackendAgent(w: LabWorker, opts: { api?: LabApi; args?: string[] } = {}): Promise<void> {
    if (w.agent) throw new Error(`${w.name} already runs a backend agent`);
    let source: string[];
    if (opts.api) {
      await this.ensureApiForwarder(w.ns, opts.api);
      source = ['--node-name', w.name, '--kubeconfig', opts.api.kubeconfig];
    } else {
      if (!existsSync(w.backendsPath)) this.writeBackends(w, []);
      source = ['--config', w.backendsPath];
    }
    const child = this.spawnNode(w.ns, AGENT, ['--mode', 'backend', ...source, '--pin-dir', w.pinDir,
      '--metrics-address', `127.0.0.1:${WORKER_METRICS_PORT}`, ...(opts.args ?? [])], `agent-${w.name}`);
    w.agent = child;
    const unfollow = this.follow(child, `agent-${w.name}`, (text) => w.log.push(...text.split('\n').filter(Boolean)));
    child.on('exit', () => {
      unfollow();
      if (w.agent === child) w.agent = null;
    });
    await this.untilAsync(`the backend agent on ${w.name} to be ready`, async () => {
      if (!w.agent) throw new Error(`backend agent on ${w.name} exited:\n${w.log.slice(-20).join('\n')}`);
      return (await this.get(w.ns, WORKER_METRICS_PORT, '/readyz').catch(() => '')) === 'ready\n';
    });
  }

  stopBackendAgent(w: LabWorker, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    return signalAndWait(w.agent, signal);
  }

  async backendMetrics(w: LabWorker): Promise<Samples> {
    return parseMetrics(await this.get(w.ns, WORKER_METRICS_PORT, '/metrics'));
  }

  /** Writes the standalone VIP file the agents watch (atomically, as a ConfigMap update would). */
  writeVips(vips: StandaloneVip[] | string): void {
    const text = typeof vips === 'string' ? vips : yaml.dump({ vips });
    const tmp = `${this.configPath}.tmp`;
    writeFileSync(tmp, text);
    execFileSync('mv', [tmp, this.configPath]);
  }

  /** Starts the agent of a balancer node on the lab's VIP file and waits until it is ready. */
  async startAgent(b: Balancer, extraArgs: string[] = [], opts: AgentLaunch = {}): Promise<void> {
    const bgp = this.routing === 'bgp' ? ['--bgp', JSON.stringify(this.bgpSettings()), '--bird-dir', b.birdDir] : [];
    await this.launchAgent(b, ['--config', this.configPath, ...bgp, ...extraArgs], opts);
    // With BGP, ready means traffic reaches it too: the router has learnt its routes.
    if (this.routing === 'bgp') await this.waitForRoutesVia(b);
  }

  /** The addresses of the VIP file. */
  fileVipAddresses(): string[] {
    const doc = yaml.load(readFileSync(this.configPath, 'utf8')) as { vips?: { address: string }[] } | null;
    return [...new Set((doc?.vips ?? []).map((v) => v.address))];
  }

  /** Waits until the router routes every address of the VIP file via this balancer (among others). */
  private async waitForRoutesVia(b: Balancer): Promise<void> {
    for (const address of this.fileVipAddresses()) {
      const hop = address.includes(':') ? b.v6 : b.v4;
      await this.until(`the router to learn ${address} from ${b.name}\n${this.birdLogs.get(`bird-${b.name}`)?.slice(-5).join('\n') ?? ''}`,
        () => this.routerNextHops(address).includes(hop), ROUTES_TIMEOUT_MS);
    }
  }

  /**
   * Starts the agent of a balancer node in cluster mode, as node b.name. The
   * API server is at 127.0.0.1:apiPort of the host; inside the node's
   * namespace a forwarder relays that port to `apiSocket` (see api-forward.ts).
   */
  async startClusterAgent(b: Balancer, api: LabApi, extraArgs: string[] = []): Promise<void> {
    await this.ensureApiForwarder(b.ns, api);
    return this.launchAgent(b, ['--node-name', b.name, '--kubeconfig', api.kubeconfig, ...extraArgs]);
  }

  /** The API server's port inside a namespace: a forwarder relays 127.0.0.1:api.port there to api.socket (api-forward.ts). */
  private async ensureApiForwarder(ns: string, api: LabApi): Promise<void> {
    if (this.forwarders.has(ns)) return;
    const fwd = this.spawnNode(ns, API_FORWARD, [String(api.port), api.socket]);
    await new Promise<void>((resolve, reject) => {
      fwd.stdout!.once('data', () => resolve());
      fwd.once('exit', (code) => reject(new Error(`API forwarder in ${ns} exited ${code}`)));
    });
    this.forwarders.add(ns);
  }

  private async launchAgent(b: Balancer, args: string[], opts: AgentLaunch = {}): Promise<void> {
    if (b.agent) throw new Error(`${b.name} already runs an agent`);
    const child = this.spawnIn(b.ns, [...opts.prefix ?? [], process.execPath, AGENT,
      '--connection-table', '65536', ...args, '--nic', 'eth0', '--pin-dir', b.pinDir, // the last of a flag wins: args may size the table
      '--metrics-address', `127.0.0.1:${METRICS_PORT}`,
    ], `agent-${b.name}`);
    b.agent = child;
    const unfollow = this.follow(child, `agent-${b.name}`, (text) => b.log.push(...text.split('\n').filter(Boolean)));
    child.on('exit', () => {
      unfollow();
      if (b.agent === child) b.agent = null;
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (!b.agent) throw new Error(`agent on ${b.name} exited:\n${b.log.slice(-20).join('\n')}`);
      if ((await this.httpGet(b, '/readyz').catch(() => '')) === 'ready\n') return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`agent on ${b.name} not ready after ${READY_TIMEOUT_MS} ms:\n${b.log.slice(-20).join('\n')}`);
  }

  /** Sends a signal to the agent of a balancer node and waits for it to exit. */
  stopAgent(b: Balancer, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    // nsenter execs node, so this PID is the agent itself.
    return signalAndWait(b.agent, signal);
  }

  /** Sends a signal to the BIRD beside a balancer node and waits for it to exit; startBgp() starts it again. */
  stopBird(b: Balancer, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    // nsenter execs sh, which execs bird (birdCommand): this PID is BIRD itself once it runs.
    return signalAndWait(b.bird, signal);
  }

  /** The client's TCP counters (nstat, absolute, history untouched): a lost SYN or segment is retransmitted, not failed. */
  clientTcp(): { synRetrans: number; retransSegs: number } {
    const text = run('ip', ['netns', 'exec', this.client, 'nstat', '-asz', 'TcpExtTCPSynRetrans', 'TcpRetransSegs']);
    const n = (name: string) => Number(new RegExp(`^${name}\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    return { synRetrans: n('TcpExtTCPSynRetrans'), retransSegs: n('TcpRetransSegs') };
  }

  /** GET on the agent's HTTP endpoint, from inside its namespace. */
  httpGet(b: Balancer, path: string): Promise<string> {
    return this.get(b.ns, METRICS_PORT, path);
  }

  /** GET on 127.0.0.1:port inside a namespace (the child exits once stdout is flushed: a pipe write is async). */
  private get(ns: string, port: number, path: string): Promise<string> {
    const script = `fetch('http://127.0.0.1:${port}${path}').then(async (r) => { const ok = r.ok; process.stdout.write(await r.text(), () => process.exit(ok ? 0 : 1)); }, () => process.exit(1))`;
    return this.runNode(ns, '-e', [script]);
  }

  async metrics(b: Balancer): Promise<Samples> {
    return parseMetrics(await this.httpGet(b, '/metrics'));
  }

  /** Writes the VIP file and waits until every running agent has applied it. */
  async applyVips(vips: StandaloneVip[]): Promise<void> {
    const running = this.balancers.filter((b) => b.agent);
    const okCount = async (b: Balancer) => sample(await this.metrics(b), 'xdplb_reconciles_total', { result: 'ok' });
    const before = await Promise.all(running.map(okCount));
    this.writeVips(vips);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (const [i, b] of running.entries()) {
      while ((await okCount(b)) <= before[i]!) {
        if (Date.now() > deadline) throw new Error(`agent on ${b.name} did not apply the VIP file:\n${b.log.slice(-10).join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Runs the client program with a command; resolves with its JSON result (start several to overlap them). */
  async clientRun<T>(cmd: object): Promise<T> {
    return JSON.parse(await this.runNode(this.client, CLIENT, [JSON.stringify(cmd)])) as T;
  }

  private removeStale(): void {
    const mine = `${LAB_PREFIX}-${this.tag}-`;
    for (const line of run('ip', ['netns', 'list']).split('\n')) {
      const name = line.split(' ')[0];
      if (name?.startsWith(mine)) run('ip', ['netns', 'del', name]);
    }
    if (existsSync(this.pinRoot)) rmSync(this.pinRoot, { recursive: true, force: true });
  }

  /** Saves what `Lab.downFromState` needs and lets this process go without tearing down. */
  detach(): LabState {
    const state: LabState = { tag: this.tag, namespaces: this.namespaces, pinRoot: this.pinRoot, workDir: this.workDir, pids: this.pids };
    mkdirSync(LAB_STATE_DIR, { recursive: true });
    writeFileSync(join(LAB_STATE_DIR, `${this.tag}.json`), JSON.stringify(state, null, 2));
    // What runs on is on its own now: let go of it, so `npm run lab -- up` returns.
    for (const timer of this.pollers) clearInterval(timer);
    this.pollers.clear();
    for (const child of this.children) {
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.unref();
    }
    this.unregisterCleanup();
    this.isDown = true;
    return state;
  }

  /** Tears down a lab that `detach` left running. */
  static downFromState(tag: string): boolean {
    const file = join(LAB_STATE_DIR, `${tag}.json`);
    if (!existsSync(file)) return false;
    const state = JSON.parse(readFileSync(file, 'utf8')) as LabState;
    for (const pid of state.pids) {
      // Only processes this lab started: their command line names the lab's own scripts or files (BIRD's).
      const cmdline = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
      if (cmdline.includes(DIST) || cmdline.includes(state.workDir)) process.kill(pid, 'SIGKILL');
    }
    for (const ns of [...state.namespaces].reverse()) {
      try {
        run('ip', ['netns', 'del', ns]);
      } catch {
        /* already gone */
      }
    }
    rmSync(state.pinRoot, { recursive: true, force: true });
    rmSync(state.workDir, { recursive: true, force: true });
    rmSync(file);
    return true;
  }

  /** Kills what the lab started and removes its namespaces, pins and files. */
  async down(): Promise<void> {
    const waits = [...this.children].map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r))));
    for (const c of this.children) c.kill('SIGKILL');
    await Promise.all(waits);
    this.downSync();
  }

  private downSync(): void {
    if (this.isDown) return;
    this.isDown = true;
    this.unregisterCleanup();
    for (const c of this.children) c.kill('SIGKILL');
    // Deleting a namespace deletes its veths and with them the XDP attachments.
    for (const ns of this.namespaces.reverse()) {
      try {
        run('ip', ['netns', 'del', ns]);
      } catch {
        /* already gone */
      }
    }
    rmSync(this.pinRoot, { recursive: true, force: true });
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

/**
 * Whether two readings of routerSessions() show the same sessions, each up
 * since the same moment: BIRD prints "since" from its monotonic clock
 * converted to wall time, which moves by milliseconds between two reads on a
 * loaded machine; a restarted session moves by seconds.
 */
export function sameSessions(a: string[], b: string[]): boolean {
  const ms = (l: string) => {
    const [h, m, sec] = l.split(' ').at(-1)!.split(':').map(Number);
    return ((h! * 60 + m!) * 60 + sec!) * 1000;
  };
  const name = (l: string) => l.split(' ').slice(0, -1).join(' ');
  return a.length === b.length && a.every((l, i) => name(l) === name(b[i]!) && Math.abs(ms(l) - ms(b[i]!)) < SINCE_JITTER_MS);
}

async function signalAndWait(child: ChildProcess | null, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** The lab's standard VIPs: IPv4 TCP+UDP, IPv4 with IPv6 reals, IPv6 TCP+UDP. */
export function labVips(lab: Lab, realsOf: (r: LabReal) => boolean = () => true): StandaloneVip[] {
  const reals = lab.reals.filter(realsOf);
  return [
    { name: 'web4', address: VIP4, ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }], reals: reals.map((r) => ({ address: r.v4, weight: 1 })) },
    { name: 'web4-v6reals', address: VIP4_V6REALS, ports: [{ port: 80, protocol: 'TCP' }], reals: reals.map((r) => ({ address: r.v6, weight: 1 })) },
    { name: 'web6', address: VIP6, ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }], reals: reals.map((r) => ({ address: r.v6, weight: 1 })) },
  ];
}
