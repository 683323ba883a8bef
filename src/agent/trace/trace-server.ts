/**
 * The agent's trace endpoint: GET /trace streams the session's records as
 * JSON lines until the client goes, `count` packets or `seconds` have passed.
 * Records hold packet bytes, and opening a session changes what the program
 * does. With authorization (trace-access.ts) the caller's bearer token is
 * reviewed and the filter authorized per VIP namespace, and each caller has
 * a quota; without it, it listens on loopback only. Remote users reach it
 * through the API server (port-forward), sending their own token.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { parseTraceRequest, TRACE_ENDPOINT, type TraceEnd, type TraceLine, type TraceRequest } from '../../api/trace.js';
import { TraceFilterError } from '../../api/trace-filter.js';
import { componentLog } from '../../lib/log.js';
import { parseHostPort } from '../../lib/metrics-server.js';
import { createEndpointServer, type ServingTls } from '../../lib/serving-tls.js';
import { AccessDenied, callerOf } from '../../lib/access-review.js';
import { authorizeTrace, CallerQuotas, type TraceAuthorization, type TraceGrant, TraceQuotaError } from './trace-access.js';
import { TraceLimitError } from './trace-rules.js';
import type { Tracer } from './tracer.js';

const log = componentLog('trace-server');

/** Events buffered for a client that reads slower than packets come: beyond it, they are counted and dropped. */
const MAX_CLIENT_BACKLOG_BYTES = 4 << 20;
const MS_PER_S = 1000;
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** What the endpoint needs of the agent's Tracer (tests serve it with a stand-in). */
export type TraceSessions = Pick<Tracer, 'open' | 'selected' | 'defaultRate'>;

interface Access {
  auth: TraceAuthorization;
  quotas: CallerQuotas;
}

/** Authenticates, authorizes and takes the caller's quota; answers and returns null when refused. */
async function admit(tracer: TraceSessions, access: Access, req: IncomingMessage, res: ServerResponse):
Promise<{ grant: TraceGrant; release: () => void } | null> {
  try {
    const request = parseTraceRequest(new URL(req.url ?? '/', 'http://agent').searchParams);
    const caller = await callerOf(access.auth.reviewer, req);
    const grant = await authorizeTrace(access.auth.reviewer, caller, request.filter, (f) => tracer.selected(f), access.auth.owners);
    const rules = Math.max(1, tracer.selected(request.filter).length);
    const release = access.quotas.take(caller.username, { rules, rate: request.rate ?? tracer.defaultRate });
    return { grant, release };
  } catch (err) {
    const status = err instanceof AccessDenied ? err.status : err instanceof TraceFilterError ? 400 : err instanceof TraceQuotaError ? 429 : 500;
    const headers: Record<string, string> = { 'content-type': 'text/plain' };
    if (status === 401) headers['www-authenticate'] = 'Bearer realm="xdplb"';
    res.writeHead(status, headers).end(`${(err as Error).message}\n`);
    return null;
  }
}

async function handle(tracer: TraceSessions, node: string, access: Access | null, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://agent');
  if (url.pathname !== TRACE_ENDPOINT || req.method !== 'GET') {
    res.writeHead(404).end(`try GET ${TRACE_ENDPOINT}?vip=ADDRESS[:PORT[/PROTO]]&client=CIDR&port=N&rate=N&count=N&seconds=N\n`);
    return;
  }
  let admitted: { grant: TraceGrant; release: () => void } | null = null;
  if (access) {
    admitted = await admit(tracer, access, req, res);
    if (!admitted) return;
    if (res.destroyed) {
      admitted.release();
      return;
    }
  }
  const grant = admitted?.grant;
  let close: (() => void) | undefined;
  let request: TraceRequest;
  let packets = 0;
  let slowClient = 0;
  let ended = false;
  let timer: NodeJS.Timeout | undefined;
  const send = (line: TraceLine) => res.write(`${JSON.stringify(line)}\n`);
  const end = () => {
    if (ended) return;
    ended = true;
    close?.();
    admitted?.release();
    clearTimeout(timer);
    if (!res.destroyed) res.end(`${JSON.stringify({ type: 'end', packets, slowClient } satisfies TraceEnd)}\n`);
  };
  try {
    request = parseTraceRequest(url.searchParams);
    const { filter, rate } = request;
    close = tracer.open({
      filter,
      rate,
      onEvent: (e) => {
        if (ended) return;
        // VIPs come and go: a record of a VIP this caller was not granted is not theirs.
        if (grant && !grant.clusterWide && !(e.vip !== null && grant.vipIds.has(e.vip))) return;
        if (res.writableLength > MAX_CLIENT_BACKLOG_BYTES) {
          slowClient++;
          return;
        }
        send(e);
        if (++packets === request.count) end();
      },
      onLoss: (loss) => {
        if (!ended) send(loss);
      },
    });
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    send({ type: 'start', node, vips: tracer.selected(filter).map((v) => v.id), rate: rate ?? tracer.defaultRate });
  } catch (err) {
    close?.(); // never leave a session open that nobody reads
    admitted?.release();
    const status = err instanceof TraceFilterError ? 400 : err instanceof TraceLimitError ? 409 : 500;
    res.writeHead(status, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`);
    return;
  }
  if (request.seconds !== undefined) timer = setTimeout(end, request.seconds * MS_PER_S);
  res.on('close', end);
}

/**
 * Serves /trace on HOST:PORT: on loopback only without `auth`; with it, only
 * to callers whose token and RBAC allow what they ask (trace-access.ts).
 */
export function serveTrace(tracer: TraceSessions, address: string, node: string, auth?: TraceAuthorization, tls?: ServingTls): Promise<Server> {
  const { host, port } = parseHostPort(address);
  if (!auth && !LOOPBACK.has(host)) {
    throw new Error(`trace address ${address} is not on loopback: records hold packet bytes and /trace has no authentication; ` +
      'use 127.0.0.1 or [::1] and reach it through kubectl port-forward or xdplb trace --node');
  }
  const access = auth ? { auth, quotas: new CallerQuotas(auth.limits) } : null;
  const server = createEndpointServer(tls, (req, res) => {
    handle(tracer, node, access, req, res).catch((err: Error) => {
      log.error({ err: err.message }, 'trace request failed');
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      log.info({ address, authorized: !!auth, tls: !!tls }, 'serving /trace');
      resolve(server);
    });
  });
}
