/** The agent's BGP metrics, from the announcer's last reading of BIRD (bounded by the peers configured). */
import { Gauge, type Registry } from 'prom-client';
import type { AnnouncerState } from './announcer.js';

export function registerBgpMetrics(registry: Registry, state: () => AnnouncerState): void {
  const sessions = () => state().sessions.map((s) => ({ peer: s.neighbor ?? s.protocol, s }));
  new Gauge({
    name: 'xdplb_bgp_session_up',
    help: 'Whether the BGP session with the peer is Established (1) or not (0), as BIRD reports it.',
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { peer, s } of sessions()) this.set({ peer }, s.established ? 1 : 0);
    },
  });
  new Gauge({
    name: 'xdplb_bfd_session_up',
    help: 'With spec.bgp.bfd: whether the BFD session with the peer is Up (1) or not (0), as BIRD reports it; a peer that runs no BFD stays 0.',
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      if (!state().bfd) return;
      for (const { peer, s } of sessions()) this.set({ peer }, s.bfdState === 'Up' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'xdplb_bgp_announced_prefixes',
    help: 'VIP prefixes (/32, /128) BIRD has announced to the peer (its exported routes).',
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { peer, s } of sessions()) this.set({ peer }, s.exportedRoutes);
    },
  });
  new Gauge({
    name: 'xdplb_bgp_vips_announced',
    help: 'VIP addresses this node asks BIRD to announce: those it serves, or 0 while withdrawn.',
    registers: [registry],
    collect() {
      this.set(state().announced.length);
    },
  });
  new Gauge({
    name: 'xdplb_bgp_withdrawn',
    help: 'Whether the node has withdrawn its VIP routes because it is unhealthy or stopping (1), with the reason in the log.',
    registers: [registry],
    collect() {
      this.set(state().withdrawnBecause === null ? 0 : 1);
    },
  });
}
