/**
 * What the operator scenarios need from a cluster, so the same scenarios run
 * against the lab here (real kube-apiserver, agents in network namespaces)
 * and against a kind cluster (test/e2e/kind/).
 */
import type { Samples } from '../../support/prometheus.js';
import type { RunningTrace } from '../../support/trace-process.js';
import type { XdpBalancerBgp } from '../../../src/api/xdpbalancer.js';
import type { ConnectResult, ContinuousResult, LongResult } from '../../lab/client-results.js';

// The lab's client program answers the same in both environments.
export type { ConnectResult, ContinuousResult, LongResult };

export type BackendState = 'ready' | 'not-ready' | 'absent';

export interface OperatorEnv {
  /** Namespace of the backend pods and the VIPs. */
  readonly namespace: string;
  /** Backends the environment can run; each answers a connection with "real=<its name>". */
  readonly backendNames: string[];
  /** The port the backends' servers listen on, TCP and UDP, on every address: the VIPs translate their ports to it (delivery Node). */
  readonly backendPort: number;
  /** Balancer nodes, by node name. */
  readonly nodes: string[];
  /** An IPv4 address the environment routes to its balancer nodes and the backends answer for. */
  readonly vip4: string;
  /** Drain grace period the environment configured on the default balancer. */
  readonly drainSeconds: number;

  kubectl(args: string[], input?: string): string;
  /** kubectl that must fail; returns its error output. */
  kubectlError(args: string[], input?: string): string;

  /** Makes the backend's pod Ready, NotReady, or removes it; its label app=web selects it. */
  setBackend(name: string, state: BackendState): Promise<void>;

  connect(vip: string, port: number, count: number): Promise<ConnectResult>;
  long(vip: string, port: number, durationMs: number, intervalMs: number): Promise<LongResult>;
  continuous(vip: string, port: number, durationMs: number): Promise<ContinuousResult>;

  agentMetrics(node: string): Promise<Samples>;
  /** kill -9 the node's agent and start a new one; resolves when it is ready. */
  restartAgent(node: string): Promise<void>;
  /** Controller replicas running, by identity. */
  controllers(): string[];
  /** The metrics of a controller replica. */
  controllerMetrics(identity: string): Promise<Samples>;
  /** kill -9 a controller replica. */
  killController(identity: string): Promise<void>;
  /** An API server outage as the agents see it, if the environment can make one. */
  apiOutage?(ms: number): Promise<void>;
  /**
   * Starts `xdplb trace` against the node's agent; resolves once it traces.
   * `user`: who runs it; 'granted' has deploy/'s xdplb-trace role bound by the
   * test, 'ungranted' nothing (environments that cannot make such a user omit it).
   */
  startTrace(node: string, args: string[], user: 'granted' | 'ungranted'): Promise<RunningTrace>;
  /** Whether startTrace can run as a user without the grant. */
  readonly hasUngrantedUser: boolean;
  /** The log lines of the node's current agent so far. */
  agentLog(node: string): string[];

  /**
   * Makes the Service's EndpointSlice say what the pods labelled app=web are
   * now (their IPv4 addresses, Ready or not), as the EndpointSlice controller
   * does: on kind that controller runs and this only waits for it to agree.
   */
  syncEndpoints(service: string, port: number): Promise<void>;

  /**
   * Breaks the tunnel path to one backend while its pod stays Ready and its
   * server runs: the backend programs leave its veth, as on a node without
   * the backend datapath. restoreBackendPath puts them back. Where the
   * environment can do it.
   */
  breakBackendPath?(name: string): Promise<void>;
  restoreBackendPath?(name: string): Promise<void>;

  /** A router that peers by BGP with the balancer nodes, where the environment has one. */
  readonly bgp?: BgpRouter;

  down(): Promise<void>;
}

/** The environment's BGP router, and agents run from the DaemonSet's pod template as a kubelet would. */
export interface BgpRouter {
  /** spec.bgp for the default balancer: the router's addresses on the nodes' links. */
  settings(): XdpBalancerBgp;
  /** Starts routing by BGP (the router's and the nodes' BIRD) and restarts every agent with the DaemonSet's BGP arguments. */
  start(): Promise<void>;
  /** The gateways of the router's route to exactly this address; [] when it has none. */
  nextHops(address: string): string[];
  /** The nodes' addresses the router would route the address via, one per node. */
  nodeHops(address: string): string[];
  /** Restarts the agents without BGP and routes statically again, as before start(). */
  stop(): Promise<void>;
}
