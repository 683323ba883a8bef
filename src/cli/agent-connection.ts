/**
 * Where `xdplb trace` finds the agent's trace endpoint: a URL on this node,
 * or the agent pod of a node reached through the API server (port-forward:
 * pods/portforward in the agents' namespace), and the bearer token it sends
 * there. The port-forward tunnel is plain TCP from this process to the
 * agent's loopback, so the user's own Authorization header reaches the agent
 * unchanged (the API server's pod and service proxies drop it); the agent
 * reviews the token and authorizes the filter per VIP namespace.
 */
import { createServer, type Server } from 'node:net';
import { CoreV1Api, type KubeConfig, PortForward } from '@kubernetes/client-node';
import { tracePortFor } from '../api/xdpbalancer.js';
import { AGENT_APP, BALANCER_LABEL, METRICS_PORT_NAME } from '../api/agent-pod.js';

export interface AgentEndpoint {
  /** Base URL of the trace endpoint. */
  url: string;
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

export function localAgent(url: string): AgentEndpoint {
  return { url: url.replace(/\/$/, ''), describe: url, close: () => undefined };
}

export async function agentOnNode(kc: KubeConfig, opts: { node: string; namespace: string; balancer: string }): Promise<AgentEndpoint> {
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
  const metricsPort = pod.spec?.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === METRICS_PORT_NAME)?.containerPort;
  if (!metricsPort) throw new Error(`agent pod ${pod.metadata!.name} has no port named "${METRICS_PORT_NAME}"`);
  const podName = pod.metadata!.name!;
  const forward = new PortForward(kc, true);
  const server: Server = createServer((socket) => {
    forward.portForward(opts.namespace, podName, [tracePortFor(metricsPort)], socket, null, socket).catch((err: Error) => {
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
    url: `http://127.0.0.1:${address.port}`,
    describe: `${opts.namespace}/${podName} on ${opts.node} (via the API server)`,
    close: () => server.close(),
  };
}
