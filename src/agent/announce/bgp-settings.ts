/**
 * The agent's BGP settings (--bgp, JSON): checked as a whole before BIRD is
 * touched, so a bad value stops the agent at start with every problem named,
 * instead of a half-configured BIRD. In cluster mode the API server has
 * checked the same rules (crds/xdpbalancers.yaml); standalone users write the
 * JSON by hand.
 */
import { isIPv4, isIPv6 } from 'node:net';
import {
  type AgentBgpPeer, type AgentBgpSettings, BFD_MIN_INTERVAL_MS, BFD_MULTIPLIER, type BgpAddressFamily, type BgpBfd, DEFAULT_BFD_MIN_INTERVAL_MS,
  DEFAULT_BFD_MULTIPLIER,
} from '../../api/xdpbalancer.js';
import { canonicalIp } from '../../lib/ip.js';

/** 4-octet AS numbers (RFC 6793); 0 is reserved. */
export const MAX_ASN = 4294967295;
const MAX_PORT = 65535;
const MAX_UINT16 = 65535;
const ADDRESS_FAMILIES: readonly BgpAddressFamily[] = ['IPv4', 'IPv6'];

/** A community added to every announced route: standard (RFC 1997, 16:16 bits) or large (RFC 8092, 32:32:32 bits). */
export type Community = { kind: 'standard'; parts: [number, number] } | { kind: 'large'; parts: [number, number, number] };

export class BgpSettingsError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid BGP settings: ${problems.join('; ')}`);
  }
}

/** "65000:100" or "65000:1:2"; null when it is neither. */
export function parseCommunity(text: string): Community | null {
  const parts = text.split(':');
  if (!parts.every((p) => /^\d{1,10}$/.test(p))) return null;
  const n = parts.map(Number);
  if (n.length === 2 && n.every((x) => x <= MAX_UINT16)) return { kind: 'standard', parts: [n[0]!, n[1]!] };
  if (n.length === 3 && n.every((x) => x <= MAX_ASN)) return { kind: 'large', parts: [n[0]!, n[1]!, n[2]!] };
  return null;
}

export const familyOf = (address: string): BgpAddressFamily => (isIPv4(address) ? 'IPv4' : 'IPv6');

/** The families a peer's session carries: as given, else its own address's. */
export const peerFamilies = (peer: AgentBgpPeer): BgpAddressFamily[] => peer.addressFamilies ?? [familyOf(peer.address)];

const isAsn = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 1 && (x as number) <= MAX_ASN;

function peerProblems(peer: AgentBgpPeer, at: string): string[] {
  const problems: string[] = [];
  if (typeof peer.address !== 'string' || !(isIPv4(peer.address) || isIPv6(peer.address))) {
    problems.push(`${at}.address: "${peer.address}" is not an IPv4 or IPv6 address`);
  }
  if (!isAsn(peer.asn)) problems.push(`${at}.asn: ${peer.asn} is not an AS number (1..${MAX_ASN})`);
  if (peer.port !== undefined && !(Number.isInteger(peer.port) && peer.port >= 1 && peer.port <= MAX_PORT)) {
    problems.push(`${at}.port: ${peer.port} is not a TCP port (1..${MAX_PORT})`);
  }
  if (peer.passwordFile !== undefined && (typeof peer.passwordFile !== 'string' || !peer.passwordFile)) {
    problems.push(`${at}.passwordFile: give the path of a file holding the password`);
  }
  const families = peer.addressFamilies;
  if (families !== undefined) {
    if (!Array.isArray(families) || families.length === 0) problems.push(`${at}.addressFamilies: list IPv4, IPv6 or both`);
    else for (const f of families) if (!ADDRESS_FAMILIES.includes(f)) problems.push(`${at}.addressFamilies: "${f}" is neither IPv4 nor IPv6`);
  }
  return problems;
}

/** BFD as BIRD is told of it: spec.bgp.bfd with its defaults filled in. */
export interface BfdTimers {
  intervalMs: number;
  multiplier: number;
}

export function bfdTimers(bfd: BgpBfd): BfdTimers {
  return { intervalMs: bfd.minIntervalMilliseconds ?? DEFAULT_BFD_MIN_INTERVAL_MS, multiplier: bfd.multiplier ?? DEFAULT_BFD_MULTIPLIER };
}

const inBounds = (x: unknown, b: { min: number; max: number }) => Number.isInteger(x) && (x as number) >= b.min && (x as number) <= b.max;

function bfdProblems(bfd: unknown): string[] {
  if (typeof bfd !== 'object' || bfd === null || Array.isArray(bfd)) return ['bfd: give an object ({} for the defaults), or leave it out for no BFD'];
  const { minIntervalMilliseconds: interval, multiplier } = bfd as BgpBfd;
  const problems: string[] = [];
  if (interval !== undefined && !inBounds(interval, BFD_MIN_INTERVAL_MS)) {
    problems.push(`bfd.minIntervalMilliseconds: ${interval} is not a whole number of milliseconds from ${BFD_MIN_INTERVAL_MS.min} to ${BFD_MIN_INTERVAL_MS.max}`);
  }
  if (multiplier !== undefined && !inBounds(multiplier, BFD_MULTIPLIER)) {
    problems.push(`bfd.multiplier: ${multiplier} is not a whole number from ${BFD_MULTIPLIER.min} to ${BFD_MULTIPLIER.max}`);
  }
  return problems;
}

/** Checks settings (parsed JSON); throws BgpSettingsError naming every problem. */
export function checkBgpSettings(value: unknown): AgentBgpSettings {
  const s = value as AgentBgpSettings;
  if (typeof s !== 'object' || s === null || Array.isArray(s)) {
    throw new BgpSettingsError(['expected an object {"localASN": N, "peers": [...]}']);
  }
  const problems: string[] = [];
  if (!isAsn(s.localASN)) problems.push(`localASN: ${s.localASN} is not an AS number (1..${MAX_ASN})`);
  if (s.routerID !== undefined && !isIPv4(s.routerID)) problems.push(`routerID: "${s.routerID}" is not an IPv4 address (BGP router ids are 32 bits, written as one)`);
  if (!Array.isArray(s.peers) || s.peers.length === 0) {
    problems.push('peers: list at least one peer');
  } else {
    s.peers.forEach((p, i) => problems.push(...peerProblems(p, `peers[${i}]`)));
    const seen = new Set<string>();
    for (const p of s.peers) {
      if (!isIPv4(p.address) && !isIPv6(p.address)) continue;
      const key = canonicalIp(p.address);
      if (seen.has(key)) problems.push(`peers: ${p.address} is listed twice (one session per router address)`);
      seen.add(key);
    }
  }
  for (const c of s.communities ?? []) {
    if (parseCommunity(c) === null) problems.push(`communities: "${c}" is neither ASN:VALUE (16-bit each) nor ASN:DATA1:DATA2 (32-bit each)`);
  }
  if (s.bfd !== undefined) problems.push(...bfdProblems(s.bfd));
  if (problems.length) throw new BgpSettingsError(problems);
  return s;
}

/** Parses --bgp; throws BgpSettingsError. */
export function parseBgpSettings(json: string): AgentBgpSettings {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new BgpSettingsError([`not JSON (${(err as Error).message})`]);
  }
  return checkBgpSettings(value);
}
