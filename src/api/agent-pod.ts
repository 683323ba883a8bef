/**
 * How agent pods are labelled: the controller sets these on each balancer's
 * DaemonSet, and `xdplb trace --node` finds the agent of a node by them.
 */
import { GROUP } from './loadbalancervip.js';

/** app.kubernetes.io/name of every agent pod. */
export const AGENT_APP = 'xdplb-agent';
/** The DaemonSet of a balancer's agents (in the controller's namespace). */
export const agentDaemonSetName = (balancer: string) => `${AGENT_APP}-${balancer}`;
/** Which XdpBalancer an agent pod serves. */
export const BALANCER_LABEL = `${GROUP}/balancer`;
/** The container port of the agent's metrics. */
export const METRICS_PORT_NAME = 'metrics';
/** The container port of its trace endpoint, tracePortFor() of the metrics port. */
export const TRACE_PORT_NAME = 'trace';
