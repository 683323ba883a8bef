/** Standalone mode: the file's healthCheck block, and unhealthy reals programmed at weight 0 by the agent itself. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalHealth } from '../../../src/agent/health/local-health.js';
import type { Prober } from '../../../src/agent/health/prober.js';
import type { ProbeTarget } from '../../../src/agent/health/prober.js';
import { ConfigError, parseStandaloneConfig, toVipSpecs } from '../../../src/agent/sources/standalone-config.js';
import type { VipSpec } from '../../../src/agent/dataplane/desired-state.js';

const FILE = `
vips:
  - name: web
    address: 198.19.0.10
    ports: [{ port: 80 }, { port: 53, protocol: UDP }]
    healthCheck: { intervalSeconds: 5, timeoutSeconds: 1, unhealthyThreshold: 2 }
    reals: [{ address: 198.18.31.2 }, { address: 198.18.32.2 }, { address: 198.18.33.2, weight: 0 }]
  - name: dns
    address: 198.19.0.11
    ports: [{ port: 53, protocol: UDP }]
    reals: [{ address: 198.18.31.2 }]
`;

test('the healthCheck block is checked as the CRD checks it', () => {
  const [web] = parseStandaloneConfig(FILE, 'f');
  assert.deepEqual(web!.healthCheck, { intervalSeconds: 5, timeoutSeconds: 1, unhealthyThreshold: 2 });
  assert.throws(() => parseStandaloneConfig(FILE.replace('timeoutSeconds: 1', 'timeoutSeconds: 5'), 'f'),
    (e: ConfigError) => e.problems.some((p) => p.path === 'vips[0].healthCheck.timeoutSeconds' && /less than intervalSeconds/.test(p.reason)));
  assert.throws(() => parseStandaloneConfig(FILE.replace('unhealthyThreshold: 2', 'unhealthyThreshold: 0, colour: red'), 'f'),
    (e: ConfigError) => e.problems.length === 2);
});

test('every real taking new flows of a VIP with a TCP port is probed; an unhealthy one is programmed at weight 0 until it is healthy again', async () => {
  const vips = parseStandaloneConfig(FILE, 'f');
  let targets: ProbeTarget[] = [];
  const prober = { setTargets: (t: ProbeTarget[]) => { targets = t; }, close: () => undefined } as unknown as Prober;
  const programmed: VipSpec[][] = [];
  const agent = { accept: () => ({ accepted: [], refused: new Map(), general: [] }), setVips: (v: VipSpec[]) => { programmed.push(v); return Promise.resolve(); } };
  const local = new LocalHealth(agent, prober);
  local.setFile(vips);
  assert.deepEqual(targets.map((t) => `${t.vipName} ${t.real} ${t.check.port} ${t.check.intervalMs}/${t.check.timeoutMs} ${t.check.unhealthyThreshold}/${t.check.healthyThreshold}`),
    ['web 198.18.31.2 80 5000/1000 2/2', 'web 198.18.32.2 80 5000/1000 2/2'], 'the weight-0 real and the UDP-only VIP are not probed');
  await local.setVips(toVipSpecs(vips));
  local.changed('web', '198.18.32.2', false);
  const weights = (specs: VipSpec[]) => specs.filter((s) => s.address === '198.19.0.10').map((s) => s.reals.map((r) => r.weight));
  assert.deepEqual(weights(programmed.at(-1)!), [[1, 0, 0], [1, 0, 0]], 'both ports of the VIP: the real at weight 0');
  assert.deepEqual(programmed.at(-1)!.find((s) => s.address === '198.19.0.11')!.reals.map((r) => r.weight), [1], 'another VIP with the same real: untouched');
  local.changed('web', '198.18.32.2', true);
  assert.deepEqual(weights(programmed.at(-1)!), [[1, 1, 0], [1, 1, 0]]);
});
