/**
 * The node side of pod-address mode: makes unmodified local pods serve the
 * VIPs they back. Data flows one way, one module a step:
 *
 *   desired backends (setBackends: VIP port -> pod address, target port)
 *   + local pods' veths (pod-interfaces: host routes through veths)
 *   -> a plan of backend_svcs entries, and refusals (service-plan)
 *   -> tcx links on the veths of pods with entries (pod-links, rp-filter)
 *   -> backend_svcs as a diff, removed entries kept while they drain (service-table)
 *   Node addressing (backends with a node address), after that:
 *   + the node's addresses (node-plan: which device carries each)
 *   -> backend_node_svcs entries, the pods as weighted slots (node-plan)
 *   -> backend_node_svcs as a diff with drains (service-table)
 *   -> the from-NIC program on the devices of the entries held, none when none is (nic-links)
 *
 * over one backend object loaded per node and pinned (backend-object), so a
 * restarted agent adopts maps, flow table and links without a gap.
 *
 * Pods' veths are followed by rtnetlink: a socket subscribed to link,
 * address and route changes (net/netlink-changes.ts) says that something
 * changed, and a pass then reads the whole state again (`ip -j`), at most one
 * such pass a second. A missed or reordered message cannot leave a veth
 * without its programs: messages are not interpreted, and a full pass runs
 * every pollMs anyway (drains end there too). Where the socket cannot be
 * opened, every pass is a poll, once a second. A veth that goes away took its
 * attachments with it; the pass only tidies the pins up.
 */
import { componentLog } from '../../lib/log.js';
import type { BackendCapacities } from '../../bpf/maps.js';
import { removePinDir } from '../../libbpf/xdp-program.js';
import { type BackendObject, openBackendObject } from './backend-object.js';
import { type PodInterface, readPodInterfaces } from './pod-interfaces.js';
import { NetlinkChanges, RtnlGroup } from '../net/netlink-changes.js';
import { detachAllNics, type NicChange, NicLinks } from './nic-links.js';
import { type LocalAddresses, planNodeServices, readLocalAddresses } from './node-plan.js';
import { detachAllPinned, type LinkChange, type LinkTarget, PodLinks } from './pod-links.js';
import { describeBackend, planServices, type PodBackend, type Refusal } from './service-plan.js';
import { NodeServiceTable, ServiceTable, type TableChange } from './service-table.js';

const log = componentLog('backend');

/** How often the whole state is read again when rtnetlink reported no change: entries whose drain ended go, pins are tidied. */
export const BACKEND_POLL_MS = 5000;
/** Without rtnetlink: every pass is a poll. */
const FALLBACK_POLL_MS = 1000;
/** How often the rtnetlink socket is drained (a recv that finds nothing, when nothing changed). */
const CHANGE_CHECK_MS = 200;
/** At most one pass a change triggers per this: a node whose routes churn (a routing daemon) costs no more than polling. */
const MIN_CHANGE_PASS_MS = 1000;
const FOLLOWED = RtnlGroup.LINK | RtnlGroup.IPV4_IFADDR | RtnlGroup.IPV6_IFADDR | RtnlGroup.IPV4_ROUTE | RtnlGroup.IPV6_ROUTE;

export interface BackendAgentOptions {
  /** bpffs directory of the backend object: maps, programs and per-veth links are pinned there. */
  pinDir: string;
  /** How long a backend's entries stay after it leaves the desired set: the balancer's drain period. */
  drainMs: number;
  /** The flow table's size (default: the compiled one). A pinned table of another size is refused. */
  capacity?: Partial<BackendCapacities>;
  /** A full pass at least this often (default BACKEND_POLL_MS with rtnetlink, a second without). */
  pollMs?: number;
  /**
   * Node addressing: the devices the from-NIC program goes on while node
   * entries are held. Absent: the devices that carry the entries' node addresses.
   */
  nics?: readonly string[];
}

/** What one pass did. */
export interface SyncResult {
  links: LinkChange;
  table: TableChange;
  /** Node addressing: backend_node_svcs, and the NICs carrying the from-NIC program. */
  nodeTable: TableChange;
  nics: NicChange;
  /** Backends given that could not be programmed, with why. */
  refused: Refusal[];
}

export class BackendAgent {
  private backends: PodBackend[] = [];
  private timer: NodeJS.Timeout | null = null;
  private changes: NetlinkChanges | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  /** The refusals last logged, so each is logged when it appears, not every poll. */
  private loggedRefusals = new Set<string>();
  private lastRefused: Refusal[] = [];
  private lastVeths = 0;
  private lastNics = 0;
  private closed = false;

  private constructor(
    private readonly opts: BackendAgentOptions,
    private readonly object: BackendObject,
    private readonly table: ServiceTable,
    private readonly links: PodLinks,
    private readonly nodeTable: NodeServiceTable,
    private readonly nicLinks: NicLinks,
  ) {}

  /**
   * Loads the backend object over the pins in pinDir (adopting maps and
   * their entries, and the links), and pins what is new. Nothing is attached
   * or written until the first sync.
   */
  static open(opts: BackendAgentOptions): BackendAgent {
    const object = openBackendObject(opts.pinDir, opts.capacity);
    const table = new ServiceTable(object.loaded.maps.services, opts.drainMs);
    const nodeTable = new NodeServiceTable(object.loaded.maps.nodeServices, opts.drainMs);
    log.info({ pinDir: opts.pinDir, services: table.entries().length, nodeServices: nodeTable.entries().length,
      flowTable: object.loaded.maps.flows.maxEntries }, 'backend object loaded');
    return new BackendAgent(opts, object, table, new PodLinks(opts.pinDir, object), nodeTable, new NicLinks(opts.pinDir, object));
  }

  /** Follows pods' veths (a pass on each rtnetlink change, and every pollMs) until stop(). */
  start(): void {
    try {
      this.changes = NetlinkChanges.open(FOLLOWED);
    } catch (err) {
      log.warn({ err: (err as Error).message, pollMs: FALLBACK_POLL_MS }, 'rtnetlink not available: following pods by polling');
    }
    const fullEvery = this.opts.pollMs ?? (this.changes ? BACKEND_POLL_MS : FALLBACK_POLL_MS);
    let lastPass = Date.now();
    let changed = false;
    this.timer = setInterval(() => {
      if (this.changes?.changed()) changed = true;
      const since = Date.now() - lastPass;
      if (!(changed && since >= MIN_CHANGE_PASS_MS) && since < fullEvery) return;
      changed = false;
      lastPass = Date.now();
      void this.sync().catch((err: Error) => {
        log.warn({ err: err.message }, 'backend pass failed; attachments and entries stay as they are until the next pass');
      });
    }, Math.min(CHANGE_CHECK_MS, fullEvery));
    this.timer.unref();
  }

  /** Replaces the desired backends and applies them; resolves with what the pass did (refusals included). */
  setBackends(backends: readonly PodBackend[]): Promise<SyncResult> {
    this.backends = [...backends];
    return this.sync();
  }

  /** The desired backends that are not programmed, with why (as of the last pass). */
  refused(): Refusal[] {
    return this.lastRefused;
  }

  /** backend_svcs and backend_node_svcs entries held (draining ones included), the pod veths and NICs carrying the programs, as of the last pass. */
  counts(): { entries: number; draining: number; veths: number; nodeEntries: number; nodeDraining: number; nics: number } {
    return {
      entries: this.table.entries().length, draining: this.table.draining().length, veths: this.lastVeths,
      nodeEntries: this.nodeTable.entries().length, nodeDraining: this.nodeTable.draining().length, nics: this.lastNics,
    };
  }

  /** The maps, for tests and metrics. */
  get maps(): BackendObject['loaded']['maps'] {
    return this.object.loaded.maps;
  }

  /** One pass: read the veths, plan, attach where entries need it, write the diff. Passes run one at a time. */
  sync(): Promise<SyncResult> {
    const run = this.queue.then(() => this.pass());
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async pass(): Promise<SyncResult> {
    if (this.closed) throw new Error('the backend agent is stopped');
    const [pods, local] = await Promise.all([readPodInterfaces(), readLocalAddresses()]);
    const plan = planServices(this.backends, pods);
    // Veths of the planned entries and of those still held (draining): a draining flow's reply still needs its rewrite.
    const wanted = new Map<string, PodInterface>();
    for (const e of plan.entries.values()) wanted.set(e.ifname, pods.of(e.key.tunnelDst)!);
    for (const e of this.table.entries()) {
      const iface = pods.of(e.key.tunnelDst);
      if (iface) wanted.set(iface.ifname, iface);
    }
    // Programs on first, entries after: a translated packet's reply then always finds its rewrite.
    const links = this.links.sync([...wanted.values()]);
    this.lastVeths = wanted.size;
    const table = this.table.apply(plan.entries);
    // Node addressing, on top of the pods' own entries: the slots name pods whose entries are now written.
    const nodePlan = planNodeServices(this.backends, pods, local, new Set(plan.refused.map((r) => r.backend)));
    const nodeTable = this.nodeTable.apply(nodePlan.entries);
    const nics = this.nicLinks.sync(this.wantedNics(local));
    const refused = [...plan.refused, ...nodePlan.refused];
    this.report(links, table, refused);
    this.reportNode(nodeTable, nics);
    return { links, table, nodeTable, nics, refused };
  }

  /** The NICs the from-NIC program must be on: none while no node entry is held; else the given ones, or those carrying the entries' node addresses. */
  private wantedNics(local: LocalAddresses): LinkTarget[] {
    const held = this.nodeTable.entries();
    this.lastNics = 0;
    if (!held.length) return [];
    const wanted = new Map<string, LinkTarget>();
    if (this.opts.nics) {
      for (const ifname of this.opts.nics) {
        const nic = local.deviceNamed(ifname);
        if (nic) wanted.set(ifname, nic);
        else log.warn({ ifname }, 'NIC given for Node addressing not found; retrying at the next pass');
      }
    } else {
      for (const e of held) {
        const nic = local.deviceOf(e.key.tunnelDst);
        if (nic) wanted.set(nic.ifname, nic);
      }
    }
    this.lastNics = wanted.size;
    return [...wanted.values()];
  }

  private reportNode(table: TableChange, nics: NicChange): void {
    for (const f of nics.failed) {
      log.error({ ifname: f.ifname, err: f.err }, `Node addressing program not ${f.action === 'attach' ? 'attached to' : 'detached from'} the NIC; retrying at the next pass`);
    }
    for (const f of table.failed) {
      log.error({ vip: f.entry.key.vip.text, port: f.entry.key.vipPort, nodeAddress: f.entry.key.tunnelDst.text, err: f.err },
        'Node addressing entry not written (is backend_node_svcs full?); retrying at the next pass');
    }
    if (table.added || table.changed || table.drainStarted || table.removed) {
      const { added, changed, drainStarted, removed } = table;
      log.info({ added, changed, drainStarted, removed }, 'Node addressing entries updated');
    }
  }

  private report(links: LinkChange, table: TableChange, refused: Refusal[]): void {
    for (const f of links.failed) {
      log.error({ ifname: f.ifname, err: f.err }, `backend programs not ${f.action === 'attach' ? 'attached to' : 'detached from'} the pod veth; retrying at the next pass`);
    }
    for (const f of table.failed) {
      log.error({ vip: f.entry.key.vip.text, port: f.entry.key.vipPort, tunnelDst: f.entry.key.tunnelDst.text, err: f.err },
        'backend service entry not written (is backend_svcs full?); retrying at the next pass');
    }
    if (table.added || table.changed || table.drainStarted || table.removed) {
      const { added, changed, drainStarted, removed } = table;
      log.info({ added, changed, drainStarted, removed }, 'backend services updated');
    }
    const now = new Set<string>();
    for (const r of refused) {
      const id = `${describeBackend(r.backend)}: ${r.reason}`;
      now.add(id);
      if (!this.loggedRefusals.has(id)) log.warn({ backend: describeBackend(r.backend), reason: r.reason }, 'backend not programmed');
    }
    this.loggedRefusals = now;
    this.lastRefused = refused;
  }

  /** Stops following pods; programs, links, maps and pins stay, for the next agent to adopt. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.changes?.close();
    this.changes = null;
    await this.queue;
    this.closed = true;
    this.object.loaded.object.close();
  }

  /** stop(), then detaches from every pod veth and removes every pin: nothing of the backend mode is left. */
  async remove(): Promise<void> {
    await this.stop();
    removeBackend(this.opts.pinDir);
  }
}

/** Detaches every pinned link (pod veths and NICs) and removes the pin directory (for an agent not running, too); returns the devices detached. */
export function removeBackend(pinDir: string): string[] {
  const detached = [...detachAllNics(pinDir), ...detachAllPinned(pinDir)];
  removePinDir(pinDir); // the maps' and programs' pins

  log.info({ pinDir, detached }, 'backend mode removed: links detached, pins removed');
  return detached;
}
