/**
 * --metrics-auth of the controller and the agents: /metrics open only on
 * loopback, anywhere with kubernetes; the controller's and the backend
 * agent's default address follows the mode. Checked on the shared function
 * and on the binaries, which refuse a bad combination with exit code 2
 * before they talk to any API server.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkMetricsExposure, metricsEndpoint, parseAuthMode } from '../../src/lib/metrics-auth.js';

const CONTROLLER = fileURLToPath(new URL('../../src/controller/main.js', import.meta.url));
const AGENT = fileURLToPath(new URL('../../src/agent/main.js', import.meta.url));

describe('metrics auth flags', () => {
  test('the mode is none or kubernetes, none when not given', () => {
    assert.equal(parseAuthMode('metrics-auth', undefined), 'none');
    assert.equal(parseAuthMode('metrics-auth', 'kubernetes'), 'kubernetes');
    assert.throws(() => parseAuthMode('trace-auth', 'rbac'), /--trace-auth must be one of none, kubernetes, not "rbac"/);
  });

  test('without authentication /metrics is served only on loopback', () => {
    for (const address of ['127.0.0.1:9642', '[::1]:9642', 'localhost:9642', '']) assert.doesNotThrow(() => checkMetricsExposure(address, 'none'));
    for (const address of ['0.0.0.0:9642', ':9642', '10.0.0.5:9642', '[::]:9642']) {
      assert.throws(() => checkMetricsExposure(address, 'none'), /is not on loopback: serve \/metrics on other addresses only with --metrics-auth kubernetes/);
      assert.doesNotThrow(() => checkMetricsExposure(address, 'kubernetes'));
    }
  });

  test('the default address is every interface with kubernetes, loopback with none; a given one is kept', () => {
    assert.deepEqual(metricsEndpoint('kubernetes', undefined, 9642), { auth: 'kubernetes', address: '0.0.0.0:9642' });
    assert.deepEqual(metricsEndpoint(undefined, undefined, 9642), { auth: 'none', address: '127.0.0.1:9642' });
    assert.deepEqual(metricsEndpoint('kubernetes', '127.0.0.1:1', 9642), { auth: 'kubernetes', address: '127.0.0.1:1' });
    assert.throws(() => metricsEndpoint('none', '0.0.0.0:9642', 9642), /not on loopback/);
  });
});

/** Runs a binary with `args` and no kubeconfig to find: a usage error must come first. */
function run(bin: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH ?? '', ...env } });
  return { code: r.status, err: r.stderr };
}

describe('the controller refuses open /metrics off loopback', () => {
  test('--metrics-auth none on 0.0.0.0, from the flag or XDPLB_METRICS_AUTH: exit 2 and why', () => {
    const flag = run(CONTROLLER, ['--metrics-auth', 'none', '--metrics-address', '0.0.0.0:9642']);
    assert.equal(flag.code, 2, flag.err);
    assert.match(flag.err, /xdplb-controller: --metrics-address 0\.0\.0\.0:9642 is not on loopback/);
    const fromEnv = run(CONTROLLER, ['--metrics-address', '0.0.0.0:9642'], { XDPLB_METRICS_AUTH: 'none' });
    assert.equal(fromEnv.code, 2, fromEnv.err);
    assert.match(fromEnv.err, /not on loopback/);
  });

  test('an unknown mode: exit 2', () => {
    const r = run(CONTROLLER, ['--metrics-auth', 'token']);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /--metrics-auth must be one of none, kubernetes, not "token"/);
  });

  test('the usage names the flag', () => {
    const r = spawnSync(process.execPath, [CONTROLLER, '--help'], { encoding: 'utf8' });
    assert.match(r.stdout, /--metrics-auth MODE/);
  });
});

describe('the backend agent refuses open /metrics off loopback', () => {
  test('--metrics-auth none on 0.0.0.0: exit 2; kubernetes with a file (no API server): exit 2', () => {
    const open = run(AGENT, ['--mode', 'backend', '--node-name', 'node-a', '--metrics-address', '0.0.0.0:9643']);
    assert.equal(open.code, 2, open.err);
    assert.match(open.err, /--metrics-address 0\.0\.0\.0:9643 is not on loopback/);
    const file = run(AGENT, ['--mode', 'backend', '--config', '/nonexistent.yaml', '--metrics-auth', 'kubernetes']);
    assert.equal(file.code, 2, file.err);
    assert.match(file.err, /--metrics-auth kubernetes needs cluster mode/);
  });
});
