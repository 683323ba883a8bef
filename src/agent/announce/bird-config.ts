/**
 * BIRD 2's configuration for a balancer node, as a pure function of what to
 * announce. Reloading it (`configure`) must never drop a session, so what
 * changes with the VIPs (the static protocols' routes) is kept apart from
 * what defines a session (the bgp protocols, named after the peer's address):
 * BIRD restarts only protocols whose own configuration changed.
 *
 * Nothing goes to the kernel (no kernel protocol): the routes exist only to be
 * exported by BGP, and only routes of the VIP protocols are exported; nothing
 * is imported from the peers.
 *
 * BFD, when asked for, is one bfd protocol holding the timers for every
 * session, and `bfd on` in each bgp protocol: BIRD applies new timers to
 * running BFD sessions without touching BGP.
 */
import type { BgpAddressFamily } from '../../api/xdpbalancer.js';
import { canonicalIp } from '../../lib/ip.js';
import type { BfdTimers, Community } from './bgp-settings.js';

/** The static protocols holding the VIP routes, one per family (a BIRD channel carries one). */
export const VIP_PROTOCOLS: Record<BgpAddressFamily, string> = { IPv4: 'xdplb_vips4', IPv6: 'xdplb_vips6' };
/** Prefix of the bgp protocols' names; the rest is the peer's address. */
export const PEER_PROTOCOL_PREFIX = 'xdplb_peer_';
/** The bfd protocol serving every peer's session. */
export const BFD_PROTOCOL = 'xdplb_bfd';

export interface BirdPeer {
  address: string;
  asn: number;
  port?: number;
  /** The TCP MD5 password itself (read from its file by the caller). */
  password?: string;
  families: BgpAddressFamily[];
}

export interface BirdConfigInput {
  routerId: string;
  localAsn: number;
  peers: BirdPeer[];
  communities: Community[];
  /** VIP addresses to announce, each as a /32 or /128. */
  announce: string[];
  /** The next hop announced with IPv6 routes over an IPv4 session (BGP needs one of the route's family). */
  nextHopV6?: string;
  /** BFD on every session, with these timers; absent: none. */
  bfd?: BfdTimers;
}

/** A BIRD symbol for a peer's protocol: stable across reloads for the same address, so its session stays. */
export function peerProtocolName(address: string): string {
  return PEER_PROTOCOL_PREFIX + canonicalIp(address).replace(/[.:]/g, '_');
}

/** What BIRD cannot take inside a quoted string; the caller refuses such a password. */
export function passwordProblem(password: string): string | null {
  if (password.length === 0) return 'is empty';
  if (/["\\\n\r]/.test(password)) return 'contains a quote, a backslash or a line break, which the BIRD configuration cannot quote';
  return null;
}

const isV6 = (address: string) => address.includes(':');
const hostPrefix = (address: string) => (isV6(address) ? `${address}/128` : `${address}/32`);
const familyOfAddress = (address: string): BgpAddressFamily => (isV6(address) ? 'IPv6' : 'IPv4');
const channelOf = (family: BgpAddressFamily) => (family === 'IPv4' ? 'ipv4' : 'ipv6');

function exportFilter(communities: Community[]): string[] {
  const protos = Object.values(VIP_PROTOCOLS).map((p) => `proto != "${p}"`).join(' && ');
  const add = communities.map((c) => c.kind === 'standard'
    ? `  bgp_community.add((${c.parts.join(', ')}));`
    : `  bgp_large_community.add((${c.parts.join(', ')}));`);
  return [
    '# Only the VIP routes leave this node, with the configured communities.',
    'filter xdplb_export {',
    `  if ${protos} then reject;`,
    ...add,
    '  accept;',
    '}',
  ];
}

/** Every session's timers: the same on every interface (sessions are single-hop, on the node's own subnets). */
function bfdProtocol(bfd: BfdTimers): string[] {
  return [
    '# BFD for the BGP sessions: a peer that hears nothing for multiplier x interval drops this node\'s routes.',
    `protocol bfd ${BFD_PROTOCOL} {`,
    '  interface "*" {',
    `    interval ${bfd.intervalMs} ms;`,
    `    multiplier ${bfd.multiplier};`,
    '  };',
    '}',
    '',
  ];
}

function staticProtocol(family: BgpAddressFamily, addresses: string[]): string[] {
  // blackhole: a route needs a destination, and this one is never installed anywhere (no kernel protocol).
  const routes = addresses.map((a) => `  route ${hostPrefix(a)} blackhole;`);
  return [`protocol static ${VIP_PROTOCOLS[family]} {`, `  ${channelOf(family)};`, ...routes, '}'];
}

function channel(peer: BirdPeer, family: BgpAddressFamily, input: BirdConfigInput): string[] {
  const extra: string[] = [];
  const sessionFamily = familyOfAddress(peer.address);
  if (family === 'IPv4' && sessionFamily === 'IPv6') extra.push('    extended next hop on;   # RFC 8950: IPv4 routes, IPv6 next hop');
  if (family === 'IPv6' && sessionFamily === 'IPv4') {
    if (!input.nextHopV6) throw new Error(`peer ${peer.address} carries IPv6 routes over IPv4, which needs the node's IPv6 address as next hop: the node has none`);
    extra.push(`    next hop address ${input.nextHopV6};`);
  } else {
    extra.push('    next hop self;');
  }
  return [`  ${channelOf(family)} {`, '    import none;', '    export filter xdplb_export;', ...extra, '  };'];
}

function bgpProtocol(peer: BirdPeer, input: BirdConfigInput): string[] {
  const lines = [
    `protocol bgp ${peerProtocolName(peer.address)} {`,
    `  local as ${input.localAsn};`,
    `  neighbor ${canonicalIp(peer.address)}${peer.port ? ` port ${peer.port}` : ''} as ${peer.asn};`,
  ];
  if (peer.password !== undefined) {
    const problem = passwordProblem(peer.password);
    if (problem) throw new Error(`the password of peer ${peer.address} ${problem}`);
    lines.push(`  password "${peer.password}";`);
  }
  if (input.bfd) lines.push('  bfd on;   # a BFD session down ends this one (timers: protocol bfd)');
  for (const family of [...new Set(peer.families)].sort()) lines.push(...channel(peer, family, input));
  lines.push('}');
  return lines;
}

/** The whole configuration file. Throws when a peer cannot be configured as asked (the message says why). */
export function renderBirdConfig(input: BirdConfigInput): string {
  const unique = [...new Set(input.announce.map(canonicalIp))].sort();
  const lines = [
    '# Written by xdplb-agent from its BGP settings and the VIPs programmed on this node;',
    '# rewritten and reloaded (birdc configure) on every change: do not edit.',
    `router id ${input.routerId};`,
    'log stderr all;',
    '',
    '# Interfaces, so BGP can reach directly connected peers. Nothing is learnt or installed.',
    'protocol device {',
    '}',
    '',
    ...(input.bfd ? bfdProtocol(input.bfd) : []),
    ...exportFilter(input.communities),
    '',
    ...staticProtocol('IPv4', unique.filter((a) => !isV6(a))),
    ...staticProtocol('IPv6', unique.filter(isV6)),
  ];
  for (const peer of [...input.peers].sort((a, b) => peerProtocolName(a.address).localeCompare(peerProtocolName(b.address)))) {
    lines.push('', ...bgpProtocol(peer, input));
  }
  return `${lines.join('\n')}\n`;
}
