/**
 * The controller, run as a process against a real kube-apiserver, refuses an
 * XdpBalancer whose image is outside its allowlist (--allowed-images, by
 * default the repository of its --agent-image): condition AgentsReady=False
 * with reason ImageNotAllowed, a Warning Event, and no DaemonSet; a balancer
 * whose image changes to a foreign one keeps its DaemonSet on the old image.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { XdpBalancer } from '../../src/api/xdpbalancer.js';
import { freePort } from './control-plane/control-plane.js';
import { controlPlaneFixture } from './control-plane/fixture.js';
import { waitUntil } from './control-plane/objects.js';

const CONTROLLER = join(fileURLToPath(new URL('../../', import.meta.url)), 'src/controller/main.js');
const AGENT_NS = 'xdplb-system';
const OWN = 'registry.example/xdplb:1';

let controller: ChildProcess | undefined;
let output = '';
const f = controlPlaneFixture((cp) => {
  for (const file of ['namespace.yaml', 'rbac-controller.yaml']) cp.kubectl(['apply', '-f', fileURLToPath(new URL(`../../../deploy/${file}`, import.meta.url))]);
}, async () => {
  controller?.kill('SIGKILL');
});

async function startController(args: string[]): Promise<void> {
  const env = { PATH: process.env.PATH ?? '', XDPLB_LOG_LEVEL: 'info' };
  controller = spawn(process.execPath, [CONTROLLER, '--kubeconfig', f.cp.kubeconfigAs('xdplb-system/xdplb-controller'), '--no-leader-elect',
    '--namespace', AGENT_NS, '--identity', 'test', '--metrics-address', `127.0.0.1:${await freePort()}`, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (d: Buffer) => (output += d.toString());
  controller.stdout!.on('data', keep);
  controller.stderr!.on('data', keep);
}

async function stopController(): Promise<void> {
  const p = controller;
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((resolve) => p.once('exit', resolve));
  p.kill('SIGTERM');
  await gone;
}
after(stopController);

const balancer = (name: string): XdpBalancer => JSON.parse(f.cp.kubectl(['get', 'xdpbalancer', name, '-o', 'json'])) as XdpBalancer;
const agentsReady = (b: XdpBalancer) => b.status?.conditions?.find((c) => c.type === 'AgentsReady');
const daemonSetImage = (name: string) =>
  f.cp.kubectl(['get', 'ds', `xdplb-agent-${name}`, '-n', AGENT_NS, '--ignore-not-found', '-o', 'jsonpath={.spec.template.spec.containers[0].image}']);
const warnings = (name: string) => f.cp.kubectl(['get', 'events', '-A', '--field-selector', `involvedObject.name=${name},reason=ImageNotAllowed`,
  '-o', 'jsonpath={range .items[*]}{.type} {.reason}: {.message}{"\\n"}{end}']);
const apply = (name: string, image: string) =>
  f.cp.kubectl(['apply', '-f', '-'], `apiVersion: xdplb.dev/v1alpha1\nkind: XdpBalancer\nmetadata: {name: ${name}}\nspec: {image: "${image}"}\n`);

describe('XdpBalancer images outside the controller\'s allowlist', () => {
  test('by default the repository of --agent-image: a foreign image is refused and gets no DaemonSet; a change to one keeps the old DaemonSet', async (t) => {
    if (!f.need(t)) return;
    await startController(['--agent-image', OWN]);
    // The default balancer it creates runs its own image.
    await waitUntil('the default balancer\'s DaemonSet', () => daemonSetImage('default'), (i) => i === OWN);

    apply('miner', 'evil.example/miner:1');
    const refused = await waitUntil('miner is refused', () => balancer('miner'), (b) => agentsReady(b)?.reason === 'ImageNotAllowed');
    assert.equal(agentsReady(refused)!.status, 'False');
    assert.match(agentsReady(refused)!.message!, /^image "evil\.example\/miner:1" is not allowed: the controller runs agents from only registry\.example\/xdplb \(the repository of --agent-image; --allowed-images widens it\); use an allowed image, or have the cluster admin add it to the controller's --allowed-images/);
    await waitUntil('a Warning Event ImageNotAllowed on miner', () => warnings('miner'), (e) => /^Warning ImageNotAllowed: image "evil\.example\/miner:1" is not allowed/.test(e));
    assert.equal(daemonSetImage('miner'), '', 'no DaemonSet for miner');
    // A repository whose name begins with the allowed one is another repository.
    apply('lookalike', 'registry.example/xdplb-miner:1');
    await waitUntil('lookalike is refused', () => balancer('lookalike'), (b) => agentsReady(b)?.reason === 'ImageNotAllowed');

    // An allowed balancer gets its DaemonSet; changed to a foreign image, the DaemonSet keeps the old one.
    apply('edge', 'registry.example/xdplb:2');
    await waitUntil('edge\'s DaemonSet', () => daemonSetImage('edge'), (i) => i === 'registry.example/xdplb:2');
    apply('edge', 'evil.example/miner:1');
    const changed = await waitUntil('edge is refused', () => balancer('edge'), (b) => agentsReady(b)?.reason === 'ImageNotAllowed');
    assert.match(agentsReady(changed)!.message!, /running agents keep the image they had$/);
    assert.equal(daemonSetImage('edge'), 'registry.example/xdplb:2');
    // Back to an allowed image: reconciled as before.
    apply('edge', 'registry.example/xdplb:3');
    await waitUntil('edge\'s DaemonSet on :3', () => daemonSetImage('edge'), (i) => i === 'registry.example/xdplb:3');
    assert.notEqual(agentsReady(balancer('edge'))?.reason, 'ImageNotAllowed');
    assert.equal(daemonSetImage('miner'), '', 'still no DaemonSet for miner');
    await stopController();
  });

  test('--allowed-images widens it (a prefix): the refused balancer gets its DaemonSet', async (t) => {
    if (!f.need(t)) return;
    await startController(['--agent-image', OWN, '--allowed-images', 'registry.example/xdplb,evil.example/']);
    await waitUntil('miner\'s DaemonSet', () => daemonSetImage('miner'), (i) => i === 'evil.example/miner:1');
    await waitUntil('miner is no longer refused', () => balancer('miner'), (b) => agentsReady(b)?.reason !== 'ImageNotAllowed');
    await waitUntil('lookalike stays refused', () => balancer('lookalike'), (b) => agentsReady(b)?.reason === 'ImageNotAllowed');
    assert.equal(daemonSetImage('lookalike'), '');
    await stopController();
  });
});
