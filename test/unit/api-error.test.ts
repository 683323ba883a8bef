/**
 * Failed API requests as a log line reads them: the server's message, code
 * and reason, not the client's nested, escaped JSON. The exceptions are the
 * client's own class, with bodies as the API server sends them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { apiError, errorFields, goneOrThrow, isNamespaceTerminating } from '../../src/lib/api-error.js';

const status = (code: number, reason: string, message: string, causes?: { reason: string; message: string }[]) =>
  JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code, ...(causes ? { details: { causes } } : {}) });

test('an ApiException logs as the server message, code and reason', () => {
  const message = 'DaemonSet.apps "xdplb-agent-x" is invalid: metadata.labels: Invalid value: "a b": a valid label must be ...';
  const err = new ApiException(422, 'Unknown API Status Code!', status(422, 'Invalid', message), { 'content-type': 'application/json' });
  assert.match(err.message, /Body: "\{\\"kind\\"/, 'the client nests the body, escaped: what the log showed');
  assert.deepEqual(errorFields(err), { err: message, code: 422, reason: 'Invalid' });
});

test('a body without a Status, and errors that are not the API server’s', () => {
  assert.deepEqual(errorFields(new ApiException(401, 'Unauthorized', undefined, {})), { err: 'Unauthorized', code: 401 });
  assert.deepEqual(errorFields(new ApiException(502, 'Unknown API Status Code!', 'Bad Gateway', {})), { err: 'Bad Gateway', code: 502 });
  assert.deepEqual(errorFields(new Error('connect ECONNREFUSED 127.0.0.1:6443')), { err: 'connect ECONNREFUSED 127.0.0.1:6443' });
  assert.deepEqual(apiError('a string').message, 'a string');
});

test('a namespace being deleted is told apart from other refusals', () => {
  // What kube-apiserver 1.34 answers for a create in a terminating namespace (test/e2e/controller-edges.test.ts meets it for real).
  const terminating = new ApiException(403, 'Unknown API Status Code!', status(403, 'Forbidden',
    'events "web.1" is forbidden: unable to create new content in namespace shop because it is being terminated',
    [{ reason: 'NamespaceTerminating', message: 'namespace shop is being terminated' }]), {});
  assert.ok(isNamespaceTerminating(terminating));
  assert.equal(goneOrThrow(terminating), false);
  assert.equal(goneOrThrow(new ApiException(404, 'Unknown API Status Code!', status(404, 'NotFound', 'not found'), {})), false);
  const rbac = new ApiException(403, 'Unknown API Status Code!', status(403, 'Forbidden', 'events is forbidden: User "x" cannot create resource "events"'), {});
  assert.ok(!isNamespaceTerminating(rbac));
  assert.throws(() => goneOrThrow(rbac), (e) => e === rbac);
});
