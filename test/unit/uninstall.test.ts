/**
 * What a stopping cluster-mode agent does, from the GET of its XdpBalancer:
 * gone or being deleted is an uninstall (detach); present is a restart or
 * update (stay); no answer is unknown (stay, and say how to clean up).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { decideOnExit, withRemovalSeen } from '../../src/agent/sources/uninstall.js';

const AT = { nic: 'eth0', pinDir: '/sys/fs/bpf/xdplb/edge' };
const CLEANUP = 'xdplb-agent cleanup --nic eth0 --pin-dir /sys/fs/bpf/xdplb/edge';
const apiError = (code: number) => new ApiException(code, `HTTP-Code: ${code}`, '', {});

describe('decideOnExit', () => {
  test('gone (404, also when the CRD is gone): detach, and say why', () => {
    const d = decideOnExit('edge', { error: apiError(404) }, AT);
    assert.equal(d.detach, true);
    assert.equal(d.level, 'info');
    assert.match(d.message, /XdpBalancer edge is gone/);
  });

  test('being deleted (deletionTimestamp set, held by a finalizer): detach', () => {
    const d = decideOnExit('edge', { object: { metadata: { name: 'edge', deletionTimestamp: '2026-01-02T03:04:05Z' } } }, AT);
    assert.equal(d.detach, true);
    assert.match(d.message, /XdpBalancer edge is being deleted/);
  });

  test('present and not being deleted: stay attached for the next agent', () => {
    const d = decideOnExit('edge', { object: { metadata: { name: 'edge' } } }, AT);
    assert.equal(d.detach, false);
    assert.equal(d.level, 'info');
  });

  test('no answer (403, 500, timeout, connection refused): stay attached, warn with the cleanup command', () => {
    const refused = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    for (const [error, named] of [
      [apiError(403), 'HTTP 403'],
      [apiError(500), 'HTTP 500'],
      [new Error('no answer within 3000 ms'), 'no answer within 3000 ms'],
      [refused, 'ECONNREFUSED'],
      [null, 'null'],
    ] as const) {
      const d = decideOnExit('edge', { error }, AT);
      assert.equal(d.detach, false, named);
      assert.equal(d.level, 'warn', named);
      assert.ok(d.message.includes(named), `${named}: ${d.message}`);
      assert.ok(d.message.includes(CLEANUP), d.message);
    }
  });
});

describe('withRemovalSeen', () => {
  const unreadable = decideOnExit('edge', { error: apiError(403) }, AT);
  test('an agent that cannot read the API but saw its DaemonSet go detaches', () => {
    const d = withRemovalSeen(unreadable, 'DaemonSet xdplb-agent-edge was deleted');
    assert.equal(d.detach, true);
    assert.match(d.message, /could not read XdpBalancer edge \(HTTP 403\), but DaemonSet xdplb-agent-edge was deleted while this agent ran: detaching/);
  });
  test('nothing seen: it stays, as before; a decision the API made is never overridden', () => {
    assert.equal(withRemovalSeen(unreadable, null), unreadable);
    const stay = decideOnExit('edge', { object: { metadata: { name: 'edge' } } }, AT);
    assert.equal(withRemovalSeen(stay, 'XdpBalancer edge was deleted'), stay, 'the API said the balancer exists: a stale watch event does not overrule it');
  });
});
