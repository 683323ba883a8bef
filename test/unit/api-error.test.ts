/**
 * Failed API requests as a log line reads them: the server's message, code
 * and reason, not the client's nested, escaped JSON. The exceptions are the
 * client's own class, with bodies as the API server sends them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { apiError, errorFields } from '../../src/lib/api-error.js';

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
