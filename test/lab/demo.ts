/**
 * npm run demo: the lab with two XDP balancer nodes in standalone mode, real
 * TCP and UDP traffic, and what happened to it; then everything is removed.
 */
import { Lab, labVips, VIP4, VIP4_V6REALS, VIP6 } from './lab.js';
import { connectionsTable, metricsTable } from './report.js';

const say = (s = '') => process.stdout.write(`${s}\n`);

async function main(): Promise<void> {
  say(`xdplb demo on Node.js ${process.version}: building the lab (client, ECMP router, 2 balancer nodes, 3 reals)...`);
  const lab = await Lab.up({ tag: 'demo' });
  try {
    lab.writeVips(labVips(lab));
    for (const b of lab.balancers) await lab.startAgent(b);
    say(`agents attached to eth0 of ${lab.balancers.map((b) => b.name).join(' and ')}; VIPs: ${VIP4} (TCP 80, UDP 53), ${VIP4_V6REALS} (TCP 80, IPv6 reals), ${VIP6} (TCP 80, UDP 53)`);
    say();
    say('Each agent announces the VIPs it serves by BGP, through the BIRD beside it. The router\'s sessions (birdc show protocols):');
    say(lab.routerBirdc('show', 'protocols').trim());
    say();
    say('The VIP routes the router learnt, one ECMP next hop per balancer node (ip route):');
    say([lab.ip(lab.router, '-4', 'route', 'show', 'proto', 'bird'), lab.ip(lab.router, '-6', 'route', 'show', 'proto', 'bird')].join('').trim());
    say();
    say('sending traffic from the client...');
    const results = [];
    for (const vip of [VIP4, VIP4_V6REALS, VIP6]) {
      const r = await lab.clientRun<{ byReal: Record<string, number>; failures: number }>({ mode: 'connect', vip, port: 80, count: 300, concurrency: 8 });
      results.push({ vip: `${vip.includes(':') ? `[${vip}]` : vip}:80 TCP`, ...r });
    }
    for (const vip of [VIP4, VIP6]) {
      const sourcePorts = Array.from({ length: 150 }, (_, i) => 46000 + i);
      const u = await lab.clientRun<{ byPort: Record<string, string>; failures: number }>({ mode: 'udp', vip, port: 53, sourcePorts });
      const byReal: Record<string, number> = {};
      for (const real of Object.values(u.byPort)) byReal[real] = (byReal[real] ?? 0) + 1;
      results.push({ vip: `${vip.includes(':') ? `[${vip}]` : vip}:53 UDP`, byReal, failures: u.failures });
    }
    say();
    say('Which real answered each connection (TCP) or datagram (UDP), as the client saw it:');
    say(connectionsTable(results, lab.reals.map((r) => r.name)));
    say();
    say(metricsTable(lab, await Promise.all(lab.balancers.map((b) => lab.metrics(b)))));
    say();
    const failed = results.reduce((a, r) => a + r.failures, 0);
    say(failed ? `${failed} requests failed` : 'every request was answered; replies went from the reals straight to the client (DSR).');
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
