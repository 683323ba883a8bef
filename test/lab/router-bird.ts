/**
 * The lab router's BIRD: one session per balancer node and family, VIP routes
 * learnt from them merged into ECMP routes in the router's kernel table
 * (`merge paths`), nothing announced back. Timers are short so a node whose
 * BIRD restarts is peered again within seconds, not BIRD's minutes.
 */
export const ROUTER_ASN = 64500;
export const BALANCER_ASN = 64512;
/** The VIP ranges the router accepts from the balancers (and nothing else). */
const VIP_RANGES = { v4: '198.19.0.0/16{32,32}', v6: '2001:db8:19::/48{128,128}' };

export interface RouterPeer {
  name: string;
  v4: string;
  v6: string;
}

export function routerBirdConfig(routerId: string, peers: RouterPeer[]): string {
  const session = (name: string, address: string, family: 'ipv4' | 'ipv6') => [
    `protocol bgp ${name} {`,
    `  local as ${ROUTER_ASN};`,
    `  neighbor ${address} as ${BALANCER_ASN};`,
    '  connect retry time 2;',
    '  error wait time 1, 4;',
    `  ${family} { import filter vips_${family}; export none; };`,
    '}',
  ].join('\n');
  return [
    `router id ${routerId};`,
    'log stderr all;',
    'protocol device { scan time 1; }',
    // learn off: only our own routes; the static VIP routes a test may add (routeVia) are left alone.
    'protocol kernel { ipv4 { import none; export all; }; merge paths on; }',
    'protocol kernel { ipv6 { import none; export all; }; merge paths on; }',
    `filter vips_ipv4 { if net ~ [ ${VIP_RANGES.v4} ] then accept; reject; }`,
    `filter vips_ipv6 { if net ~ [ ${VIP_RANGES.v6} ] then accept; reject; }`,
    ...peers.flatMap((p) => [session(`${p.name}_v4`, p.v4, 'ipv4'), session(`${p.name}_v6`, p.v6, 'ipv6')]),
    '',
  ].join('\n');
}
