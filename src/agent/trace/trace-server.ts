/**
 * The agent's trace endpoint: GET /trace streams the session's records as
 * JSON lines until the client goes, `count` packets or `seconds` have passed.
 * It listens on loopback only: records hold packet bytes, and opening a
 * session changes what the program does. Remote users reach it through the
 * API server (port-forward), which checks their RBAC.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { parseTraceRequest, TRACE_ENDPOINT, type TraceEnd, type TraceLine, type TraceRequest } from '../../api/trace.js';
import { TraceFilterError } from '../../api/trace-filter.js';
import { componentLog } from '../../lib/log.js';
import { parseHostPort } from '../../lib/metrics-server.js';
import { TraceLimitError } from './trace-rules.js';
import type { Tracer } from './tracer.js';

const log = componentLog('trace-server');

/** Events buffered for a client that reads slower than packets come: beyond it, they are counted and dropped. */
const MAX_CLIENT_BACKLOG_BYTES = 4 << 20;
const MS_PER_S = 1000;
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** What the endpoint needs of the agent's Tracer (tests serve it with a stand-in). */
export type TraceSessions = Pick<Tracer, 'open' | 'selected' | 'defaultRate'>;

function handle(tracer: TraceSessions, node: string, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://agent');
  if (url.pathname !== TRACE_ENDPOINT || req.method !== 'GET') {
    res.writeHead(404).end(`try GET ${TRACE_ENDPOINT}?vip=ADDRESS[:PORT[/PROTO]]&client=CIDR&port=N&rate=N&count=N&seconds=N\n`);
    return;
  }
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
    const status = err instanceof TraceFilterError ? 400 : err instanceof TraceLimitError ? 409 : 500;
    res.writeHead(status, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`);
    return;
  }
  if (request.seconds !== undefined) timer = setTimeout(end, request.seconds * MS_PER_S);
  res.on('close', end);
}

/** Serves /trace on HOST:PORT (loopback). */
export function serveTrace(tracer: TraceSessions, address: string, node: string): Promise<Server> {
  const { host, port } = parseHostPort(address);
  if (!LOOPBACK.has(host)) {
    throw new Error(`trace address ${address} is not on loopback: records hold packet bytes and /trace has no authentication; ` +
      'use 127.0.0.1 or [::1] and reach it through kubectl port-forward or xdplb trace --node');
  }
  const server = createServer((req, res) => handle(tracer, node, req, res));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      log.info({ address }, 'serving /trace');
      resolve(server);
    });
  });
}
