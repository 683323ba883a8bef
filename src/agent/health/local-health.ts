/**
 * Standalone mode (no API): the agent probes every real of its file's VIPs
 * itself and applies the result to its own maps, a real judged unhealthy
 * programmed at weight 0 (draining: its established flows continue). Sits
 * between the file source and the agent as the Programmer the source drives.
 * Two standalone agents each judge for themselves, so their rings can differ
 * while they disagree about a real.
 */
import { canonicalIp } from '../../lib/ip.js';
import type { VipSpec } from '../dataplane/desired-state.js';
import type { StandaloneVip } from '../sources/standalone-config.js';
import type { Programmer } from '../sources/source.js';
import { healthTargets } from './health-targets.js';
import type { Prober } from './prober.js';

const pairKey = (vip: string, real: string) => `${canonicalIp(vip)}|${canonicalIp(real)}`;

export class LocalHealth implements Programmer {
  private desired: VipSpec[] | null = null;
  /** "vip address|real" of the reals judged unhealthy. */
  private readonly unhealthy = new Set<string>();
  private addressOf = new Map<string, string>();

  constructor(private readonly agent: Programmer, private readonly prober: Prober) {}

  accept: Programmer['accept'] = (vips, groups) => this.agent.accept(vips, groups);

  /** The file's VIPs (at start and after each valid change): what to probe. */
  setFile(vips: readonly StandaloneVip[]): void {
    this.addressOf = new Map(vips.map((v) => [v.name, v.address]));
    const { targets } = healthTargets(vips.map((v) => ({
      name: v.name, address: v.address, ports: v.ports, healthCheck: v.healthCheck,
      backends: v.reals.filter((r) => r.weight > 0).map((r) => ({ ip: r.address })),
    })), () => true);
    this.prober.setTargets(targets);
    const probed = new Set(targets.map((t) => pairKey(t.vip, t.real)));
    for (const k of this.unhealthy) if (!probed.has(k)) this.unhealthy.delete(k);
  }

  /** A real changed state: program the desired VIPs again with its new weight. */
  changed(vipName: string, real: string, healthy: boolean): void {
    const address = this.addressOf.get(vipName);
    if (address === undefined) return;
    const k = pairKey(address, real);
    if (healthy) this.unhealthy.delete(k);
    else this.unhealthy.add(k);
    if (this.desired) void this.setVips(this.desired).catch(() => undefined); // refused: the agent logs it
  }

  /** The desired VIPs with every unhealthy real at weight 0. */
  overlay(vips: VipSpec[]): VipSpec[] {
    if (!this.unhealthy.size) return vips;
    return vips.map((v) => ({
      ...v,
      reals: v.reals.map((r) => (this.unhealthy.has(pairKey(v.address, r.address)) ? { ...r, weight: 0 } : r)),
    }));
  }

  close(): void {
    this.prober.close();
  }

  setVips(vips: VipSpec[]): Promise<void> {
    this.desired = vips;
    return this.agent.setVips(this.overlay(vips));
  }
}
