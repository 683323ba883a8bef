/**
 * The lab router's BIRD: one session per balancer node and family, VIP routes
 * learnt from them merged into ECMP routes in the router's kernel table
 * (`merge paths`), nothing announced back. Timers are short so a node whose
 * BIRD restarts is peered again within seconds, not BIRD's minutes.
 *
 * Asked to (RouterBgpOptions), it runs BFD with the nodes, as a top-of-rack
 * router would, and offers a shorter hold time than BIRD's 240 s.
 */
import type { BfdTimers } from '../../src/agent/announce/bgp-settings.js';

export const ROUTER_ASN = 64500;
export const BALANCER_ASN = 64512;
/** The router's bfd protocol (`show bfd sessions` lists its sessions under this name). */
export const ROUTER_BFD_PROTOCOL = 'router_bfd';
/** The VIP ranges the router accepts from the balancers (and nothing else). */
const VIP_RANGES = { v4: '198.19.0.0/16{32,32}', v6: '2001:db8:19::/48{128,128}' };

export interface RouterPeer {
  name: string;
  v4: string;
  v6: string;
}

export interface RouterBgpOptions {
  /**
   * BFD on every session, with the router's timers. A session comes up only
   * with a node whose agent runs BFD too; with the others, BGP goes on alone
   * (BIRD ends a BGP session only when its BFD session goes from up to down).
   */
  bfd?: BfdTimers;
  /** The hold time the router offers, in seconds (a session takes the smaller of its two ends' offers); default BIRD's 240. */
  holdSeconds?: number;
}

export function routerBirdConfig(routerId: string, peers: RouterPeer[], opts: RouterBgpOptions = {}): string {
  const session = (name: string, address: string, family: 'ipv4' | 'ipv6') => [
    `protocol bgp ${name} {`,
    `  local as ${ROUTER_ASN};`,
    `  neighbor ${address} as ${BALANCER_ASN};`,
    '  connect retry time 2;',
    '  error wait time 1, 4;',
    ...(opts.holdSeconds ? [`  hold time ${opts.holdSeconds};`] : []),
    ...(opts.bfd ? ['  bfd on;'] : []),
    `  ${family} { import filter vips_${family}; export none; };`,
    '}',
  ].join('\n');
  const bfd = opts.bfd ? [`protocol bfd ${ROUTER_BFD_PROTOCOL} { interface "*" { interval ${opts.bfd.intervalMs} ms; multiplier ${opts.bfd.multiplier}; }; }`] : [];
  return [
    `router id ${routerId};`,
    'log stderr all;',
    'protocol device { scan time 1; }',
    // learn off: only our own routes; the static VIP routes a test may add (routeVia) are left alone.
    'protocol kernel { ipv4 { import none; export all; }; merge paths on; }',
    'protocol kernel { ipv6 { import none; export all; }; merge paths on; }',
    ...bfd,
    `filter vips_ipv4 { if net ~ [ ${VIP_RANGES.v4} ] then accept; reject; }`,
    `filter vips_ipv6 { if net ~ [ ${VIP_RANGES.v6} ] then accept; reject; }`,
    ...peers.flatMap((p) => [session(`${p.name}_v4`, p.v4, 'ipv4'), session(`${p.name}_v6`, p.v6, 'ipv6')]),
    '',
  ].join('\n');
}
