/**
 * npm run demo: the lab with two XDP balancer nodes in standalone mode and
 * worker nodes whose backends are unmodified pods, real TCP and UDP traffic,
 * and what happened to it; then everything is removed.
 */
import { Lab, type LabPod, POD_PORT } from './lab.js';
import { POD_VIP4, POD_VIP4_V6PODS, POD_VIP6, POD_VIP_TCP_PORT, POD_VIP_UDP_PORT, servePods, tunnelOf, POD_VIPS } from './pod-vips.js';
import { backendTable, connectionsTable, metricsTable } from './report.js';

const say = (s = '') => process.stdout.write(`${s}\n`);
const PODS_PER_WORKER = 2;
const TCP_CONNECTIONS = 300;
const UDP_DATAGRAMS = 150;
const UDP_FIRST_SOURCE_PORT = 46000;
const shown = (vip: string) => (vip.includes(':') ? `[${vip}]` : vip);

async function main(): Promise<void> {
  say(`xdplb demo on Node.js ${process.version}: building the lab (client, ECMP router, 2 balancer nodes, 2 worker nodes with ${PODS_PER_WORKER} pods each)...`);
  const lab = await Lab.up({ tag: 'demo', reals: 0, pods: PODS_PER_WORKER });
  try {
    const pods: LabPod[] = lab.pods();
    const workers = lab.workers;
    for (const w of workers) await lab.startBackendAgent(w);
    await servePods(lab, pods);
    for (const b of lab.balancers) await lab.startAgent(b);
    say(`The backends are unmodified pods: ${pods.map((p) => p.name).join(', ')}, each its own network namespace behind a veth, as a CNI`);
    say(`plugin lays them out, running a plain TCP and UDP server on port ${POD_PORT}: no VIP, no privilege, nothing BPF inside the pod.`);
    say(`On ${workers.map((w) => w.name).join(' and ')}, \`xdplb-agent --mode backend\` attaches tc programs to each pod's veth: they take the balancers'`);
    say(`tunnel off, translate VIP:${POD_VIP_TCP_PORT} and VIP:${POD_VIP_UDP_PORT} to pod:${POD_PORT}, and send the replies from the VIP straight to the client.`);
    const [routed, unrouted] = [workers.find((w) => w.routed)!, workers.find((w) => !w.routed)!];
    say(`The router routes ${routed.name}'s pod network: the balancers encapsulate to each pod's address (Pod addressing). It does not route`);
    say(`${unrouted.name}'s, as with an overlay: the balancers encapsulate to ${unrouted.name}'s address (${unrouted.v4}), and a program on its NIC picks the pod (Node addressing).`);
    say(`Balancer agents attached to eth0 of ${lab.balancers.map((b) => b.name).join(' and ')}; VIPs: ${POD_VIP4} (TCP ${POD_VIP_TCP_PORT}, UDP ${POD_VIP_UDP_PORT}), `
      + `${POD_VIP4_V6PODS} (TCP ${POD_VIP_TCP_PORT}, to the pods' IPv6 addresses), ${POD_VIP6} (TCP ${POD_VIP_TCP_PORT}, UDP ${POD_VIP_UDP_PORT})`);
    say();
    say('Each balancer agent announces the VIPs it serves by BGP, through the BIRD beside it. The router\'s sessions (birdc show protocols):');
    say(lab.routerBirdc('show', 'protocols').trim());
    say();
    say('The VIP routes the router learnt, one ECMP next hop per balancer node (ip route):');
    say([lab.ip(lab.router, '-4', 'route', 'show', 'proto', 'bird'), lab.ip(lab.router, '-6', 'route', 'show', 'proto', 'bird')].join('').trim());
    say();
    say('sending traffic from the client...');
    const results = [];
    for (const vip of [POD_VIP4, POD_VIP4_V6PODS, POD_VIP6]) {
      const r = await lab.clientRun<{ byReal: Record<string, number>; failures: number }>({ mode: 'connect', vip, port: POD_VIP_TCP_PORT, count: TCP_CONNECTIONS, concurrency: 8 });
      results.push({ vip: `${shown(vip)}:${POD_VIP_TCP_PORT} TCP`, ...r });
    }
    for (const vip of [POD_VIP4, POD_VIP6]) {
      const sourcePorts = Array.from({ length: UDP_DATAGRAMS }, (_, i) => UDP_FIRST_SOURCE_PORT + i);
      const u = await lab.clientRun<{ byPort: Record<string, string>; failures: number }>({ mode: 'udp', vip, port: POD_VIP_UDP_PORT, sourcePorts });
      const byReal: Record<string, number> = {};
      for (const answer of Object.values(u.byPort)) {
        const pod = answer.split(' ')[0]!.replace('real=', '');
        byReal[pod] = (byReal[pod] ?? 0) + 1;
      }
      results.push({ vip: `${shown(vip)}:${POD_VIP_UDP_PORT} UDP`, byReal, failures: u.failures });
    }
    say();
    say(`Which pod answered each connection (TCP) or datagram (UDP), as the client saw it (every pod listens on ${POD_PORT} only):`);
    say(connectionsTable(results, pods.map((p) => p.name)));
    say();
    // The reals the balancers hold: each pod of the routed worker, and the unrouted worker itself.
    const reals = new Map<string, Set<string>>();
    for (const p of pods) for (const v of POD_VIPS) {
      const name = p.worker.routed ? p.name : `${p.worker.name} (node)`;
      reals.set(name, (reals.get(name) ?? new Set()).add(tunnelOf(v, p)));
    }
    say(metricsTable(lab, await Promise.all(lab.balancers.map((b) => lab.metrics(b))), [...reals].map(([name, a]) => ({ name, addresses: [...a] }))));
    say();
    say('What the backend programs on the workers did (xdplb_backend_packets_total): to_pod_* = decapsulated and translated on the pod\'s veth,');
    say('node_to_pod_* = the same on the node\'s NIC, to a pod it picked; reply_rewritten = a pod\'s reply sent on as VIP:port; pass_* = left alone:');
    say(backendTable(workers.map((w) => w.name), await Promise.all(workers.map((w) => lab.backendMetrics(w)))));
    say();
    const failed = results.reduce((a, r) => a + r.failures, 0);
    say(failed ? `${failed} requests failed` : 'every request was answered by an unmodified pod; replies went from the pods straight to the client (DSR).');
    process.exitCode = failed ? 1 : 0;
  } finally {
    await lab.down();
    say('lab removed.');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  process.exit(1);
});
