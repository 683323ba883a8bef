/**
 * A namespace standing in for a node, for BPF_PROG_TEST_RUN of the backend
 * programs: the from-pod program routes each reply itself (bpf_fib_lookup),
 * and a test run looks routes up in the namespace of the thread that starts
 * it, on the device the run's __sk_buff names. So the runs happen here, as
 * if each packet came in on the pods' veth, with routes the test knows: the
 * node's addresses on that veth (a reply to NODE is local), an uplink with
 * the default routes (both ends up, nothing sent: a test run redirects
 * nothing), a blackhole for BLACKHOLED clients, and a device of IPv6's
 * minimum MTU for NARROW ones. Forwarding on, as on a Kubernetes node.
 */
import { execFileSync } from 'node:child_process';
import { type TestRunOptions } from '../../src/libbpf/test-run.js';
import { TestNetns } from './netns.js';

/** The node's addresses, on the pods' veth (the kubelet probes from them). */
export const NODE = { v4: '198.18.1.1', v6: '2001:db8:1::1' };
/** The node's addresses on its uplink (its NIC): Node addressing tunnels to them. */
export const UPLINK = { v4: '198.18.50.1', v6: '2001:db8:50::1' };
const GATEWAY = { v4: '198.18.50.254', v6: '2001:db8:50::fe' };
export const BLACKHOLED = { v4: '198.18.102.1', v6: '2001:db8:102::1' };
export const NARROW = { v4: '198.18.103.1', v6: '2001:db8:103::1' };
const NETS = { blackholed: ['198.18.102.0/24', '2001:db8:102::/64'], narrow: ['198.18.103.0/24', '2001:db8:103::/64'] };
export const NARROW_MTU = 1280;
const DEV = { pods: 'pods0', uplink: 'up0', narrow: 'narrow0' } as const;
const PEER_SUFFIX = 'p';
/** struct __sk_buff up to its ifindex (the device the program runs on), the rest zero. */
const SKB_IFINDEX_OFFSET = 40;
const SKB_CTX_LEN = SKB_IFINDEX_OFFSET + Uint32Array.BYTES_PER_ELEMENT;

export interface BackendNodeNetns {
  ns: TestNetns;
  /** Test-run options for a packet received on the pods' veth (run them inside ns). */
  runOpts: TestRunOptions;
  /** Test-run options for a packet received on the uplink, the node's NIC (Node addressing). */
  nicRunOpts: TestRunOptions;
}

/** Test-run options whose __sk_buff names the device as the one the packet came in on. */
function receivedOn(ns: string, dev: string): TestRunOptions {
  const [link] = JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'link', 'show', dev], { encoding: 'utf8' })) as { ifindex: number }[];
  const ctx = Buffer.alloc(SKB_CTX_LEN);
  ctx.writeUInt32LE(link!.ifindex, SKB_IFINDEX_OFFSET);
  return { ctx };
}

/** Creates the namespace (remove it with removeNetns(ns) or ns.remove()). */
export function createBackendNodeNetns(name: string): BackendNodeNetns {
  const ns = new TestNetns(name);
  try {
    for (const dev of Object.values(DEV)) {
      ns.ip('link', 'add', dev, 'type', 'veth', 'peer', 'name', dev + PEER_SUFFIX);
      for (const d of [dev, dev + PEER_SUFFIX]) ns.ip('link', 'set', d, 'up');
    }
    ns.ip('link', 'set', DEV.narrow, 'mtu', String(NARROW_MTU));
    for (const [dev, a] of [[DEV.pods, NODE], [DEV.uplink, UPLINK]] as const) {
      ns.ip('addr', 'add', `${a.v4}/24`, 'dev', dev);
      ns.ip('addr', 'add', `${a.v6}/64`, 'dev', dev, 'nodad');
    }
    ns.ip('route', 'add', 'default', 'via', GATEWAY.v4);
    ns.ip('-6', 'route', 'add', 'default', 'via', GATEWAY.v6);
    ns.ip('route', 'add', 'blackhole', NETS.blackholed[0]!);
    ns.ip('-6', 'route', 'add', 'blackhole', NETS.blackholed[1]!);
    ns.ip('route', 'add', NETS.narrow[0]!, 'dev', DEV.narrow);
    ns.ip('-6', 'route', 'add', NETS.narrow[1]!, 'dev', DEV.narrow);
    execFileSync('ip', ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'],
      { stdio: 'pipe' });
    return { ns, runOpts: receivedOn(name, DEV.pods), nicRunOpts: receivedOn(name, DEV.uplink) };
  } catch (err) {
    ns.remove();
    throw err;
  }
}
