/**
 * xdplb trace: asks an agent to trace matching packets and prints what its
 * XDP program did with each one, live, as text or JSON lines, and optionally
 * into a pcap file.
 */
import type { IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { DEFAULT_BALANCER, GROUP, LBVIP_PLURAL, type LoadBalancerVip, VERSION } from '../api/loadbalancervip.js';
import { DEFAULT_METRICS_PORT, tracePortFor } from '../api/xdpbalancer.js';
import { TRACE_ENDPOINT, type TraceEvent, type TraceLine, traceSearchParams } from '../api/trace.js';
import { parsePositiveInt, parseTraceFilter, TraceFilterError } from '../api/trace-filter.js';
import { type AgentEndpoint, agentOnNode, agentRequest, agentViaApiServer, CertificateMismatch, kubeconfigBearer, localAgent } from './agent-connection.js';
import { PcapWriter } from './pcap-writer.js';
import { formatTraceEvent } from './trace-format.js';

export const TRACE_USAGE = `usage: xdplb trace [where] [what] [output]

where (default: the agent on this node, http://127.0.0.1:${tracePortFor(DEFAULT_METRICS_PORT)}):
  --agent URL           the agent's trace endpoint                          (XDPLB_TRACE_URL)
  --fingerprint SHA256  with an https --agent: its certificate's fingerprint (AA:BB:...), checked before the token is sent
  --node NODE           the agent on NODE: its address, port and certificate fingerprint as it published them in
                        the XdpBalancer's status (needs get on xdpbalancers: xdplb-trace-endpoints); direct HTTPS
  --via api-server      with --node: through a port-forward to the agent pod, for a machine that cannot reach
                        the node (needs pods/portforward in the agents' namespace: xdplb-trace-agents)
  --namespace NS        the agents' namespace (--via api-server); default xdplb-system
  --balancer NAME       the XdpBalancer; default "default"
  --kubeconfig FILE     default: KUBECONFIG, else ~/.kube/config
  --token TOKEN         bearer token the agent reviews; default: the kubeconfig user's (XDPLB_TRACE_TOKEN).
                        A user with a client certificate has none: e.g. --token "$(kubectl create token SA)"

The agent (with --trace-auth kubernetes, as deployed) traces a VIP for a user allowed to
"create loadbalancervips/trace" in the VIP's namespace; a trace without --vip (every packet of
the node, host traffic included) needs it in all namespaces (deploy/rbac-trace.yaml).

what (the agent traces packets matching all given; nothing given: every packet):
  --vip SEL             ADDRESS, ADDRESS:PORT, ADDRESS:PORT/PROTO ([IPv6]:PORT), or NAMESPACE/NAME
                        of a LoadBalancerVip (resolved through the API server); repeatable
  --client CIDR         client (source) address or prefix
  --port N              source or destination port
  --rate N              records per second on the node; default 1000 (excess is counted, not recorded)
  --verdict V           print only tx, pass or drop (repeatable; filtered here, not in the agent)
  --reason R            print only this reason, e.g. drop_fragment (repeatable; filtered here)

output:
  --count N             stop after N packets
  --duration SECONDS    stop after this long
  --json                JSON lines (frames included only with --frames)
  --frames              include the frames, base64, in --json output
  --pcap FILE           also write the frames, before and after encapsulation, to a pcap file
`;

const DEFAULT_AGENT_URL = `http://127.0.0.1:${tracePortFor(DEFAULT_METRICS_PORT)}`;
const AGENT_NAMESPACE = 'xdplb-system';

class UsageError extends Error {}

interface TraceArgs {
  vip: string[];
  client?: string;
  port?: string;
  rate?: string;
  count?: string;
  duration?: string;
  verdicts: Set<string>;
  reasons: Set<string>;
  json: boolean;
  frames: boolean;
  pcap?: string;
  agent?: string;
  fingerprint?: string;
  node?: string;
  viaApiServer: boolean;
  namespace: string;
  balancer: string;
  kubeconfig?: string;
  token?: string;
}

function parse(argv: string[]): TraceArgs {
  const { values: v, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      vip: { type: 'string', multiple: true },
      client: { type: 'string' },
      port: { type: 'string' },
      rate: { type: 'string' },
      count: { type: 'string' },
      duration: { type: 'string' },
      verdict: { type: 'string', multiple: true },
      reason: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      frames: { type: 'boolean' },
      pcap: { type: 'string' },
      agent: { type: 'string' },
      fingerprint: { type: 'string' },
      node: { type: 'string' },
      via: { type: 'string' },
      namespace: { type: 'string' },
      balancer: { type: 'string' },
      kubeconfig: { type: 'string' },
      token: { type: 'string' },
    },
  });
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (v.agent && v.node) throw new UsageError('give --agent or --node, not both');
  if (v.via !== undefined && v.via !== 'api-server') throw new UsageError(`--via ${v.via}: the one route is api-server`);
  if (v.via && !v.node) throw new UsageError('--via api-server needs --node');
  if (v.fingerprint && v.node) throw new UsageError('--fingerprint goes with --agent; --node reads the fingerprint its agent published');
  const verdicts = new Set(v.verdict ?? []);
  for (const x of verdicts) if (!['tx', 'pass', 'drop'].includes(x)) throw new UsageError(`--verdict ${x}: use tx, pass or drop`);
  return {
    vip: v.vip ?? [],
    client: v.client,
    port: v.port,
    rate: v.rate,
    count: v.count,
    duration: v.duration,
    verdicts,
    reasons: new Set((v.reason ?? []).map((r) => r.toLowerCase())),
    json: !!v.json,
    frames: !!v.frames,
    pcap: v.pcap,
    agent: v.agent ?? process.env.XDPLB_TRACE_URL,
    fingerprint: v.fingerprint,
    node: v.node,
    viaApiServer: v.via === 'api-server',
    namespace: v.namespace ?? AGENT_NAMESPACE,
    balancer: v.balancer ?? DEFAULT_BALANCER,
    kubeconfig: v.kubeconfig,
    token: v.token ?? process.env.XDPLB_TRACE_TOKEN,
  };
}

let kubeConfig: KubeConfig | undefined;
function kube(args: TraceArgs): KubeConfig {
  if (!kubeConfig) {
    kubeConfig = new KubeConfig();
    if (args.kubeconfig) kubeConfig.loadFromFile(args.kubeconfig);
    else kubeConfig.loadFromDefault();
  }
  return kubeConfig;
}

/** NAMESPACE/NAME of a LoadBalancerVip becomes one selector per port of it; other selectors pass through. */
async function resolveVips(args: TraceArgs): Promise<string[]> {
  const out: string[] = [];
  for (const sel of args.vip) {
    const m = /^([a-z0-9][-a-z0-9]*)\/([a-z0-9][-a-z0-9.]*)$/.exec(sel);
    if (!m) {
      out.push(sel);
      continue;
    }
    const [, namespace, name] = m as unknown as [string, string, string];
    const api = kube(args).makeApiClient(CustomObjectsApi);
    const vip = (await api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: LBVIP_PLURAL, name })
      .catch((err: Error & { code?: number }) => {
        const why = err.code === 404 ? 'not found'
          : err.code === 403 ? `forbidden: reading it needs the xdplb-trace role bound in namespace ${namespace} (deploy/rbac-trace.yaml)`
            : err.message;
        throw new Error(`LoadBalancerVip ${sel}: ${why}`);
      })) as LoadBalancerVip;
    const address = vip.spec.address ?? vip.status?.address;
    if (address === undefined) throw new Error(`LoadBalancerVip ${sel} has no address yet (none given, none assigned: see its AddressAllowed condition)`);
    const addr = address.includes(':') ? `[${address}]` : address;
    out.push(...vip.spec.ports.map((p) => `${addr}:${p.port}/${p.protocol}`));
  }
  return out;
}

/** The token to send: --token, else the kubeconfig user's; none when neither has one (a local agent without authorization needs none). */
async function bearer(args: TraceArgs): Promise<string | undefined> {
  if (args.token) return args.token;
  try {
    return await kubeconfigBearer(kube(args));
  } catch {
    return undefined; // no kubeconfig: fine for a local agent that does not ask
  }
}

async function readBody(res: IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of res) body += String(chunk);
  return body.trim();
}

export async function traceCommand(argv: string[]): Promise<number> {
  let args: TraceArgs;
  try {
    args = parse(argv);
    // Check here what the agent would refuse, with our flag names.
    const selectors = await resolveVips(args);
    parseTraceFilter({ vip: selectors, client: args.client, port: args.port });
    args.vip = selectors;
    parsePositiveInt('--rate', args.rate);
    parsePositiveInt('--count', args.count);
    parsePositiveInt('--duration', args.duration);
  } catch (err) {
    if (err instanceof UsageError || err instanceof TraceFilterError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`xdplb trace: ${(err as Error).message}\n\n${TRACE_USAGE}`);
      return 2;
    }
    process.stderr.write(`xdplb trace: ${(err as Error).message}\n`);
    return 1;
  }

  let endpoint: AgentEndpoint;
  try {
    const where = { node: args.node!, namespace: args.namespace, balancer: args.balancer };
    endpoint = !args.node ? localAgent(args.agent ?? DEFAULT_AGENT_URL, args.fingerprint)
      : args.viaApiServer ? await agentViaApiServer(kube(args), where) : await agentOnNode(kube(args), where);
  } catch (err) {
    process.stderr.write(`xdplb trace: ${(err as Error).message}\n`);
    return 1;
  }
  const q = traceSearchParams({
    vip: args.vip,
    client: args.client,
    port: args.port,
    rate: args.rate,
    count: args.verdicts.size || args.reasons.size ? undefined : args.count, // else counted here
    seconds: args.duration,
  });

  const pcap = args.pcap ? new PcapWriter(args.pcap) : null;
  let printed = 0;
  let rateLimited = 0;
  let ringFull = 0;
  let slowClient = 0;
  let res: IncomingMessage;
  try {
    res = await agentRequest(endpoint, `${TRACE_ENDPOINT}?${q}`, await bearer(args));
  } catch (err) {
    endpoint.close();
    pcap?.close();
    if (err instanceof CertificateMismatch) {
      process.stderr.write(`xdplb trace: ${err.message}. Another server answers at the agent's address, or the agent restarted ` +
        'since it published (wait for its status entry to update and try again).\n');
      return 1;
    }
    process.stderr.write(`xdplb trace: cannot reach the agent at ${endpoint.describe}: ${(err as Error).message}. ` +
      (args.node ? (args.viaApiServer ? '\n' : ' If this machine cannot reach the node, try --via api-server.\n')
        : 'Is xdplb-agent running here (its --trace-address)? For another node use --node NODE.\n'));
    return 1;
  }
  if (res.statusCode !== 200) {
    const body = await readBody(res);
    endpoint.close();
    pcap?.close();
    const hint = res.statusCode === 401 ? (args.token ? '' : ' Your kubeconfig user has no bearer token (a client certificate?): give --token.')
      : res.statusCode === 403 ? ' Ask for the xdplb-trace role in the VIP\'s namespace (deploy/rbac-trace.yaml).' : '';
    process.stderr.write(`xdplb trace: the agent refused: ${body} (HTTP ${res.statusCode})${hint}\n`);
    return res.statusCode === 400 ? 2 : 1;
  }
  const want = parsePositiveInt('--count', args.count);
  const lines = createInterface({ input: res, crlfDelay: Infinity });
  // Closing the reader ends the loop below; destroying the response alone
  // would leave it waiting on a promise that never settles.
  const stop = () => lines.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    for await (const text of lines) {
      if (!text) continue;
      const line = JSON.parse(text) as TraceLine;
      if (line.type === 'start') {
        const vips = args.vip.length ? `; VIPs installed now: ${line.vips.join(', ') || 'none yet'}` : '';
        process.stderr.write(`tracing on ${line.node} (${endpoint.describe}), at most ${line.rate} records/s${vips}\n`);
      } else if (line.type === 'lost') {
        rateLimited += line.rateLimited;
        ringFull += line.ringFull;
      } else if (line.type === 'end') {
        slowClient += line.slowClient;
      } else if (line.type === 'packet') {
        if (!keep(args, line)) continue;
        pcap?.write(line);
        process.stdout.write(`${args.json ? JSON.stringify(args.frames ? line : withoutFrames(line)) : formatTraceEvent(line)}\n`);
        if (++printed === want) break;
      }
    }
  } catch (err) {
    if (!res.destroyed) process.stderr.write(`xdplb trace: ${(err as Error).message}\n`);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    res.destroy();
    endpoint.close();
    pcap?.close();
  }
  const lost = rateLimited + ringFull + slowClient;
  process.stderr.write(`${printed} packets traced${pcap ? `, ${pcap.frames} frames written to ${args.pcap}` : ''}` +
    `${lost ? `; not recorded: ${rateLimited} over the rate limit, ${ringFull} ring full, ${slowClient} slow reader` : ''}\n`);
  return 0;
}

function keep(args: TraceArgs, e: TraceEvent): boolean {
  return (!args.verdicts.size || args.verdicts.has(e.verdict)) && (!args.reasons.size || args.reasons.has(e.reason));
}

function withoutFrames(e: TraceEvent): Omit<TraceEvent, 'frameIn' | 'frameOut'> {
  const { frameIn: _in, frameOut: _out, ...rest } = e;
  return rest;
}
