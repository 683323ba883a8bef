/**
 * `xdplb-agent --mode backend`: the backend node's daemon. Follows a source
 * of desired backends (the cluster's LoadBalancerVips with delivery Node, or
 * a file), keeps a BackendAgent equal to it, and serves /metrics, /healthz
 * and /readyz. On SIGTERM it stops following and leaves programs, links and
 * maps in place for the next agent to adopt (no gap in a rolling update),
 * unless its DaemonSet was seen deleted (an uninstall) or --detach-on-exit
 * says so: then it removes everything.
 */
import type { Server } from 'node:http';
import type { AccessReviewer } from '../../lib/access-review.js';
import { serveMetrics } from '../../lib/metrics-server.js';
import type { ServingTls } from '../../lib/serving-tls.js';
import { componentLog } from '../../lib/log.js';
import { BackendAgent } from './backend-agent.js';
import { backendMetrics } from './backend-metrics.js';
import type { BackendSource } from './backend-sources.js';
import type { PodBackend } from './service-plan.js';

const log = componentLog('backend-mode');

/** The bpffs directory of the backend object: apart from the balancers' /sys/fs/bpf/xdplb/<balancer>. */
export const DEFAULT_BACKEND_PIN_DIR = '/sys/fs/bpf/xdplb-backend';
/** Balancer agents use 9641 (metrics) and 9642 (trace, loopback) on the host network; the controller 9642 in its pod. */
export const DEFAULT_BACKEND_METRICS_PORT = 9643;
/** deploy/backend.yaml's DaemonSet: seen deleted, the agent leaves nothing behind. */
export const BACKEND_DAEMONSET = 'xdplb-backend';

export interface BackendModeOptions {
  pinDir: string;
  drainSeconds: number;
  metricsAddress: string;
  /** Checks /metrics callers (--metrics-auth kubernetes); without it /metrics is open. */
  metricsReviewer?: AccessReviewer;
  /** Serve /metrics over HTTPS with it (with a reviewer). */
  metricsTls?: ServingTls;
  /** Remove everything (links detached, pins removed) on stop. */
  detachOnExit: boolean;
  /** Asked on stop: why no backend agent will run on this node again (its DaemonSet deleted), or null. */
  removal?: () => Promise<string | null>;
  pollMs?: number;
  /** Node addressing: the devices the from-NIC program goes on (default: those carrying the node addresses). */
  nics?: readonly string[];
}

export interface RunningBackend {
  agent: BackendAgent;
  server: Server;
  /** Stops following; with detachOnExit, also detaches and unpins. */
  stop(): Promise<void>;
}

const MS_PER_S = 1000;

/** Opens the backend object, applies the source's first list, and follows it. */
export async function runBackendMode(source: BackendSource, opts: BackendModeOptions): Promise<RunningBackend> {
  // A bad file fails before the kernel is touched.
  const first = await source.start().catch(async (err: unknown) => {
    await source.stop();
    throw err;
  });
  const agent = BackendAgent.open({ pinDir: opts.pinDir, drainMs: opts.drainSeconds * MS_PER_S, pollMs: opts.pollMs, nics: opts.nics });
  let desired: PodBackend[] = first;
  let applied = 0;
  const registry = backendMetrics(agent, () => desired.length, () => applied);
  const apply = async (backends: PodBackend[]) => {
    desired = backends;
    await agent.setBackends(backends);
    applied++;
  };
  let server: Server;
  try {
    server = await serveMetrics(registry, opts.metricsAddress, () => (applied > 0 ? null : 'the first backends are not applied yet'),
      { reviewer: opts.metricsReviewer, tls: opts.metricsTls });
  } catch (err) {
    await agent.stop();
    await source.stop();
    throw err;
  }
  await apply(first).catch((err: Error) => log.warn({ err: err.message }, 'first backend pass failed; retrying at the next pass'));
  source.follow(apply);
  agent.start();
  log.info({ ...source.describe(), pinDir: opts.pinDir, backends: first.length, refused: agent.refused().length }, `xdplb-agent running (backend, ${source.mode})`);
  return {
    agent,
    server,
    async stop() {
      await source.stop();
      server.close();
      const removal = (await opts.removal?.()) ?? null;
      if (removal) log.info({ removal }, 'xdplb is being removed from this node: detaching from the pods and unpinning');
      if (opts.detachOnExit || removal) await agent.remove();
      else await agent.stop();
    },
  };
}
