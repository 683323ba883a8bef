/**
 * Simulated balancer agents for `npm run bench -- scale-agents`: in this one
 * process, one ClusterSource per node (the real agent's cluster code, its own
 * bound token, its own watch and status writes) driving a real Dataplane on
 * in-memory maps (no kernel). The parent asks, over IPC, when every agent has
 * programmed a given real of a given VIP with a given weight state.
 *
 * argv[2]: JSON { kubeconfigs: { [node]: file }, vips, reals }.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { Dataplane } from '../src/agent/dataplane/dataplane.js';
import type { VipSpec } from '../src/agent/dataplane/desired-state.js';
import { ClusterSource } from '../src/agent/sources/cluster-source.js';
import type { Programmer } from '../src/agent/sources/source.js';
import { BALANCER_MAPS, memoryMaps, realSlotsFor } from '../src/bpf/maps.js';
import { ENCAP } from '../test/support/fixtures.js';

interface HostArgs {
  kubeconfigs: Record<string, string>;
  vips: number;
  reals: number;
}
/** Asked by the parent: resolve once every agent has this real of this VIP weighted as said (absent counts as weight 0). */
export interface AwaitMessage {
  type: 'await';
  id: number;
  vip: string;
  real: string;
  weighted: boolean;
}
const POLL_MS = 5;
/** Slots for the VIPs and reals the run creates, and a few more. */
const SPARE = 8;

const args = JSON.parse(process.argv[2]!) as HostArgs;

/** One simulated agent: what it last programmed, per VIP (address:port/protocol) the weight of each real. */
class SimulatedAgent implements Programmer {
  readonly programmed = new Map<string, Map<string, number>>();
  /** The spec each entry of `programmed` came from: an unchanged VIP keeps its spec object, and its entry. */
  private readonly programmedFrom = new Map<string, VipSpec>();
  private readonly dataplane = new Dataplane(memoryMaps(BALANCER_MAPS, { vips: args.vips + SPARE, reals: realSlotsFor(args.reals + SPARE), connectionTable: 1024 }));
  readonly source: ClusterSource;

  constructor(readonly node: string, kubeconfig: string) {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    this.source = new ClusterSource(kc, { balancer: 'default', node });
  }

  accept: Programmer['accept'] = (vips, groups) => this.dataplane.accept({ encap: ENCAP, vips }, groups);

  setVips(vips: VipSpec[]): Promise<void> {
    this.dataplane.apply({ encap: ENCAP, vips });
    // Only what changed, as the dataplane does: rebuilding all of it would charge the agents O(all reals) per sync.
    const now = new Set<string>();
    for (const v of vips) {
      const key = `${v.address}:${v.port}/${v.protocol}`;
      now.add(key);
      if (this.programmedFrom.get(key) === v) continue;
      this.programmedFrom.set(key, v);
      this.programmed.set(key, new Map(v.reals.map((r) => [r.address, r.weight])));
    }
    for (const key of this.programmedFrom.keys()) {
      if (now.has(key)) continue;
      this.programmedFrom.delete(key);
      this.programmed.delete(key);
    }
    return Promise.resolve();
  }

  async run(): Promise<void> {
    await this.source.start();
    await this.setVips(await this.source.initial(this));
    await this.source.follow(this);
  }
}

const agents = Object.entries(args.kubeconfigs).map(([node, file]) => new SimulatedAgent(node, file));
global.gc?.();
const heapBefore = process.memoryUsage().heapUsed;
await Promise.all(agents.map((a) => a.run()));
process.send!({ type: 'started' });

process.on('message', (m: AwaitMessage | { type: 'memory' } | { type: 'stop' }) => {
  if (m.type === 'await') {
    const ok = () => agents.every((a) => ((a.programmed.get(m.vip)?.get(m.real) ?? 0) > 0) === m.weighted);
    const poll = () => (ok() ? process.send!({ type: 'done', id: m.id, at: Date.now() }) : setTimeout(poll, POLL_MS));
    poll();
  } else if (m.type === 'memory') {
    global.gc?.();
    const statusWrites = agents.reduce((n, a) => n + a.source.statusWrites, 0);
    const syncs = agents.reduce((n, a) => n + a.source.syncs, 0);
    process.send!({ type: 'memory', agents: agents.length, heapPerAgent: (process.memoryUsage().heapUsed - heapBefore) / agents.length, rss: process.memoryUsage().rss, statusWrites, syncs });
  } else {
    void Promise.all(agents.map((a) => a.source.stop())).then(() => process.exit(0));
  }
});
