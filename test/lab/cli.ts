/** npm run lab -- up | down: keeps the demo lab running to explore it. */
import { Lab, LAB_PREFIX, labVips, POD_PORT } from './lab.js';
import { applyPodBackends, POD_VIP4, podVips } from './pod-vips.js';

const TAG = 'explore';

async function up(): Promise<void> {
  if (Lab.downFromState(TAG)) process.stdout.write('removed the previous lab\n');
  const lab = await Lab.up({ tag: TAG, persistent: true, pods: 2 });
  try {
    for (const w of lab.workers) await lab.startBackendAgent(w);
    await applyPodBackends(lab, lab.pods());
    lab.writeVips([...labVips(lab), ...podVips(lab.pods())]);
    for (const b of lab.balancers) await lab.startAgent(b);
  } catch (err) {
    await lab.down();
    throw err;
  }
  lab.detach();
  const ns = (n: string) => `${LAB_PREFIX}-${TAG}-${n}`;
  process.stdout.write(`The lab is up. Namespaces: ${ns('client')}, ${ns('router')}, ${ns('lb1')}, ${ns('lb2')}, ${ns('real1')}..3 (in-pod decap),
worker nodes ${ns('w1')} (its pod network routed) and ${ns('w2')} (not: reached through w2's address), pods ${ns('w1-pod1')}..2 and
${ns('w2-pod1')}..2 (unmodified servers on :${POD_PORT})

  # a connection to the VIP: a real greets you with its name
  ip netns exec ${ns('client')} bash -c 'exec 3<>/dev/tcp/198.19.0.10/80; head -1 <&3'
  # the same through the backend datapath: VIP port 80, a pod listening on ${POD_PORT} answers
  ip netns exec ${ns('client')} bash -c 'exec 3<>/dev/tcp/${POD_VIP4}/80; head -1 <&3'
  # what the backend programs on w2 did (node_to_pod_*: Node addressing)
  ip netns exec ${ns('w2')} curl -s 127.0.0.1:9643/metrics | grep ^xdplb_backend_packets
  # BGP: the router's sessions and the VIP routes it learnt from the balancer nodes (ECMP)
  birdc -s ${lab.routerBirdDir}/bird.ctl show protocols
  ip -n ${ns('router')} route show proto bird
  # an agent's metrics
  ip netns exec ${ns('lb1')} curl -s 127.0.0.1:9641/metrics | grep ^xdplb_
  # the VIPs: the agents apply a saved change within a second (and w1's backends)
  $EDITOR ${lab.configPath} ${lab.workers.map((w) => w.backendsPath).join(' ')}
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
