/**
 * Keeps the balancer's maps equal to a desired state, writing only what
 * differs. Write order guarantees no packet sees a half-programmed VIP:
 * reals before the ring, the ring before the VIP entry; the reverse on removal.
 */
import { maglevRing } from '../../lib/maglev.js';
import { memoByObject } from '../../lib/memo-by-object.js';
import { componentLog } from '../../lib/log.js';
import type { CtlConfig } from '../../bpf/structs.js';
import { IPPROTO_TCP, NO_REAL_ID, RING_SIZE, VIP_ADDR_F_ICMP_ECHO, VIP_F_NO_ICMP_ECHO } from '../../bpf/consts.js';
import {
  BALANCER_MAPS,
  type BalancerHandles,
  balancerHandles,
  FIRST_REAL_ID,
  type RawMapSet,
  usableRealIds,
} from '../../bpf/maps.js';
import { parseIp, type IpAddress } from '../../lib/ip.js';
import {
  type Acceptance,
  type DesiredState,
  InvalidStateError,
  type Capacity,
  type NormalizedVip,
  normalize,
  peakOverCapacity,
  quicServersOf,
  validate,
  vipId,
} from './desired-state.js';
import { acceptVips, type Installed } from './acceptance.js';
import { IdAllocator } from './id-allocator.js';

/** ctl is an array of one element. */
const CTL_SLOT = 0;

const log = componentLog('dataplane');

/** A VIP address: how many VIPs it has, how many of those turn echo answers off, and the vip_addrs value written. */
interface VipAddrState {
  vips: number;
  noEcho: number;
  written: number | null;
}

/** Echo requests are answered unless a VIP of the address turns it off: turning it off is the deliberate choice. */
const vipAddrFlags = (a: VipAddrState): number => (a.noEcho === 0 ? VIP_ADDR_F_ICMP_ECHO : 0);

/** A quic_servers entry a desired state asks for: in this VIP, this server id names the real of this address. */
interface WantedQuicEntry {
  vip: string;
  serverId: number;
  address: string;
}
/** The same as written: under the VIP's number, the real's id. */
interface QuicEntry extends WantedQuicEntry {
  vipNum: number;
  realId: number;
}
const quicEntryKey = (e: Pick<WantedQuicEntry, 'vip' | 'serverId'>) => `${e.vip}#${e.serverId}`;

interface InstalledReal {
  id: number;
  address: IpAddress;
  /** VIPs that list this real (in the ring or draining). */
  refs: number;
}

interface InstalledVip {
  spec: NormalizedVip;
  num: number;
  /**
   * What the ring slice was computed from (reals, weights); null when unknown
   * (adopted, or a write failed half way): the next apply diffs it against
   * the map. Rings themselves are not kept: 256 KiB each.
   */
  ringKey: string | null;
  realIds: Set<number>;
  /** Flags in the VIP's map entry. */
  flags: number;
}

export interface ApplyResult {
  vipsAdded: number;
  vipsRemoved: number;
  vipsChanged: number;
  realsAdded: number;
  realsRemoved: number;
  ringSlotsWritten: number;
  /** Map element writes in this apply (0: the maps already matched). */
  writes: number;
}

export interface AdoptResult {
  vips: number;
  reals: number;
  /** VIPs whose ring named a real that is not in the reals map: those slots are rewritten on the next apply. */
  dirtyRings: number;
}

/** The inputs of a VIP's ring: equal keys give equal rings. By normalized VIP: the validated-VIP cache hands an unchanged VIP the same object. */
const ringKeyOf = memoByObject(ringKeyOfUncached);

function ringKeyOfUncached(spec: NormalizedVip): string {
  return spec.reals
    .map((r) => `${r.address.text}=${r.weight}`)
    .sort()
    .join(',');
}

/** An installed VIP as readers of the maps see it (metrics, tracing). */
export interface InstalledVipRef {
  id: string;
  /** Its vip_num: ring and stats slot. */
  num: number;
  address: string;
  port: number;
  proto: number;
}

export class Dataplane {
  private readonly vips = new Map<string, InstalledVip>();
  private readonly reals = new Map<string, InstalledReal>();
  /**
   * Whether a real may sit in the maps with no reference: after adopt() (one
   * no adopted VIP names), or after a release whose map write failed. The
   * next complete apply releases them.
   */
  private mayHoldUnclaimed = false;
  /** The same reals by id: the ring and the VIPs name reals by id. */
  private readonly realsById = new Map<number, InstalledReal>();
  private readonly vipNums: IdAllocator;
  private readonly realIds: IdAllocator;
  /** Per VIP address, by text: what its vip_addrs entry is made of. */
  private readonly vipAddrs = new Map<string, VipAddrState>();
  /** What quic_servers holds, by quicEntryKey: the VIP, server id and real of each entry. */
  private readonly quicServers = new Map<string, QuicEntry>();
  /** What ctl[0] holds, when known. */
  private ctl: CtlConfig | null = null;
  /** The maps with their codecs. */
  private readonly maps: BalancerHandles;
  /** Scratch rings, reused: each is 256 KiB and a big apply computes hundreds. */
  private readonly owners = new Int32Array(RING_SIZE);
  private readonly ring = new Uint32Array(RING_SIZE);
  /** What the loaded maps hold (capacities are a load-time choice). */
  readonly capacity: Capacity;

  /** Kernel maps (BalancerMapSet) or in-memory ones (memoryMaps(BALANCER_MAPS)). */
  constructor(private readonly raw: RawMapSet<typeof BALANCER_MAPS>) {
    this.maps = balancerHandles(raw);
    this.capacity = { vips: raw.vips.maxEntries, reals: usableRealIds(raw.reals.maxEntries) };
    this.vipNums = new IdAllocator(0, this.capacity.vips, 'VIP');
    this.realIds = new IdAllocator(FIRST_REAL_ID, raw.reals.maxEntries, 'real');
  }

  /** Element writes across all maps so far. */
  totalWrites(): number {
    return Object.values(this.raw).reduce((n, m) => n + m.writes, 0);
  }

  vipNum(id: string): number | undefined {
    return this.vips.get(id)?.num;
  }

  realId(address: string): number | undefined {
    return this.reals.get(parseIp(address).text)?.id;
  }

  installedVips(): string[] {
    return [...this.vips.keys()];
  }

  /** VIP ids with their stats slot. */
  installedVipNums(): InstalledVipRef[] {
    return [...this.vips.values()].map((v) => ({
      id: v.spec.id, num: v.num, address: v.spec.address.text, port: v.spec.port, proto: v.spec.proto,
    }));
  }

  installedReals(): { address: string; id: number }[] {
    return [...this.reals.values()].map((r) => ({ address: r.address.text, id: r.id }));
  }

  /**
   * Takes over what pinned maps already hold (an agent restart), so that the
   * next apply writes only real differences and traffic never sees a gap.
   * Call once, on a fresh Dataplane, before the first apply.
   */
  adopt(): AdoptResult {
    if (this.vips.size || this.reals.size) throw new Error('adopt() must run before anything is applied');
    this.mayHoldUnclaimed = true;
    const m = this.maps;
    this.ctl = m.ctl.get(CTL_SLOT);

    const slots = m.reals.range(0, this.raw.reals.maxEntries);
    const byId = this.realsById;
    for (let id = FIRST_REAL_ID; id < slots.length; id++) {
      const address = slots[id];
      if (!address) continue;
      const real: InstalledReal = { id, address, refs: 0 };
      this.reals.set(address.text, real);
      byId.set(id, real);
      this.realIds.claim(id);
    }

    let dirtyRings = 0;
    for (const k of m.vips.keys()) {
      const meta = m.vips.get(k);
      if (!meta) continue; // removed under us: nothing to adopt
      const { address } = k;
      const protocol = k.proto === IPPROTO_TCP ? 'TCP' : 'UDP';
      const ring = m.ring.read(meta.vipNum);
      const realIds = new Set<number>();
      let dirty = false;
      for (const id of ring) {
        if (id === NO_REAL_ID) continue;
        if (!byId.has(id)) dirty = true;
        else realIds.add(id);
      }
      for (const id of realIds) byId.get(id)!.refs++;
      if (dirty) dirtyRings++;
      const spec: NormalizedVip = {
        id: vipId(address, k.port, protocol),
        address,
        port: k.port,
        proto: k.proto,
        flags: meta.flags,
        reals: [...realIds].map((id) => ({ address: byId.get(id)!.address, weight: 1 })),
      };
      this.vips.set(spec.id, { spec, num: meta.vipNum, ringKey: null, realIds, flags: meta.flags });
      this.vipNums.claim(meta.vipNum);
      this.tallyVipAddr(address.text, meta.flags, 1);
    }
    // vip_addrs must agree with the VIPs: repair any difference now.
    for (const address of m.vipAddrs.keys()) {
      if (!this.vipAddrs.has(address.text)) m.vipAddrs.delete(address);
    }
    for (const [text, a] of this.vipAddrs) {
      const address = parseIp(text);
      a.written = m.vipAddrs.get(address) ?? null;
      this.writeVipAddr(address, a);
    }
    const vipOfNum = new Map([...this.vips.values()].map((v) => [v.num, v.spec.id]));
    for (const k of m.quicServers.keys()) {
      const realId = m.quicServers.get(k);
      const real = realId === null ? undefined : byId.get(realId);
      const vip = vipOfNum.get(k.vipNum);
      if (real && vip) {
        const entry = { vip, serverId: k.serverId, address: real.address.text, vipNum: k.vipNum, realId: real.id };
        this.quicServers.set(quicEntryKey(entry), entry);
      } else {
        m.quicServers.delete(k); // names no installed VIP or real: never trusted
      }
    }
    const result = { vips: this.vips.size, reals: this.reals.size, dirtyRings };
    log.info(result, 'adopted dataplane state from the maps');
    return result;
  }

  /**
   * Which VIPs of a desired state apply() would program together, and why
   * the others not, without changing anything. groups[i] names the group of
   * vips[i] (the ports of one LoadBalancerVip): a group is taken or refused
   * whole; capacity is filled in input order. One pass: O(n log n).
   */
  accept(desired: DesiredState, groups?: readonly number[]): Acceptance {
    const installed: Installed = {
      vip: (id) => this.vips.get(id)?.spec,
      realCount: this.reals.size,
      hasReal: (address) => this.reals.has(address),
    };
    return acceptVips(validate(desired), this.capacity, installed, groups);
  }

  apply(desired: DesiredState): ApplyResult {
    const state = normalize(desired, this.capacity);
    const before = this.totalWrites();
    const result: ApplyResult = {
      vipsAdded: 0,
      vipsRemoved: 0,
      vipsChanged: 0,
      realsAdded: 0,
      realsRemoved: 0,
      ringSlotsWritten: 0,
      writes: 0,
    };
    const wanted = new Map(state.vips.map((v) => [v.id, v]));
    this.checkPeakCapacity(wanted);

    this.writeCtl(state.encap);
    const quic = new Map(state.vips.flatMap((v) => quicServersOf(v).map((s) => {
      const wanted: WantedQuicEntry = { vip: v.id, ...s };
      return [quicEntryKey(wanted), wanted] as const;
    })));
    this.unwriteQuicServers(quic);
    for (const [id, vip] of [...this.vips]) {
      if (!wanted.has(id)) {
        this.removeVip(vip, result);
        result.vipsRemoved++;
      }
    }
    for (const spec of state.vips) {
      const installed = this.vips.get(spec.id);
      if (!installed) {
        this.addVip(spec, result);
        result.vipsAdded++;
      } else if (this.updateVip(installed, spec, result)) {
        result.vipsChanged++;
      }
    }
    this.writeQuicServers(quic);
    // Reals no VIP lists any more (left over from an adopted state, or a failed release) go last. Nothing
    // else leaves a real unclaimed (releaseReal frees one at its last reference), so otherwise this O(all
    // reals) pass is skipped.
    if (this.mayHoldUnclaimed) {
      for (const real of [...this.reals.values()]) {
        if (real.refs === 0) {
          real.refs = 1;
          this.releaseReal(real.id, result);
        }
      }
      this.mayHoldUnclaimed = false;
    }
    result.writes = this.totalWrites() - before;
    if (result.writes) log.debug({ ...result }, 'dataplane applied');
    return result;
  }

  /**
   * Reals of a changed VIP are added before its old ones are released, so for
   * a moment both are installed: refuse up front if that cannot fit.
   */
  private checkPeakCapacity(wanted: Map<string, NormalizedVip>): void {
    // Cheap bound first: what is installed plus every wanted real not yet installed. An unchanged VIP (its
    // installed spec is the very object) has all its reals installed: skipped, so a sync costs O(changed reals).
    let bound = this.reals.size;
    for (const vip of wanted.values()) {
      if (this.vips.get(vip.id)?.spec === vip) continue;
      for (const r of vip.reals) if (!this.reals.has(r.address.text)) bound++;
    }
    if (bound <= this.capacity.reals) return;
    const peak = new Set<string>();
    for (const [id, vip] of this.vips) {
      if (wanted.has(id)) vip.spec.reals.forEach((r) => peak.add(r.address.text));
    }
    for (const vip of wanted.values()) vip.reals.forEach((r) => peak.add(r.address.text));
    if (peak.size > this.capacity.reals) throw new InvalidStateError([peakOverCapacity(peak.size, this.capacity)]);
  }

  private writeCtl(encap: DesiredState['encap']): void {
    const cfg: CtlConfig = {
      nextHopMac: encap.nextHopMac,
      srcMac: encap.srcMac,
      srcV4: encap.srcV4 === undefined ? undefined : parseIp(encap.srcV4),
      srcV6: encap.srcV6 === undefined ? undefined : parseIp(encap.srcV6),
      maxPktSize: encap.maxPktSize,
    };
    if (this.ctl && this.maps.ctl.same(this.ctl, cfg)) return;
    this.maps.ctl.set(CTL_SLOT, cfg);
    this.ctl = cfg;
  }

  /**
   * Before any VIP or real is released: entries not wanted as they are go
   * (a removed VIP's number and a released real's id may be reused). A
   * wanted entry names a real its VIP lists, which this apply cannot release.
   */
  private unwriteQuicServers(wanted: Map<string, WantedQuicEntry>): void {
    for (const [key, e] of [...this.quicServers]) {
      if (wanted.get(key)?.address === e.address) continue;
      this.maps.quicServers.delete({ vipNum: e.vipNum, serverId: e.serverId });
      this.quicServers.delete(key);
    }
  }

  /** Once VIPs and reals are in: each wanted entry names its real's id under its VIP's number. */
  private writeQuicServers(wanted: Map<string, WantedQuicEntry>): void {
    let full = 0;
    for (const [key, w] of wanted) {
      const vipNum = this.vips.get(w.vip)!.num;
      const realId = this.reals.get(w.address)!.id;
      const had = this.quicServers.get(key);
      if (had && had.vipNum === vipNum && had.realId === realId) continue;
      if (!had && this.quicServers.size >= this.raw.quicServers.maxEntries) {
        full++;
        continue;
      }
      this.maps.quicServers.set({ vipNum, serverId: w.serverId }, realId);
      this.quicServers.set(key, { ...w, vipNum, realId });
    }
    if (full) log.warn({ left: full, capacity: this.raw.quicServers.maxEntries }, 'quic_servers is full: QUIC server ids left out follow the ring');
  }

  private acquireReal(address: IpAddress, result: ApplyResult): number {
    const existing = this.reals.get(address.text);
    if (existing) {
      existing.refs++;
      return existing.id;
    }
    const id = this.realIds.allocate();
    try {
      // Fresh counters: Prometheus must not see another real's history.
      this.maps.realStats.clear(id);
      this.maps.reals.set(id, address);
    } catch (err) {
      this.realIds.free(id);
      throw err;
    }
    const real: InstalledReal = { id, address, refs: 1 };
    this.reals.set(address.text, real);
    this.realsById.set(id, real);
    result.realsAdded++;
    return id;
  }

  private releaseReal(id: number, result: ApplyResult): void {
    const real = this.realsById.get(id);
    if (!real || --real.refs > 0) return;
    try {
      this.maps.reals.set(id, null);
    } catch (err) {
      this.mayHoldUnclaimed = true; // unreferenced but in the maps: the next apply's sweep frees it
      throw err;
    }
    this.reals.delete(real.address.text);
    this.realsById.delete(id);
    this.realIds.free(id);
    result.realsRemoved++;
  }

  /** The VIP's ring of real ids, in a scratch buffer valid until the next call. */
  private ringFor(spec: NormalizedVip): Uint32Array {
    const owners = maglevRing(
      spec.reals.map((r) => ({ key: r.address.text, weight: r.weight, value: r.address.text })),
      RING_SIZE,
      this.owners,
    );
    const sortedIds = [...spec.reals]
      .sort((a, b) => (a.address.text < b.address.text ? -1 : a.address.text > b.address.text ? 1 : 0))
      .map((r) => this.reals.get(r.address.text)!.id);
    const ring = this.ring;
    for (let i = 0; i < RING_SIZE; i++) {
      const owner = owners[i]!;
      ring[i] = owner < 0 ? NO_REAL_ID : sortedIds[owner]!;
    }
    return ring;
  }

  private addVip(spec: NormalizedVip, result: ApplyResult): void {
    const realIds = new Set<number>();
    const num = this.vipNums.allocate();
    const installed: InstalledVip = { spec, num, ringKey: null, realIds, flags: spec.flags };
    try {
      for (const r of spec.reals) realIds.add(this.acquireReal(r.address, result));
      const ring = this.ringFor(spec);
      this.maps.vipStats.clear(num);
      result.ringSlotsWritten += this.maps.ring.write(num, ring);
      installed.ringKey = ringKeyOf(spec);
      this.countVipAddr(spec.address, spec.flags, 1);
      this.maps.vips.set(spec, { flags: spec.flags, vipNum: num });
      this.vips.set(spec.id, installed);
    } catch (err) {
      // Nothing points at this VIP yet: give back what it took.
      for (const id of realIds) this.releaseReal(id, result);
      this.vipNums.free(num);
      throw err;
    }
  }

  /** Counts a VIP with these flags in (+1) or out (-1) of its address; the address's state, or null once it has no VIP. */
  private tallyVipAddr(text: string, flags: number, delta: 1 | -1): VipAddrState | null {
    const a = this.vipAddrs.get(text) ?? { vips: 0, noEcho: 0, written: null };
    a.vips += delta;
    if (flags & VIP_F_NO_ICMP_ECHO) a.noEcho += delta;
    if (a.vips <= 0) {
      this.vipAddrs.delete(text);
      return null;
    }
    this.vipAddrs.set(text, a);
    return a;
  }

  /** tallyVipAddr, then the address's vip_addrs entry written if it changed, or deleted with its last VIP. */
  private countVipAddr(address: IpAddress, flags: number, delta: 1 | -1): void {
    const a = this.tallyVipAddr(address.text, flags, delta);
    if (a) this.writeVipAddr(address, a);
    else this.maps.vipAddrs.delete(address);
  }

  private writeVipAddr(address: IpAddress, a: VipAddrState): void {
    const flags = vipAddrFlags(a);
    if (flags === a.written) return;
    this.maps.vipAddrs.set(address, flags);
    a.written = flags;
  }

  private removeVip(vip: InstalledVip, result: ApplyResult): void {
    this.maps.vips.delete(vip.spec);
    this.vips.delete(vip.spec.id);
    this.countVipAddr(vip.spec.address, vip.spec.flags, -1);
    // Every reference is dropped even if a write fails: the VIP is gone, and nothing else would drop them.
    let failed: unknown;
    for (const id of vip.realIds) {
      try {
        this.releaseReal(id, result);
      } catch (err) {
        failed ??= err;
      }
    }
    // The ring slice is left as it is: the next VIP given this number gets a
    // full ring written before its VIP entry exists.
    this.vipNums.free(vip.num);
    if (failed) throw failed;
  }

  /** Returns whether anything was written. */
  private updateVip(vip: InstalledVip, spec: NormalizedVip, result: ApplyResult): boolean {
    const ringKey = ringKeyOf(spec);
    if (ringKey === vip.ringKey && spec.flags === vip.flags) {
      // The common case: untouched. Holding the spec of this sync lets the next one see it unchanged by identity (accept()).
      vip.spec = spec;
      return false;
    }
    const writesBefore = this.totalWrites();
    const newIds = new Set<number>();
    // Reals are in the maps before the ring names them. Each is the VIP's as soon as acquired: if a later
    // one fails, the next apply releases those its spec does not list.
    for (const r of spec.reals) {
      const known = this.reals.get(r.address.text);
      const id = known && vip.realIds.has(known.id) ? known.id : this.acquireReal(r.address, result);
      newIds.add(id);
      vip.realIds.add(id);
    }
    vip.spec = spec;
    if (ringKey !== vip.ringKey) {
      vip.ringKey = null;
      result.ringSlotsWritten += this.maps.ring.write(vip.num, this.ringFor(spec));
      vip.ringKey = ringKey;
    }
    if (spec.flags !== vip.flags) {
      // Counted in with the new flags before out with the old: the address never looks unused.
      this.countVipAddr(spec.address, spec.flags, 1);
      this.countVipAddr(spec.address, vip.flags, -1);
      this.maps.vips.set(spec, { flags: spec.flags, vipNum: vip.num });
      vip.flags = spec.flags;
    }
    // The ring no longer names removed reals: now they may go.
    for (const id of [...vip.realIds]) {
      if (!newIds.has(id)) {
        vip.realIds.delete(id);
        this.releaseReal(id, result);
      }
    }
    return this.totalWrites() > writesBefore;
  }

}
