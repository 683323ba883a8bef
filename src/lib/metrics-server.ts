/** The HTTP endpoint of a daemon: /metrics for Prometheus, /healthz and /readyz for the kubelet. */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { componentLog } from './log.js';

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

/** `ready()` returns null when ready, else why not. */
export function serveMetrics(registry: Registry, address: string, ready: () => string | null): Promise<Server> {
  const { host, port } = parseHostPort(address);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
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
      log.info({ address }, 'serving metrics');
      resolve(server);
    });
  });
}
