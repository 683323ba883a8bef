/**
 * Started outside a pod with no kubeconfig, the controller and the agent say
 * so and exit 2, rather than retrying "https://undefined:undefined" forever
 * with /readyz at 200. No API server is involved: nothing gets that far.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadKubeConfig } from '../../src/lib/kube-config.js';

const DIST = fileURLToPath(new URL('../../', import.meta.url));

test('no kubeconfig and no pod: an error naming what to give', () => {
  const none = join(tmpdir(), 'xdplb-no-such-token');
  assert.throws(() => loadKubeConfig(undefined, {}, none),
    /^Error: no cluster to talk to: no kubeconfig, and not in a pod \(KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT unset\); give --kubeconfig FILE or set KUBECONFIG$/);
  assert.throws(() => loadKubeConfig(undefined, { KUBERNETES_SERVICE_HOST: '198.18.240.1', KUBERNETES_SERVICE_PORT: '443' }, none),
    /not in a pod \(no service account token at .*xdplb-no-such-token\)/);
  assert.throws(() => loadKubeConfig('/nonexistent/kubeconfig', {}, none), /the kubeconfig \/nonexistent\/kubeconfig does not exist/);
  const dir = mkdtempSync(join(tmpdir(), 'xdplb-kubeconfig-'));
  const empty = join(dir, 'kubeconfig');
  writeFileSync(empty, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
  assert.throws(() => loadKubeConfig(empty, {}, none), /has no current context with a cluster/);
});

for (const [name, main] of [['xdplb-controller', 'src/controller/main.js'], ['xdplb-agent', 'src/agent/main.js']] as const) {
  test(`${name} outside a pod without a kubeconfig exits 2 and says why`, () => {
    const env = { PATH: process.env.PATH ?? '' }; // no KUBECONFIG, no KUBERNETES_SERVICE_*
    const r = spawnSync(process.execPath, [join(DIST, main), ...(name === 'xdplb-agent' ? ['run', '--node-name', 'n1'] : [])], { env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^${name}: no cluster to talk to: .*give --kubeconfig FILE or set KUBECONFIG`));
  });
}
