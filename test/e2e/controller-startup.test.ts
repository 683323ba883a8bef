/**
 * How the controller starts against a real kube-apiserver when it is run by
 * hand, outside a pod: with no image for the "default" XdpBalancer it must
 * create, it says what to give and exits 2 (every VIP would otherwise report
 * the balancer missing); with the balancer there already, it needs none.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from './control-plane/control-plane.js';
import { controlPlaneFixture } from './control-plane/fixture.js';

const CONTROLLER = join(fileURLToPath(new URL('../../', import.meta.url)), 'src/controller/main.js');
/** Generous: the machine may be loaded; the test never judges how long it took. */
const WAIT_MS = 120_000;

interface Run {
  /** Exit code (or signal) once it has exited. */
  exited: Promise<number | string>;
  output(): string;
  /** Resolves once its output matches, rejects if it exits first. */
  waitFor(re: RegExp): Promise<void>;
  stop(): void;
}

async function startController(kubeconfig: string, args: string[] = []): Promise<Run> {
  const env = { PATH: process.env.PATH ?? '', XDPLB_LOG_LEVEL: 'info' }; // as by hand: no POD_NAME, no XDPLB_AGENT_IMAGE
  const p = spawn(process.execPath, [CONTROLLER, '--kubeconfig', kubeconfig, '--no-leader-elect',
    '--metrics-address', `127.0.0.1:${await freePort()}`, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const watchers: (() => void)[] = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of watchers) w();
  };
  p.stdout.on('data', onData);
  p.stderr.on('data', onData);
  const exited = new Promise<number | string>((resolve) => p.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const timeout = setTimeout(() => p.kill('SIGKILL'), WAIT_MS);
  void exited.then(() => clearTimeout(timeout));
  return {
    exited,
    output: () => out,
    waitFor: (re) => new Promise((resolve, reject) => {
      const check = () => re.test(out) && resolve();
      watchers.push(check);
      check();
      void exited.then(() => reject(new Error(`exited before ${re}: ${out}`)));
    }),
    stop: () => p.kill('SIGTERM'),
  };
}

describe('the controller started by hand, outside a pod', () => {
  const f = controlPlaneFixture();

  test('no default balancer and no --agent-image: it says what to give and exits 2', async (t) => {
    if (!f.need(t)) return;
    const run = await startController(f.cp.kubeconfig);
    assert.equal(await run.exited, 2, run.output());
    assert.match(run.output(), /xdplb-controller: XdpBalancer "default" does not exist and, outside a pod, there is no image to create it with: give --agent-image IMAGE/);
    assert.match(f.cp.kubectlError(['get', 'xdpbalancer', 'default']), /NotFound/);
  });

  test('with --agent-image it creates the default balancer; once it exists, none is needed', async (t) => {
    if (!f.need(t)) return;
    let run = await startController(f.cp.kubeconfig, ['--agent-image', 'registry.example/xdplb:1']);
    await run.waitFor(/"msg":"reconciling"/);
    assert.equal(f.cp.kubectl(['get', 'xdpbalancer', 'default', '-o', 'jsonpath={.spec.image}']), 'registry.example/xdplb:1');
    run.stop();
    assert.equal(await run.exited, 0, `a SIGTERM ends it cleanly: ${run.output()}`);
    run = await startController(f.cp.kubeconfig);
    await run.waitFor(/"msg":"reconciling"/);
    run.stop();
    assert.equal(await run.exited, 0, `a SIGTERM ends it cleanly: ${run.output()}`);
  });
});
