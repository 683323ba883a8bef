/**
 * Where `xdplb trace` finds the agent's trace endpoint, and how it talks to
 * it. An agent in a cluster serves /trace over HTTPS on its node's address
 * with a certificate it made at start, and publishes the address, port and
 * the certificate's fingerprint in its node's entry of the XdpBalancer's
 * status (only that node's agent may write it: the ValidatingAdmissionPolicy
 * in deploy/agent-node-restriction.yaml). `--node` reads that entry and
 * connects there directly: the caller needs no access to pods, only `get`
 * on xdpbalancers and network reach to the node. `--via api-server` reaches
 * the same endpoint through a port-forward to the agent pod instead, for
 * callers outside the node network (pods/portforward in the agents'
 * namespace). Either way the certificate must have the published
 * fingerprint before the caller's bearer token is sent.
 */
import { once } from 'node:events';
import { get, type IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { CoreV1Api, CustomObjectsApi, type KubeConfig, PortForward } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../api/loadbalancervip.js';
import { type AgentEndpointsStatus, XDPB_PLURAL, type XdpBalancer } from '../api/xdpbalancer.js';
import { AGENT_APP, BALANCER_LABEL, TRACE_PORT_NAME } from '../api/agent-pod.js';

export interface AgentEndpoint {
  /** Base URL of the trace endpoint. */
  url: string;
  /** The certificate's SHA-256 fingerprint an https URL must present. */
  fingerprint256?: string;
  describe: string;
  close(): void;
}

/**
 * The bearer token of the kubeconfig's user (a token, an exec plugin's or
 * an OIDC provider's), undefined for one that has none (a client certificate).
 */
export async function kubeconfigBearer(kc: KubeConfig): Promise<string | undefined> {
  const opts: { headers?: Record<string, string> } = { headers: {} };
  await kc.applyToHTTPSOptions(opts);
  const m = /^Bearer\s+(\S+)$/i.exec(opts.headers?.Authorization ?? opts.headers?.authorization ?? '');
  return m?.[1];
}

export function localAgent(url: string, fingerprint256?: string): AgentEndpoint {
  return { url: url.replace(/\/$/, ''), fingerprint256, describe: url, close: () => undefined };
}

/** What the node's agent published: its address, trace port and certificate fingerprint. */
export async function publishedEndpoints(kc: KubeConfig, balancer: string, node: string): Promise<AgentEndpointsStatus & { tracePort: number }> {
  const api = kc.makeApiClient(CustomObjectsApi);
  const b = (await api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: XDPB_PLURAL, name: balancer })
    .catch((err: Error & { code?: number }) => {
      const why = err.code === 404 ? 'not found'
        : err.code === 403 ? 'forbidden: reading it needs the xdplb-trace-endpoints role (deploy/rbac-trace.yaml)' : err.message;
      throw new Error(`XdpBalancer ${balancer}: ${why}`);
    })) as XdpBalancer;
  const entry = b.status?.nodes?.find((n) => n.node === node);
  const ep = entry?.endpoints;
  if (!ep?.tracePort) {
    const nodes = (b.status?.nodes ?? []).filter((n) => n.endpoints?.tracePort).map((n) => n.node);
    throw new Error(`the agent of XdpBalancer ${balancer} on node ${node} has published no trace endpoint ` +
      `(${entry ? 'its status entry has none: an agent without --trace-auth kubernetes, or too old' : 'no status entry for that node'}); ` +
      `nodes that have: ${nodes.join(', ') || 'none'}`);
  }
  return { ...ep, tracePort: ep.tracePort };
}

export async function agentOnNode(kc: KubeConfig, opts: { node: string; balancer: string }): Promise<AgentEndpoint> {
  const ep = await publishedEndpoints(kc, opts.balancer, opts.node);
  const host = ep.address.includes(':') ? `[${ep.address}]` : ep.address;
  return { url: `https://${host}:${ep.tracePort}`, fingerprint256: ep.certificateSHA256, describe: `${opts.node} (${host}:${ep.tracePort})`,
    close: () => undefined };
}

/** The same endpoint through the API server: a port-forward to the agent pod's trace port. */
export async function agentViaApiServer(kc: KubeConfig, opts: { node: string; namespace: string; balancer: string }): Promise<AgentEndpoint> {
  const ep = await publishedEndpoints(kc, opts.balancer, opts.node);
  const core = kc.makeApiClient(CoreV1Api);
  const selector = `app.kubernetes.io/name=${AGENT_APP},${BALANCER_LABEL}=${opts.balancer}`;
  const pods = await core.listNamespacedPod({
    namespace: opts.namespace,
    labelSelector: selector,
    fieldSelector: `spec.nodeName=${opts.node}`,
  });
  const pod = pods.items.find((p) => p.status?.phase === 'Running');
  if (!pod) {
    throw new Error(`no running agent pod of balancer "${opts.balancer}" on node ${opts.node} in namespace ${opts.namespace} ` +
      `(pods with ${selector}: ${pods.items.map((p) => `${p.metadata?.name} ${p.status?.phase}`).join(', ') || 'none'})`);
  }
  const tracePort = pod.spec?.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === TRACE_PORT_NAME)?.containerPort ?? ep.tracePort;
  const podName = pod.metadata!.name!;
  const forward = new PortForward(kc, true);
  const server: Server = createServer((socket) => {
    forward.portForward(opts.namespace, podName, [tracePort], socket, null, socket).catch((err: Error) => {
      process.stderr.write(`xdplb trace: port-forward to ${opts.namespace}/${podName} failed: ${err.message}\n`);
      socket.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('port-forward listener has no port');
  return {
    url: `https://127.0.0.1:${address.port}`,
    fingerprint256: ep.certificateSHA256,
    describe: `${opts.namespace}/${podName} on ${opts.node} (via the API server)`,
    close: () => server.close(),
  };
}

/** The server's certificate is not the one its agent published: nothing was sent to it. */
export class CertificateMismatch extends Error {}

/** A TLS connection whose certificate has the fingerprint; refused (nothing sent) otherwise. */
async function pinnedTls(host: string, port: number, fingerprint256: string): Promise<TLSSocket> {
  // The certificate is self-signed and pinned: the fingerprint, read from the API server, is the trust.
  const socket = tlsConnect({ host, port, rejectUnauthorized: false });
  try {
    await once(socket, 'secureConnect');
  } catch (err) {
    socket.destroy();
    throw err;
  }
  const seen = socket.getPeerCertificate().fingerprint256;
  if (seen?.toUpperCase() !== fingerprint256.toUpperCase()) {
    socket.destroy();
    throw new CertificateMismatch(`${host}:${port} presented a certificate with SHA-256 fingerprint ${seen ?? 'none'}, ` +
      `not the ${fingerprint256} its agent published: the token was not sent`);
  }
  return socket;
}

/** GET path on the endpoint with the bearer token; an https endpoint must present its fingerprint first. */
export async function agentRequest(endpoint: AgentEndpoint, path: string, token: string | undefined): Promise<IncomingMessage> {
  const url = new URL(path, `${endpoint.url}/`);
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  if (url.protocol === 'https:') {
    if (!endpoint.fingerprint256) {
      throw new Error(`${endpoint.url} is https: give the certificate's fingerprint (--fingerprint), or use --node NODE, which reads it`);
    }
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const socket = await pinnedTls(host, Number(url.port || 443), endpoint.fingerprint256);
    // HTTP over the TLS socket already checked: node:http takes it through createConnection (with no agent: an
    // agent, even agent: false, would open its own connection).
    return new Promise((resolve, reject) => {
      get({ host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, headers, createConnection: () => socket }, resolve)
        .on('error', reject);
    });
  }
  return new Promise((resolve, reject) => {
    get(url, { headers }, resolve).on('error', reject);
  });
}
