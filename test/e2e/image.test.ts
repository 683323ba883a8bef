/**
 * The image users deploy: deploy/Dockerfile built unchanged on a local Docker
 * engine (addresses in 198.18.0.0/15) by scripts/build-image.sh, from offline
 * stand-ins of its node base images taken by digest from a registry on
 * 127.0.0.1, its Debian packages at their pinned versions, and the image's own
 * node, koffi and libbpf loading our objects.
 * Installs and starts Docker when needed, so outside CI it runs only when
 * asked (XDPLB_IMAGE_TEST=1); in CI it must run.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inCI } from '../support/kernel.js';
import { BALANCER_MAPS, DECAP_MAPS } from '../../src/bpf/maps.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const IMAGE = 'xdplb:image-test';
const E2E_IMAGE = 'xdplb-e2e:image-test';
const wanted = inCI || process.env.XDPLB_IMAGE_TEST === '1';
/** Builds take minutes on two loaded CPUs. */
const BUILD_TIMEOUT_MS = 20 * 60_000;

function need(t: TestContext): boolean {
  if (!wanted) {
    t.skip('set XDPLB_IMAGE_TEST=1 to run (installs Debian\'s docker.io and starts dockerd); CI runs it');
    return false;
  }
  if (process.getuid?.() !== 0) throw new Error('the image test needs root (it starts dockerd)');
  return true;
}

function spawn(cmd: string, args: string[]) {
  return spawnSync(cmd, args, {
    cwd: ROOT, encoding: 'utf8', timeout: BUILD_TIMEOUT_MS, maxBuffer: 64 << 20,
    env: { ...process.env, DOCKER_BUILDKIT: '0' },
  });
}

function run(cmd: string, args: string[]): string {
  const r = spawn(cmd, args);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${(r.stdout ?? '').slice(-4000)}\n${(r.stderr ?? '').slice(-4000)}`);
  }
  return r.stdout;
}

/** The default of `ARG NAME=...` in deploy/Dockerfile, where the pins live. */
function dockerfileArg(name: string): string {
  const v = readFileSync(`${ROOT}deploy/Dockerfile`, 'utf8').match(new RegExp(`^ARG ${name}=(.*)$`, 'm'))?.[1];
  assert.ok(v, `ARG ${name}=... in deploy/Dockerfile`);
  return v.replace(/^"(.*)"$/, '$1');
}

/** name=version pairs of an ARG like RUNTIME_PACKAGES. */
const packagePins = (arg: string) => dockerfileArg(arg).split(' ').map((p) => p.split('=') as [string, string]);

const docker = (...args: string[]) => run('docker', args);

describe('the image (deploy/Dockerfile)', () => {
  let up = false;
  before(() => {
    if (!wanted || process.getuid?.() !== 0) return;
    run('bash', ['scripts/docker.sh', 'up']);
    up = true;
    run('bash', ['scripts/base-images.sh']);
  });
  after(() => {
    if (!up) return;
    spawnSync('docker', ['rmi', '-f', IMAGE, E2E_IMAGE], { stdio: 'ignore' });
    // Restores the firewall and removes the bridges; fails loudly if anything differs.
    execFileSync('bash', ['scripts/docker.sh', 'down'], { cwd: ROOT, stdio: 'inherit' });
  });

  test('builds unchanged, both targets, on the local engine, from the stand-ins by digest', (t) => {
    if (!need(t)) return;
    const r = spawn('bash', ['scripts/build-image.sh', IMAGE, E2E_IMAGE]);
    assert.equal(r.status, 0, `scripts/build-image.sh failed:\n${r.stderr.slice(-6000)}`);
    // Both stages' base images came from the local registry by digest.
    for (const arg of ['BUILD_IMAGE', 'RUNTIME_IMAGE']) {
      const tag = dockerfileArg(arg).replace(/@sha256:.*/, '').replace(/^node:/, '');
      assert.match(r.stderr, new RegExp(`${arg}: the local stand-in node:${tag.replace(/\./g, '\\.')}, by its digest: 127\\.0\\.0\\.1:\\d+/library/node:${tag.replace(/\./g, '\\.')}@sha256:[0-9a-f]{64}$`, 'm'));
    }
    // Every network Docker made is inside the benchmarking range.
    const subnets = docker('network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Subnet}} {{end}}', ...docker('network', 'ls', '-q').split(/\s+/).filter(Boolean));
    for (const s of subnets.split(/\s+/).filter(Boolean)) assert.match(s, /^198\.1[89]\./, `docker network ${s} is outside 198.18.0.0/15`);
  });

  test('the controller and the agent print their usage; the image runs the controller as non-root', (t) => {
    if (!need(t)) return;
    assert.match(docker('run', '--rm', IMAGE, 'node', '/app/dist/src/controller/main.js', '--help'), /usage: xdplb-controller/);
    assert.match(docker('run', '--rm', IMAGE, 'node', '/app/dist/src/agent/main.js', '--help'), /usage: xdplb-agent/);
    assert.equal(docker('run', '--rm', IMAGE, 'id', '-u').trim(), '65532');
    assert.match(docker('run', '--rm', IMAGE, 'node', '--version').trim(), new RegExp(`^v${process.versions.node.replace(/\./g, '\\.')}$`));
  });

  test('the image records what it holds: npm production packages and Debian packages (sbom/), and no dev dependency or test file', (t) => {
    if (!need(t)) return;
    const npm = JSON.parse(docker('run', '--rm', IMAGE, 'cat', '/app/sbom/npm-packages.json')) as { dependencies?: Record<string, { version: string }> };
    for (const name of ['@kubernetes/client-node', 'koffi', 'js-yaml', 'pino', 'prom-client']) assert.ok(npm.dependencies?.[name]?.version, `${name} in the npm SBOM`);
    assert.ok(!npm.dependencies?.typescript, 'no dev dependency in the npm SBOM');
    const deb = docker('run', '--rm', IMAGE, 'cat', '/app/sbom/debian-packages.txt');
    for (const name of ['libbpf1', 'iproute2', 'bird2']) assert.match(deb, new RegExp(`^${name} \\S+$`, 'm'), `${name} in the Debian list`);
    const installed = (list: string) => new Map(list.trim().split('\n').map((l) => l.split(' ') as [string, string]));
    // Each stage's Debian packages at the versions deploy/Dockerfile pins (scripts/pin-debian-packages.sh).
    const runtime = installed(deb);
    for (const [name, version] of packagePins('RUNTIME_PACKAGES')) assert.equal(runtime.get(name), version, `${name} in the runtime`);
    const build = installed(docker('run', '--rm', IMAGE, 'cat', '/app/sbom/build-debian-packages.txt'));
    for (const [name, version] of packagePins('BUILD_PACKAGES')) assert.equal(build.get(name), version, `${name} in the build stage`);
    const top = docker('run', '--rm', IMAGE, 'sh', '-c', 'ls -A /app; ls -A /app/dist; ls /app/node_modules | grep -cx typescript || true').trim().split('\n');
    assert.deepEqual(top, ['bpf', 'dist', 'node_modules', 'package.json', 'sbom', 'src', '0'], 'the runtime holds only runtime files');
  });

  test('a base image whose digest is not the one pinned fails the build', (t) => {
    if (!need(t)) return;
    // The runtime stand-in served as build-image.sh serves it: FROM by its digest builds, FROM by
    // the same digest with its last hex digit changed does not (the registry has no such manifest).
    const tag = dockerfileArg('RUNTIME_IMAGE').replace(/@sha256:.*/, '');
    const script = `source scripts/lib/local-registry.sh
      xdplb_registry_start && trap xdplb_registry_stop EXIT
      xdplb_registry_pin ${tag} && ref=$XDPLB_REGISTRY_REF || exit 1
      wrong=\${ref%?}$( [[ \${ref: -1} == 0 ]] && echo 1 || echo 0)
      build() { printf 'ARG BASE\\nFROM $BASE\\n' | docker build -q --force-rm --build-arg "BASE=$1" - 2>&1; }
      echo "right: $ref"; build "$ref" >/dev/null && echo "right: built"
      echo "wrong: $wrong"; build "$wrong" && echo "wrong: built"; true`;
    const out = run('bash', ['-c', script]);
    assert.match(out, /^right: 127\.0\.0\.1:\d+\/library\/node:\S+@sha256:[0-9a-f]{64}$/m);
    assert.match(out, /^right: built$/m);
    assert.match(out, /^wrong: 127\.0\.0\.1:\d+\/library\/node:\S+@sha256:[0-9a-f]{64}$/m);
    assert.doesNotMatch(out, /^wrong: built$/m, out);
    assert.match(out, /manifest unknown|not found/, out);
  });

  test("the image's node loads both BPF objects through koffi and libbpf", (t) => {
    if (!need(t)) return;
    const script = `import('/app/dist/src/bpf/programs.js').then((m) => {
      const lb = m.loadBalancer(); const d = m.loadDecap();
      console.log(Object.keys(lb.maps).length, Object.keys(d.maps).length, lb.progFd > 0, d.progFd > 0);
      lb.object.close(); d.object.close();
    })`;
    const out = docker('run', '--rm', '--privileged', '--user', '0', IMAGE, 'node', '-e', script).trim();
    // Every map of each object's schema was found in the object the image built.
    assert.equal(out, `${Object.keys(BALANCER_MAPS).length} ${Object.keys(DECAP_MAPS).length} true true`);
  });

  test('the e2e target runs the lab server and client the kind suite uses: 20 TCP connections on loopback', (t) => {
    if (!need(t)) return;
    const server = JSON.stringify({ name: 'r1', tcp: [{ address: '127.0.0.1', port: 8080 }], udp: [] });
    const client = JSON.stringify({ mode: 'connect', vip: '127.0.0.1', port: 8080, count: 20, concurrency: 4 });
    const programs = '/app/dist/test/lab/programs';
    // The server says "ready" once it listens; the client then connects through the container's loopback.
    const out = docker('run', '--rm', E2E_IMAGE, 'sh', '-c',
      `node ${programs}/server.js '${server}' > /tmp/server.out & ` +
      `for i in $(seq 100); do grep -q ready /tmp/server.out && break; sleep 0.1; done; node ${programs}/client.js '${client}'`);
    const result = JSON.parse(out.trim().split('\n').pop()!) as { byReal: Record<string, number>; failures: number };
    assert.deepEqual(result, { ...result, byReal: { r1: 20 }, failures: 0 });
  });
});
