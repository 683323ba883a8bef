/**
 * The balancer agent: keeps the XDP program attached to the NIC and its maps
 * equal to the desired VIPs. Maps and program are pinned, so a restarted or
 * upgraded agent adopts them and traffic never sees a gap.
 */
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import { componentLog } from '../lib/log.js';
import { BALANCER_PROGRAM } from '../bpf/consts.js';
import { type BalancerCapacity, type LoadedBalancer, loadBalancer } from '../bpf/programs.js';
import type { XdpMode } from '../libbpf/xdp.js';
import { XdpProgram, type XdpModeRequest } from '../libbpf/xdp-program.js';
import { Dataplane } from './dataplane/dataplane.js';
import type { Acceptance, VipSpec } from './dataplane/desired-state.js';
import { AgentMetrics } from './metrics.js';
import { Tracer } from './trace/tracer.js';
import { serveTrace } from './trace/trace-server.js';
import type { TraceAuthorization } from './trace/trace-access.js';
import type { AccessReviewer } from '../lib/access-review.js';
import type { ServingTls } from '../lib/serving-tls.js';
import { discoverNextHop, NEXT_HOP_POLL_MS, type NextHop, type NextHopState, NextHopWatcher } from './net/next-hop.js';
import { allAddresses, allLinks, subnets } from './net/iproute.js';
import { InvalidStateError } from './dataplane/desired-state.js';
import { attachedProgram, pinnedProgramId, programId } from '../libbpf/pins.js';
import { detachXdp } from '../libbpf/xdp.js';
import { readReasons } from './dataplane/counters.js';
import { ifIndex } from '../libbpf/libbpf.js';
import type { AgentBgpSettings } from '../api/xdpbalancer.js';
import { Announcer } from './announce/announcer.js';
import { connectedPeers } from './announce/connected-peers.js';
import { mapsWritableCheck, programAttachedCheck } from './announce/dataplane-checks.js';
import type { HealthCheck } from './announce/health.js';
import { registerBgpMetrics } from './announce/bgp-metrics.js';
import { L2Announcer } from './announce/l2-announcer.js';
import type { NodeAnnouncements } from './announce/node-report.js';
import { announceAddress, l2AddressMap, registerL2Metrics, SolicitedNodeGroups } from './announce/l2-sender.js';
import { canonicalIp } from '../lib/ip.js';
import { CapacityChange, recover as recoverCapacityChange } from './capacities/capacity-change.js';

const log = componentLog('agent');

export type XdpModeOption = XdpModeRequest;

export interface AgentOptions {
  nic?: string;
  xdpMode: XdpModeOption;
  pinDir: string;
  /** HOST:PORT for /metrics, /healthz, /readyz; empty: no server. */
  metricsAddress?: string;
  /** HOST:PORT for /trace (xdplb trace), loopback unless traceAuth is set; empty: no tracing. */
  traceAddress?: string;
  /** Checks /metrics callers (TokenReview, SubjectAccessReview); without it, metricsAddress must be loopback. */
  metricsReviewer?: AccessReviewer;
  /** Authorizes /trace callers per VIP namespace, with per-caller quotas. */
  traceAuth?: TraceAuthorization;
  /** Serve /metrics (and /healthz, /readyz) over HTTPS with it. */
  metricsTls?: ServingTls;
  /** Serve /trace over HTTPS with it. */
  traceTls?: ServingTls;
  /** This node's name, reported to trace clients. */
  nodeName?: string;
  nextHopMac?: string;
  srcV4?: string;
  srcV6?: string;
  /** Map capacities (default: the compiled ones). */
  capacity?: BalancerCapacity;
  nextHopPollMs?: number;
  /** Announce the programmed VIPs by BGP through BIRD. */
  bgp?: AgentBgp;
  /** L2 mode: answer ARP/NDP for the addresses the source names (setL2Addresses), announcing each taken over. */
  l2?: boolean;
}

export interface AgentBgp {
  settings: AgentBgpSettings;
  /** Where BIRD's configuration and control socket are. */
  birdDir: string;
  /** On stop, how long routers get to act on the withdrawal before the agent goes on. */
  withdrawSettleMs?: number;
  /** Checks on top of the dataplane's own (the cluster source adds the API server's). */
  checks?: HealthCheck[];
}

/** The balancer program's life on a NIC; its pin shares the maps' directory. */
function balancerProgram(nic: string, pinDir: string): XdpProgram {
  return new XdpProgram({
    nic,
    pinDir,
    pinName: `${BALANCER_PROGRAM}_prog`,
    owner: { name: 'xdplb', detachCommand: 'xdplb-agent cleanup' },
  });
}

export class Agent {
  private lb: LoadedBalancer | null = null;
  private dataplane: Dataplane | null = null;
  private nextHop: NextHop | null = null;
  private watcher: NextHopWatcher | null = null;
  private server: Server | null = null;
  private traceServer: Server | null = null;
  private tracer: Tracer | null = null;
  private vips: VipSpec[] = [];
  /** This node's own addresses, which no VIP may be (read at open, then with the next hop's poll). */
  private nodeAddresses: string[] = [];
  private addressTimer: NodeJS.Timeout | null = null;
  private queue: Promise<void> = Promise.resolve();
  private announcer: Announcer | null = null;
  private l2: L2Announcer | null = null;
  private l2Groups: SolicitedNodeGroups | null = null;
  /** The kernel's refusal of the last programming; null once one succeeds. */
  private lastWriteError: string | null = null;
  /** The NIC's index when the program went on: a NIC re-created under the same name has another. */
  private attachedIfindex: number | null = null;
  /** The index of a re-created NIC the program could not go on, so its error is logged once, not every poll. */
  private reattachFailedOn: number | null = null;
  /** Set when the pinned maps have other capacities: new maps are built beside them and swapped in by run(). */
  private capacityChange: CapacityChange | null = null;
  metrics: AgentMetrics | null = null;
  mode: XdpMode | null = null;

  constructor(private readonly opts: AgentOptions) {}

  /** The encapsulation settings programmed now (the health prober sends its frames with them); null before open(). */
  encapSettings(): NextHop | null {
    return this.nextHop;
  }

  get nic(): string {
    if (!this.nextHop) throw new Error('agent not started');
    return this.nextHop.nic;
  }

  /**
   * Finds the next hop, loads the objects (adopting pinned maps and their
   * contents) and serves metrics; nothing is attached or changed yet, so a
   * caller can accept() what it will program first.
   */
  async open(): Promise<void> {
    this.nextHop = await discoverNextHop(this.opts);
    log.info({ nextHop: this.nextHop }, 'next hop');
    await this.refreshNodeAddresses();
    this.capacityChange = CapacityChange.prepare({ pinDir: this.opts.pinDir, nic: this.nextHop.nic, capacity: this.opts.capacity });
    this.lb = this.capacityChange?.loadNew() ?? loadBalancer({ pinDir: this.opts.pinDir, capacity: this.opts.capacity });
    this.dataplane = new Dataplane(this.lb.maps);
    this.dataplane.adopt();
    this.metrics = new AgentMetrics(this.lb.maps, () => this.dataplane!);
    if (this.opts.metricsAddress) this.server = await this.metrics.listen(this.opts.metricsAddress, { reviewer: this.opts.metricsReviewer, tls: this.opts.metricsTls });
    if (this.opts.bgp) this.announcer = await this.makeAnnouncer(this.opts.bgp);
    if (this.opts.l2) {
      const groups = (this.l2Groups = new SolicitedNodeGroups(() => this.nextHop!.nic));
      const l2 = (this.l2 = new L2Announcer(l2AddressMap(this.lb.maps), (address) => announceAddress(this.nextHop!, address), {
        answered: (addresses) => void groups.sync(addresses),
      }));
      registerL2Metrics(this.metrics.registry, () => l2.state());
      log.info({ nic: this.nextHop.nic }, 'announcing VIPs in L2 mode (ARP/NDP) where the controller names this node');
    }
    this.tracer = new Tracer(this.lb.maps, () => this.dataplane!.installedVipNums());
    if (this.opts.traceAddress) {
      // Tracing is for debugging: a port in use must not keep the balancer from running.
      this.traceServer = await serveTrace(this.tracer, this.opts.traceAddress, this.opts.nodeName ?? hostname(), this.opts.traceAuth,
        this.opts.traceTls).catch((err: Error) => {
        log.error({ address: this.opts.traceAddress, err: err.message }, 'cannot serve /trace; xdplb trace will not reach this agent');
        return null;
      });
    }
  }

  /** Programs the initial VIPs, then attaches and follows next-hop changes. */
  async run(initialVips: VipSpec[]): Promise<void> {
    if (!this.dataplane) throw new Error('agent not opened');
    // Program before attaching: the program must never see empty maps it would pass traffic through.
    this.vips = initialVips;
    await this.reconcile().catch((err: unknown) => { throw this.capacityChange?.abandon(err) ?? err; });
    await this.leaveOtherNics();
    if (this.capacityChange) await this.capacityChange.swap(this.lb!, () => this.attach(), this.metrics!);
    else this.attach();
    this.metrics!.setReadiness(() => this.notReadyReason());
    this.metrics!.setAttachedCheck(() => this.attachmentProblem() === null);
    if (this.announcer) {
      this.announcer.start();
      await this.announcer.setProgrammed(this.programmedAddresses());
    }
    this.watcher = new NextHopWatcher(this.nextHop!, { ...this.opts, nic: this.nextHop!.nic },
      (state, changed) => this.onNextHopPoll(state, changed), this.opts.nextHopPollMs);
    this.watcher.start();
    // A VIP already programmed stays until its next change; new ones are checked against the fresh list.
    this.addressTimer = setInterval(() => void this.refreshNodeAddresses(), this.opts.nextHopPollMs ?? NEXT_HOP_POLL_MS);
    this.addressTimer.unref();
  }

  /**
   * Follows the NIC: reprograms changed encapsulation settings (the watcher
   * keeps the last good ones of what is lost), and puts the program back on a
   * re-created NIC, after its new settings (its MAC) are in the maps.
   */
  private onNextHopPoll(state: NextHopState, changed: boolean): void {
    this.metrics!.setEncapStale(state.stale);
    if (!state.nicPresent) return;
    if (changed) {
      this.nextHop = state.nextHop;
      this.reconcile().catch(() => undefined); // logged by reconcile; the maps keep the running state
    }
    if (state.nextHop.ifindex !== this.attachedIfindex) void this.enqueue(() => this.reattach(state.nextHop.ifindex));
  }

  /** Puts the program back on a re-created NIC, in the configured mode. */
  private reattach(ifindex: number): void {
    if (this.attachedIfindex === ifindex) return; // an earlier poll's request did it
    try {
      this.attach();
      this.reattachFailedOn = null;
      this.metrics!.reattaches.inc();
      log.info({ nic: this.nextHop!.nic, ifindex: this.attachedIfindex }, 'program back on the re-created NIC');
    } catch (err) {
      const level = this.reattachFailedOn === ifindex ? 'debug' : 'error';
      this.reattachFailedOn = ifindex;
      log[level]({ nic: this.nextHop!.nic, err: (err as Error).message }, 'cannot put the program back on the re-created NIC; retrying at each poll');
    }
  }

  /** Why /readyz fails: nothing programmed yet, the NIC missing, or the program not on it. */
  private notReadyReason(): string | null {
    if (!this.mode) return 'not programmed yet';
    const nic = this.nextHop!.nic;
    // Asked of the kernel at each request, so /readyz fails at once, not at the next poll.
    if (!nicExists(nic)) return `${nic} is missing: the program goes back on when it returns`;
    return this.attachmentProblem();
  }

  /** Null when this agent's program is on the NIC, else what is wrong. */
  private attachmentProblem(): string | null {
    const nic = this.nextHop!.nic;
    try {
      return programAttachedCheck(nic, () => programId(this.lb!.progFd)).problem();
    } catch (err) {
      return `cannot tell whether the program is on ${nic}: ${(err as Error).message}`;
    }
  }

  private async refreshNodeAddresses(): Promise<void> {
    try {
      const now = (await allAddresses()).sort();
      if (now.join() !== this.nodeAddresses.join()) log.info({ addresses: now }, 'node addresses (no VIP may be one)');
      this.nodeAddresses = now;
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot read the node\'s addresses; keeping the last list');
    }
  }

  /** Which of these VIPs the dataplane would program together (groups: see Dataplane.accept), and why not the others. */
  accept(vips: VipSpec[], groups?: readonly number[]): Acceptance {
    if (!this.dataplane || !this.nextHop) throw new Error('agent not opened');
    return this.dataplane.accept({ encap: this.nextHop, vips, nodeAddresses: this.nodeAddresses }, groups);
  }

  /** Replaces the desired VIPs; resolves when applied (rejects if they were refused). */
  setVips(vips: VipSpec[]): Promise<void> {
    const previous = this.vips;
    this.vips = vips;
    return this.reconcile().catch((err: unknown) => {
      this.vips = previous;
      throw err;
    });
  }

  /**
   * L2 mode: answers ARP/NDP for these addresses (those the controller names
   * this node for) among the VIPs the maps hold; announces the new ones.
   */
  setL2Addresses(addresses: string[]): void {
    if (!this.l2) return;
    void this.enqueue(() => {
      const programmed = new Set(this.programmedAddresses().map(canonicalIp));
      this.l2!.set(addresses.filter((a) => programmed.has(canonicalIp(a))));
    });
  }

  /** Runs one change of the maps or the attachment after those before it. */
  private enqueue(work: () => void): Promise<void> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private reconcile(): Promise<void> {
    return this.enqueue(() => {
      const end = this.metrics!.reconcileDuration.startTimer();
      try {
        const result = this.dataplane!.apply({ encap: this.nextHop!, vips: this.vips, nodeAddresses: this.nodeAddresses });
        this.lastWriteError = null;
        this.metrics!.reconciles.inc({ result: 'ok' });
        this.metrics!.setEncap(this.nextHop!);
        // Before attach (the first run) there is nothing to announce yet: run() announces after attaching.
        if (this.mode) void this.announcer?.setProgrammed(this.programmedAddresses());
        this.refreshTrace();
        if (result.writes) log.info(result, 'reconciled');
      } catch (err) {
        this.metrics!.reconciles.inc({ result: 'error' });
        if (!(err instanceof InvalidStateError)) this.lastWriteError = (err as Error).message;
        log.error({ err: (err as Error).message }, 'desired state refused; the maps keep the running state');
        throw err;
      } finally {
        end();
      }
    });
  }

  /** The VIP addresses the maps hold: what this node may announce. */
  private programmedAddresses(): string[] {
    return this.dataplane!.installedVipNums().map((v) => v.address);
  }

  /** Resolves the node's side of BGP (router id, peers on its subnets); throws when it cannot be. */
  private async makeAnnouncer(bgp: AgentBgp): Promise<Announcer> {
    const nextHop = this.nextHop!;
    const routerId = bgp.settings.routerID ?? nextHop.srcV4;
    if (!routerId) {
      throw new Error(`BGP needs a router id: ${nextHop.nic} has no IPv4 address to take it from; set spec.bgp.routerID (standalone: "routerID" in --bgp)`);
    }
    const { connected, elsewhere } = connectedPeers(bgp.settings.peers, await subnets());
    for (const p of elsewhere) log.info({ peer: p.address }, 'BGP peer in none of this node\'s subnets: no session from this node');
    if (connected.length === 0) log.warn({ peers: bgp.settings.peers.map((p) => p.address) }, 'no BGP peer is on this node\'s subnets: nothing will be announced');
    const ourProgram = () => programId(this.lb!.progFd);
    const announcer = new Announcer({
      settings: bgp.settings,
      birdDir: bgp.birdDir,
      routerId,
      nextHopV6: nextHop.srcV6,
      peers: connected,
      withdrawSettleMs: bgp.withdrawSettleMs,
      checks: [programAttachedCheck(nextHop.nic, ourProgram), mapsWritableCheck(() => this.lastWriteError), ...(bgp.checks ?? [])],
    });
    registerBgpMetrics(this.metrics!.registry, () => announcer.state());
    log.info({ routerId, localASN: bgp.settings.localASN, peers: connected.map((p) => p.address), birdDir: bgp.birdDir }, 'announcing VIPs by BGP');
    return announcer;
  }

  /**
   * Withdraws every VIP route and waits for the routers to move the traffic:
   * the first thing a stopping agent does, so no new flow arrives while the
   * node stops (and, if it detaches, finds no program).
   */
  async withdraw(): Promise<void> {
    this.l2?.withdrawAll();
    await this.l2Groups?.idle();
    await this.announcer?.withdrawAll();
  }

  /** How the node announces its VIPs now, for its entry of the XdpBalancer status. */
  announcements(): NodeAnnouncements {
    return { ...(this.announcer ? { bgp: this.announcer.state() } : {}), ...(this.l2 ? { l2: this.l2.state() } : {}) };
  }

  /** Whether it announces its VIPs (BGP or L2): only then does a withdrawal move traffic away. */
  get announces(): boolean {
    return !!this.announcer || !!this.l2;
  }

  /**
   * Packets the program has forwarded to reals since it was loaded: a counter that only grows.
   * Only TX_ENCAP: the other TX reasons are ARP and NDP answers, which go on while traffic drains.
   */
  forwardedPackets(): bigint {
    return this.lb ? readReasons(this.lb.maps).TX_ENCAP : 0n;
  }

  /** A traced VIP may have been added, renumbered or removed. */
  private refreshTrace(): void {
    try {
      this.tracer?.refresh();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'trace rules not updated');
    }
  }

  /**
   * A changed `nic` setting: this balancer's program (the pinned one) may
   * still be on the NIC the previous agent used, sharing maps whose control
   * entry now holds this NIC's addresses. It comes off there first, so it
   * never sends frames with the wrong addresses, and goes on the new NIC next.
   */
  private async leaveOtherNics(): Promise<void> {
    const nic = this.nextHop!.nic;
    const ours = pinnedProgramId(balancerProgram(nic, this.opts.pinDir).pinPath);
    if (!ours) return;
    for (const l of await allLinks()) {
      if (l.ifname === nic) continue;
      const on = attachedProgram(l.ifname);
      if (on?.id !== ours) continue;
      detachXdp(l.ifname, on.mode);
      log.info({ from: l.ifname, to: nic }, 'nic changed: detached from the old NIC');
    }
  }

  private attach(): void {
    const nic = this.nextHop!.nic;
    const attached = balancerProgram(nic, this.opts.pinDir).attach(this.lb!.progFd, this.opts.xdpMode);
    for (const { mode, err } of attached.failed) log.warn({ nic, err }, `${mode} XDP failed; falling back to ${attached.mode}`);
    this.mode = attached.mode;
    this.attachedIfindex = ifIndex(nic);
    if (attached.modeChange) {
      // One mode per NIC: the old program came off before this one went on; the maps (connections included) are the same.
      log.info({ nic, from: attached.modeChange.from, mode: attached.mode, gapMicros: attached.modeChange.gapMicros, replaced: attached.replaced },
        'changed XDP mode');
    } else if (attached.replaced !== null) {
      // Atomic swap: the new program shares the pinned maps, so no packet notices.
      log.info({ nic, mode: attached.mode, replaced: attached.replaced }, 'took over the attached program');
    } else {
      log.info({ nic, mode: attached.mode }, 'attached');
    }
    this.metrics!.setMode(this.mode, nic);
  }

  /**
   * Stops the agent. By default the program stays attached and the maps
   * pinned, so traffic keeps flowing until the next agent takes over.
   */
  async stop(opts: { detach?: boolean } = {}): Promise<void> {
    this.watcher?.stop();
    this.announcer?.stop();
    if (this.addressTimer) clearInterval(this.addressTimer);
    await this.queue;
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.traceServer?.closeAllConnections();
    await new Promise<void>((r) => (this.traceServer ? this.traceServer.close(() => r()) : r()));
    this.tracer?.shutdown();
    if (opts.detach && this.nextHop && this.mode) {
      cleanup(this.nextHop.nic, this.opts.pinDir);
      log.info({ nic: this.nextHop.nic }, 'detached and unpinned');
    }
    this.lb?.object.close();
  }
}

function nicExists(nic: string): boolean {
  try {
    ifIndex(nic);
    return true;
  } catch {
    return false;
  }
}

/** Detaches whatever xdplb attached to a NIC and removes its pins (xdplb-agent cleanup). */
export function cleanup(nic: string, pinDir: string): { detached: boolean } {
  recoverCapacityChange(pinDir, nic); // one set of pins, whatever a capacities change that stopped half way left
  const { detached, foreign } = balancerProgram(nic, pinDir).remove();
  if (foreign !== null) log.warn({ nic, id: foreign }, 'the program on the NIC is not ours: left attached');
  return { detached };
}
