/**
 * The HTTP endpoint of a daemon: /metrics for Prometheus, /healthz and /readyz for the kubelet.
 * With a reviewer, /metrics answers only a bearer token whose owner may `get /metrics`
 * (a SubjectAccessReview on that non-resource URL, as kube-rbac-proxy asks); /healthz and
 * /readyz stay open: the kubelet's probes send no token, and they tell only ok or why not ready.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { AccessDenied, type AccessReviewer, callerOf, check, describeAccess, type PathAccess } from './access-review.js';
import { componentLog } from './log.js';
import { createEndpointServer, type ServingTls } from './serving-tls.js';

const log = componentLog('metrics-server');

export function parseHostPort(address: string): { host: string; port: number } {
  const idx = address.lastIndexOf(':');
  const host = address.slice(0, idx).replace(/^\[|\]$/g, '') || '0.0.0.0';
  const port = Number(address.slice(idx + 1));
  if (idx < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`address "${address}" is not HOST:PORT`);
  }
  return { host, port };
}

export const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', '::1', 'localhost']);

export const METRICS_ACCESS: PathAccess = { verb: 'get', path: '/metrics' };

/** Answers a refused request; true when it was refused. */
export async function refused(reviewer: AccessReviewer | undefined, req: IncomingMessage, res: ServerResponse, access: PathAccess): Promise<boolean> {
  if (!reviewer) return false;
  try {
    const caller = await callerOf(reviewer, req);
    if (await check(reviewer, caller, access)) return false;
    throw new AccessDenied(403, `${caller.username} may not ${describeAccess(access)}`);
  } catch (err) {
    const status = err instanceof AccessDenied ? err.status : 500;
    const headers: Record<string, string> = { 'content-type': 'text/plain' };
    if (status === 401) headers['www-authenticate'] = 'Bearer realm="xdplb"';
    res.writeHead(status, headers).end(`${(err as Error).message}\n`);
    return true;
  }
}

export interface MetricsServerOptions {
  /** Checks /metrics callers; without it /metrics is open (keep such an address on loopback). */
  reviewer?: AccessReviewer;
  /** Serve HTTPS with it (callers send bearer tokens: required with a reviewer beyond loopback). */
  tls?: ServingTls;
}

/** `ready()` returns null when ready, else why not. */
export function serveMetrics(registry: Registry, address: string, ready: () => string | null, opts: MetricsServerOptions = {}): Promise<Server> {
  const { host, port } = parseHostPort(address);
  const server = createEndpointServer(opts.tls, async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      if (await refused(opts.reviewer, req, res, METRICS_ACCESS)) return;
      registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
        (err: Error) => res.writeHead(500).end(`metrics failed: ${err.message}\n`),
      );
    } else if (path === '/healthz') {
      res.writeHead(200).end('ok\n');
    } else if (path === '/readyz') {
      const why = ready();
      res.writeHead(why === null ? 200 : 503).end(why === null ? 'ready\n' : `${why}\n`);
    } else {
      res.writeHead(404).end('try /metrics, /healthz or /readyz\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      log.info({ address, authenticated: !!opts.reviewer, tls: !!opts.tls }, 'serving metrics');
      resolve(server);
    });
  });
}
