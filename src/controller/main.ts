#!/usr/bin/env node
/**
 * xdplb-controller: resolves LoadBalancerVip backends into status and owns the
 * agent DaemonSets. Runs as a Deployment; replicas elect a leader on a Lease
 * and only the leader reconciles.
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { errorFields } from '../lib/api-error.js';
import { loadKubeConfig } from '../lib/kube-config.js';
import { componentLog } from '../lib/log.js';
import { KubeAccessReviewer } from '../lib/access-review.js';
import { metricsEndpoint, reviewedEndpointTls } from '../lib/metrics-auth.js';
import { serveMetrics } from '../lib/metrics-server.js';
import { Controller } from './controller.js';
import { ensureDefaultBalancer, ownImage } from './default-balancer.js';
import { ImageAllowlist } from './image-allowlist.js';
import { DEFAULT_LEASE_TIMING, LeaderElector } from './leader-election.js';
import { ControllerMetrics } from './metrics.js';
import { DEFAULT_RESYNC_SECONDS } from './vip-controller.js';

const log = componentLog('controller-main');

/** In the pod network: the balancer agents' 9642 (trace) is on the host's loopback. */
const METRICS_PORT = 9642;

const USAGE = `usage: xdplb-controller [options]

  --namespace NS          namespace of the agent DaemonSets and the Lease; default xdplb-system (POD_NAMESPACE)
  --kubeconfig FILE       default: KUBECONFIG, else the pod's service account (KUBECONFIG)
  --metrics-address A     HOST:PORT of /metrics /healthz /readyz; default 0.0.0.0:${METRICS_PORT} with --metrics-auth
                          kubernetes, else 127.0.0.1:${METRICS_PORT} (XDPLB_METRICS_ADDRESS)
  --metrics-auth MODE     none: /metrics open, the address must be loopback; kubernetes: /metrics only for a
                          bearer token allowed "get /metrics" (TokenReview + SubjectAccessReview; the controller's
                          service account needs system:auth-delegator), any address. /healthz and /readyz stay
                          open for the kubelet. Default none (XDPLB_METRICS_AUTH). With kubernetes it serves HTTPS
  --tls-cert-file F, --tls-key-file F  the certificate of that HTTPS; default: a self-signed one made at start
                          (XDPLB_TLS_CERT_FILE, XDPLB_TLS_KEY_FILE)
  --identity ID           this replica in the Lease and in Events; default the pod name (POD_NAME)
  --lease-name NAME       default xdplb-controller
  --lease-duration S      seconds a leader's lease lasts without renewal; default ${DEFAULT_LEASE_TIMING.leaseDurationSeconds}
  --renew-deadline S      a leader that cannot renew for this long steps down; default ${DEFAULT_LEASE_TIMING.renewDeadlineSeconds}
  --retry-period S        seconds between lease attempts; default ${DEFAULT_LEASE_TIMING.retryPeriodSeconds}
  --no-leader-elect       reconcile without a Lease (one replica only)
  --agent-image IMAGE     image of the "default" XdpBalancer the controller creates when none exists;
                          default: this pod's own image; needed outside a pod (XDPLB_AGENT_IMAGE)
  --no-default-balancer   do not create the "default" XdpBalancer
  --allowed-images LIST   images XdpBalancers may run (their agents are privileged), separated by commas:
                          REPOSITORY (any tag or digest of it), PREFIX/ (every repository under it) or
                          an exact image; a balancer with another image gets no DaemonSet (condition
                          AgentsReady, reason ImageNotAllowed). Default: the repository of --agent-image,
                          else of this pod's own image; outside a pod with neither, none (XDPLB_ALLOWED_IMAGES)
  --serve-services-without-class
                          also serve Services of type LoadBalancer that name no loadBalancerClass (for
                          clusters where xdplb is the only load balancer); default: only class xdplb.dev/xdp
  --resync-period S       seconds between resyncs that reconcile every LoadBalancerVip again (a safety
                          net; events drive the work); default ${DEFAULT_RESYNC_SECONDS}
`;

const DEFAULT_NAMESPACE = 'xdplb-system';
const DEFAULT_LEASE_NAME = 'xdplb-controller';

/** A mistake in how the controller was started: said with the usage, exit code 2. */
class UsageError extends Error {}

function fail(message: string): never {
  process.stderr.write(`xdplb-controller: ${message}\n\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        namespace: { type: 'string' },
        kubeconfig: { type: 'string' },
        'metrics-address': { type: 'string' },
        'metrics-auth': { type: 'string' },
        'tls-cert-file': { type: 'string' },
        'tls-key-file': { type: 'string' },
        identity: { type: 'string' },
        'lease-name': { type: 'string' },
        'lease-duration': { type: 'string' },
        'renew-deadline': { type: 'string' },
        'retry-period': { type: 'string' },
        'no-leader-elect': { type: 'boolean' },
        'agent-image': { type: 'string' },
        'no-default-balancer': { type: 'boolean' },
        'allowed-images': { type: 'string' },
        'resync-period': { type: 'string' },
        'serve-services-without-class': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const env = process.env;
  const seconds = (flag: string, raw: string | undefined, dflt: number): number => {
    if (raw === undefined) return dflt;
    const n = Number(raw);
    if (!(n > 0)) fail(`--${flag} must be a positive number of seconds, not "${raw}"`);
    return n;
  };
  let metricsAt;
  let tls;
  try {
    metricsAt = metricsEndpoint(values['metrics-auth'] ?? env.XDPLB_METRICS_AUTH, values['metrics-address'] ?? env.XDPLB_METRICS_ADDRESS, METRICS_PORT);
    tls = reviewedEndpointTls(metricsAt.auth, { certFile: values['tls-cert-file'] ?? env.XDPLB_TLS_CERT_FILE,
      keyFile: values['tls-key-file'] ?? env.XDPLB_TLS_KEY_FILE }, 'xdplb-controller');
  } catch (err) {
    fail((err as Error).message);
  }
  const namespace = values.namespace ?? env.POD_NAMESPACE ?? DEFAULT_NAMESPACE;
  const identity = values.identity ?? env.POD_NAME ?? `${hostname()}-${process.pid}`;
  let kc;
  try {
    kc = loadKubeConfig(values.kubeconfig ?? env.KUBECONFIG);
  } catch (err) {
    fail((err as Error).message);
  }

  const metrics = new ControllerMetrics();
  const resyncSeconds = seconds('resync-period', values['resync-period'], DEFAULT_RESYNC_SECONDS);
  const agentImage = values['agent-image'] ?? env.XDPLB_AGENT_IMAGE;
  const images = await allowedImages(values['allowed-images'] ?? env.XDPLB_ALLOWED_IMAGES, agentImage,
    env.POD_NAME ? () => ownImage(kc, { name: env.POD_NAME!, namespace }) : null);
  log.info({ allowedImages: images.entries }, 'XdpBalancers may run these images');
  const controller = new Controller(kc, {
    namespace, identity, metrics, resyncSeconds, serveServicesWithoutClass: values['serve-services-without-class'] ?? false, images,
  });
  let started = false;
  const server = await serveMetrics(metrics.registry, metricsAt.address,
    // A standby replica is ready: it serves metrics and would take over.
    () => null, { reviewer: metricsAt.auth === 'kubernetes' ? new KubeAccessReviewer(kc) : undefined, tls });
  /** Asked only when the default balancer must be created. */
  const defaultImage = async (): Promise<string> => {
    if (agentImage) return agentImage;
    if (env.POD_NAME) return ownImage(kc, { name: env.POD_NAME, namespace });
    throw new UsageError('XdpBalancer "default" does not exist and, outside a pod, there is no image to create it with: ' +
      'give --agent-image IMAGE (or XDPLB_AGENT_IMAGE), or --no-default-balancer to run without it');
  };
  const tryEnsureDefault = async () => {
    if (values['no-default-balancer']) return;
    try {
      await ensureDefaultBalancer(kc, defaultImage);
    } catch (err) {
      // Every VIP of the default balancer would report it missing: stop and say why.
      if (err instanceof UsageError) fail(err.message);
      // Without the default balancer, VIPs of other balancers still work: report and go on.
      log.error(errorFields(err), 'could not create the default XdpBalancer; create it yourself (see deploy/examples/)');
    }
  };
  const lead = async () => {
    metrics.leader.set(1);
    await tryEnsureDefault();
    await controller.start();
    started = true;
    log.info({ identity, namespace }, 'reconciling');
  };

  let elector: LeaderElector | null = null;
  // Before leading starts: a SIGTERM while it starts must stop cleanly, not kill the process.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    (async () => {
      if (started) await controller.stop();
      await elector?.stop(); // releases the lease: the other replica takes over at once
      server.close();
    })().then(() => process.exit(0), (err: unknown) => {
      log.error(errorFields(err), 'stop failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  if (values['no-leader-elect']) {
    await lead();
  } else {
    elector = new LeaderElector(kc, {
      namespace,
      name: values['lease-name'] ?? DEFAULT_LEASE_NAME,
      identity,
      leaseDurationSeconds: seconds('lease-duration', values['lease-duration'], DEFAULT_LEASE_TIMING.leaseDurationSeconds),
      renewDeadlineSeconds: seconds('renew-deadline', values['renew-deadline'], DEFAULT_LEASE_TIMING.renewDeadlineSeconds),
      retryPeriodSeconds: seconds('retry-period', values['retry-period'], DEFAULT_LEASE_TIMING.retryPeriodSeconds),
    }, {
      onStartedLeading: lead,
      onStoppedLeading: () => {
        // Another replica may be reconciling already: stop at once and start over as a candidate.
        metrics.leader.set(0);
        log.fatal('lost the leader lease; exiting');
        process.exit(1);
      },
    });
    elector.start();
    log.info({ identity, namespace }, 'waiting to become leader');
  }
}

/**
 * --allowed-images when given; else the repository of --agent-image, else of
 * this pod's own image (the agents run the controller's image); outside a pod
 * with neither, no image at all (every XdpBalancer is refused, and a warning says why).
 */
async function allowedImages(flag: string | undefined, agentImage: string | undefined, podImage: (() => Promise<string>) | null): Promise<ImageAllowlist> {
  if (flag !== undefined) {
    try {
      return ImageAllowlist.parse(flag);
    } catch (err) {
      fail((err as Error).message);
    }
  }
  if (agentImage) return ImageAllowlist.ofRepository(agentImage, 'the repository of --agent-image; --allowed-images widens it');
  if (podImage) return ImageAllowlist.ofRepository(await podImage(), 'the repository of the controller\'s own image; --allowed-images widens it');
  log.warn('outside a pod with neither --allowed-images nor --agent-image: no image is allowed, every XdpBalancer is refused (ImageNotAllowed)');
  return ImageAllowlist.none('outside a pod, neither --allowed-images nor --agent-image was given');
}

main().catch((err: unknown) => {
  log.fatal(errorFields(err), 'xdplb-controller failed');
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
});
