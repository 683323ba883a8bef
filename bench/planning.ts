/**
 * The cluster agent's plan when its balancer has more VIPs than its maps hold:
 * planVips() with one accept() on the real maps. Before the restructure this
 * case re-checked the growing set once per VIP (quadratic).
 */
import type { LoadBalancerVip } from '../src/api/loadbalancervip.js';
import { Dataplane } from '../src/agent/dataplane/dataplane.js';
import { planVips, specsOf } from '../src/agent/sources/cluster-vips.js';
import { loadBalancer } from '../src/bpf/programs.js';
import { ENCAP } from '../test/support/fixtures.js';
import { median, timeMs } from './stats.js';

const VIP_CAPACITY = 512;
const BACKENDS = 10;
const ROUNDS = 5;

/** Backend k: a distinct pod address in 198.18.0.0/15. */
const backend = (k: number) => ({ ip: `198.18.${(k >> 8) & 255}.${k & 255}`, weight: 1, pod: `web-${k}` });

/** n LoadBalancerVips with two ports and 10 backends each, one minute apart (oldest first). */
function lbVips(n: number): LoadBalancerVip[] {
  return Array.from({ length: n }, (_, i): LoadBalancerVip => ({
    apiVersion: 'xdplb.dev/v1alpha1',
    kind: 'LoadBalancerVip',
    metadata: { name: `v${i}`, namespace: 'shop', generation: 1, creationTimestamp: new Date(Date.UTC(2026, 10, 1) + i * 60_000) },
    spec: {
      address: `198.19.${i >> 8}.${i & 255}`,
      ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }],
      backendSelector: { matchLabels: { app: 'web' } },
    },
    status: { backends: Array.from({ length: BACKENDS }, (_, b) => backend(i * BACKENDS + b)) },
  }));
}

export function planning(): string {
  const lb = loadBalancer({ capacity: { vips: VIP_CAPACITY, connectionTable: 65536 } });
  try {
    const dataplane = new Dataplane(lb.maps);
    const rows = [600, 1200, 5000].map((n) => {
      const vips = lbVips(n);
      let programmed = 0;
      const plan = () => {
        programmed = planVips('default', vips, (specs, groups) => dataplane.accept({ encap: ENCAP, vips: specs }, groups)).programmed.length;
      };
      const flatten = () => vips.flatMap(specsOf);
      plan(); // warm the validation cache, as a running agent has it
      const ms = median(Array.from({ length: ROUNDS }, () => timeMs(plan)));
      const floor = median(Array.from({ length: ROUNDS }, () => timeMs(flatten)));
      return `| ${n} | ${programmed} | ${ms.toFixed(1)} | ${floor.toFixed(1)} | ${(ms / floor).toFixed(1)}x |`;
    });
    return [
      `Agent plan over capacity (planVips with one Dataplane.accept on the real maps; ${VIP_CAPACITY} dataplane VIPs, LoadBalancerVips of 2 ports x ${BACKENDS} backends; median of ${ROUNDS}; floor: turning the VIPs into dataplane specs alone).`,
      '',
      '| LoadBalancerVips | programmed | plan ms | floor ms | vs floor |',
      '| ---: | ---: | ---: | ---: | ---: |',
      ...rows,
    ].join('\n');
  } finally {
    lb.object.close();
  }
}
