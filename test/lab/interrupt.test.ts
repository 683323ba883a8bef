/** An interrupted run leaves nothing behind: the lab's and the control plane's cleanup run on signals too. */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requireKernel } from '../support/kernel.js';
import { LAB_PREFIX } from './lab.js';

const HOLD = fileURLToPath(new URL('./programs/hold.js', import.meta.url));

async function holdThenSignal(what: string, signal: NodeJS.Signals): Promise<{ made: Record<string, string>; code: number | null }> {
  const child = spawn(process.execPath, [HOLD, what], { stdio: ['ignore', 'pipe', 'inherit'] });
  const made = await new Promise<Record<string, string>>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line) as Record<string, string>);
    });
    child.on('exit', (code) => reject(new Error(`${what} holder exited early (${code})`)));
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.kill(signal);
  return { made, code: await exited };
}

test('SIGTERM during a lab run: namespaces, pins and files are removed', async (t) => {
  if (!requireKernel(t)) return;
  const { made, code } = await holdThenSignal('lab', 'SIGTERM');
  assert.equal(code, 143);
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(`${LAB_PREFIX}-${made.tag}-`));
  assert.deepEqual(left, []);
  assert.ok(!existsSync(made.pinRoot!), 'pins removed');
  assert.ok(!existsSync(made.workDir!), 'work dir removed');
  // The lab's BIRDs (routing by BGP) name their files in the work dir; SIGKILLed children may take a moment to be reaped.
  const birds = () => execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(made.workDir!));
  const deadline = Date.now() + 5000;
  while (birds().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(birds(), [], 'no BIRD of that lab');
});

test('SIGINT during a control-plane run: etcd and kube-apiserver end, their data is removed', async (t) => {
  if (!requireKernel(t)) return; // the kernel gate stands for "a CI-like machine": it also has Go for the build
  const { made, code } = await holdThenSignal('control-plane', 'SIGINT');
  assert.equal(code, 130);
  assert.ok(!existsSync(made.dir!), 'data removed');
  // SIGKILLed children may take a moment to be reaped.
  const running = () => execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(made.dir!));
  const deadline = Date.now() + 5000;
  while (running().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(running(), [], 'no etcd or kube-apiserver of that run');
});
