/** npm run lab -- up | down: keeps the demo lab running to explore it. */
import { Lab, LAB_PREFIX, labVips } from './lab.js';

const TAG = 'explore';

async function up(): Promise<void> {
  if (Lab.downFromState(TAG)) process.stdout.write('removed the previous lab\n');
  const lab = await Lab.up({ tag: TAG, persistent: true });
  try {
    lab.writeVips(labVips(lab));
    for (const b of lab.balancers) await lab.startAgent(b);
  } catch (err) {
    await lab.down();
    throw err;
  }
  lab.detach();
  const ns = (n: string) => `${LAB_PREFIX}-${TAG}-${n}`;
  process.stdout.write(`The lab is up. Namespaces: ${ns('client')}, ${ns('router')}, ${ns('lb1')}, ${ns('lb2')}, ${ns('real1')}..3

  # a connection to the VIP: a real greets you with its name
  ip netns exec ${ns('client')} bash -c 'exec 3<>/dev/tcp/198.19.0.10/80; head -1 <&3'
  # BGP: the router's sessions and the VIP routes it learnt from the balancer nodes (ECMP)
  birdc -s ${lab.routerBirdDir}/bird.ctl show protocols
  ip -n ${ns('router')} route show proto bird
  # an agent's metrics
  ip netns exec ${ns('lb1')} curl -s 127.0.0.1:9641/metrics | grep ^xdplb_
  # the VIPs: the agents apply a saved change within a second
  $EDITOR ${lab.configPath}
  # logs of the agents and servers
  ls ${lab.workDir}/*.log

  npm run lab -- down     # removes everything
`);
}

function down(): void {
  process.stdout.write(Lab.downFromState(TAG) ? 'lab removed\n' : 'no lab is up\n');
}

const cmd = process.argv[2];
if (cmd === 'up') {
  up().catch((err: unknown) => {
    process.stderr.write(`lab up failed: ${(err as Error).message}\n`);
    process.exit(1);
  });
} else if (cmd === 'down') {
  down();
} else {
  process.stderr.write('usage: npm run lab -- up | down\n');
  process.exit(2);
}
