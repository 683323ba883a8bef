/**
 * What `xdplb trace` sends the agent as its bearer token: the kubeconfig
 * user's own (the agent reviews it), none for a user with a client
 * certificate (the CLI then says to give --token).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { kubeconfigBearer } from '../../src/cli/agent-connection.js';

const config = (user: object) => {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://198.18.0.1:6443', skipTLSVerify: true }],
    users: [{ name: 'u', ...user }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
};

test("the kubeconfig user's token is what the CLI sends; a client-certificate user has none", async () => {
  assert.equal(await kubeconfigBearer(config({ token: 'abc123' })), 'abc123');
  assert.equal(await kubeconfigBearer(config({ certData: 'Y2VydA==', keyData: 'a2V5' })), undefined);
});
