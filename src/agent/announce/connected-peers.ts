/**
 * Which of the configured peers this node talks to: those in one of its own
 * subnets. Sessions are single-hop (BIRD's default), so a peer elsewhere could
 * never come up; leaving it out lets one XdpBalancer list the routers of
 * every rack, and each node peers with its own.
 */
import type { AgentBgpPeer } from '../../api/xdpbalancer.js';
import { parseIp } from '../../lib/ip.js';
import type { Subnet } from '../net/iproute.js';

const BITS_PER_BYTE = 8;

/** Whether `address` lies in the subnet of `subnet.local`/`subnet.prefixlen`. */
export function inSubnet(address: string, subnet: Subnet): boolean {
  const a = parseIp(address);
  const s = parseIp(subnet.local);
  if (a.family !== s.family) return false;
  const whole = Math.floor(subnet.prefixlen / BITS_PER_BYTE);
  if (!a.bytes.subarray(0, whole).equals(s.bytes.subarray(0, whole))) return false;
  const rest = subnet.prefixlen % BITS_PER_BYTE;
  if (rest === 0) return true;
  const mask = (0xff << (BITS_PER_BYTE - rest)) & 0xff;
  return (a.bytes[whole]! & mask) === (s.bytes[whole]! & mask);
}

export function connectedPeers(peers: readonly AgentBgpPeer[], subnets: readonly Subnet[]): { connected: AgentBgpPeer[]; elsewhere: AgentBgpPeer[] } {
  const connected: AgentBgpPeer[] = [];
  const elsewhere: AgentBgpPeer[] = [];
  for (const p of peers) (subnets.some((s) => inSubnet(p.address, s)) ? connected : elsewhere).push(p);
  return { connected, elsewhere };
}
