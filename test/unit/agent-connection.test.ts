/**
 * How xdplb trace talks to an agent's HTTPS endpoint: only to a server whose
 * certificate has the fingerprint the agent published, and nothing (no
 * token) is sent to any other. Real TLS on loopback, the agent's own
 * certificate code (src/lib/serving-tls.ts).
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { agentRequest, localAgent } from '../../src/cli/agent-connection.js';
import { createEndpointServer, servingTls } from '../../src/lib/serving-tls.js';

const tls = servingTls({ commonName: 'xdplb-agent test', ipAddresses: ['127.0.0.1'] });
const seen: IncomingHttpHeaders[] = [];
let server: Server;
let url: string;

before(async () => {
  server = createEndpointServer(tls, (req, res) => {
    seen.push(req.headers);
    res.writeHead(200).end('ok\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server?.close());

async function body(res: import('node:http').IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of res) text += String(chunk);
  return text;
}

test('the published fingerprint: the request goes through, with the token', async () => {
  seen.length = 0;
  const res = await agentRequest(localAgent(url, tls.fingerprint256), '/trace?x=1', 'secret-token');
  assert.equal(res.statusCode, 200);
  assert.equal(await body(res), 'ok\n');
  assert.equal(seen[0]?.authorization, 'Bearer secret-token');
});

test('another certificate: refused before anything is sent, saying both fingerprints', async () => {
  seen.length = 0;
  const other = servingTls({ commonName: 'someone else', ipAddresses: ['127.0.0.1'] }).fingerprint256;
  await assert.rejects(agentRequest(localAgent(url, other), '/trace', 'secret-token'),
    (err: Error) => err.message.includes(tls.fingerprint256) && err.message.includes(other) && /token was not sent/.test(err.message));
  assert.deepEqual(seen, [], 'the server saw no request');
});

test('https without a fingerprint is refused: nothing to check the certificate against', async () => {
  await assert.rejects(agentRequest(localAgent(url), '/trace', 'secret-token'), /give the certificate's fingerprint/);
});

test('given files: both or neither, and a file that holds no certificate is named', () => {
  assert.throws(() => servingTls({ commonName: 'x', certFile: '/dev/null' }), /give both --tls-cert-file and --tls-key-file/);
  assert.throws(() => servingTls({ commonName: 'x', certFile: '/dev/null', keyFile: '/dev/null' }), /\/dev\/null holds no PEM certificate/);
});
