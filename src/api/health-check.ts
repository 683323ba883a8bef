/**
 * Health checks along the real path (LoadBalancerVip spec.healthCheck, and
 * the same block in the agent's standalone file): the balancer nodes probe
 * each listed backend the way client traffic reaches it, encapsulated, to
 * VIP:port. The defaults and bounds are named here once; crds/ says the same
 * (test/unit/crds.test.ts checks they agree).
 */
import { type Protocol, type VipPort } from './types.js';

export interface HealthCheckSpec {
  /** Default true: every listed backend of a VIP with a TCP port is probed. */
  enabled?: boolean;
  /** The VIP's TCP port to probe; default its first TCP port. Must be one of its TCP ports. */
  port?: number;
  /** How often each backend is probed. */
  intervalSeconds?: number;
  /** How long a probe waits for its SYN-ACK; less than intervalSeconds. */
  timeoutSeconds?: number;
  /** Failed probes in a row that make a backend unhealthy (weight 0, draining). */
  unhealthyThreshold?: number;
  /** Successful probes in a row that make an unhealthy backend healthy again. */
  healthyThreshold?: number;
}

export const HEALTH_CHECK_DEFAULTS = {
  enabled: true,
  intervalSeconds: 10,
  timeoutSeconds: 2,
  unhealthyThreshold: 3,
  healthyThreshold: 2,
} as const;

/** Inclusive bounds of each number (the CRD's minimum and maximum). */
export const HEALTH_CHECK_BOUNDS = {
  intervalSeconds: { min: 1, max: 300 },
  timeoutSeconds: { min: 1, max: 60 },
  unhealthyThreshold: { min: 1, max: 10 },
  healthyThreshold: { min: 1, max: 10 },
} as const;

/** spec.healthCheck with every default filled in, and the port resolved. */
export interface ResolvedHealthCheck {
  port: number;
  intervalMs: number;
  timeoutMs: number;
  unhealthyThreshold: number;
  healthyThreshold: number;
}

const MS_PER_S = 1000;

/** Why a VIP's backends are not probed: the status and the agent's log say it. */
export const NotProbedReason = {
  Disabled: 'Disabled',
  /** No TCP port: UDP has no handshake that proves the path (a UDP probe's silence means nothing). */
  NoTcpPort: 'NoTcpPort',
  /** spec.healthCheck.port is not one of the VIP's TCP ports (the CRD refuses it; a file may not). */
  PortNotInVip: 'PortNotInVip',
} as const;

export type HealthCheckPlan = { probe: ResolvedHealthCheck } | { notProbed: keyof typeof NotProbedReason; message: string };

const isTcp = (p: { protocol?: Protocol }) => (p.protocol ?? 'TCP') === 'TCP';

/**
 * What to do for a VIP: probe which port how often, or why not. UDP-only
 * VIPs are not probed (readiness alone decides for them); a VIP with both
 * probes its TCP port, which proves the tunnel path the UDP port shares.
 */
export function planHealthCheck(spec: HealthCheckSpec | undefined, ports: readonly Pick<VipPort, 'port' | 'protocol'>[]): HealthCheckPlan {
  const hc = { ...HEALTH_CHECK_DEFAULTS, ...stripUndefined(spec ?? {}) };
  if (!hc.enabled) return { notProbed: 'Disabled', message: 'spec.healthCheck.enabled is false' };
  const tcp = ports.filter(isTcp);
  if (!tcp.length) return { notProbed: 'NoTcpPort', message: 'no TCP port to probe: UDP-only VIPs rely on readiness alone' };
  if (hc.port !== undefined && !tcp.some((p) => p.port === hc.port)) {
    return { notProbed: 'PortNotInVip', message: `healthCheck.port ${hc.port} is not one of the VIP's TCP ports` };
  }
  return {
    probe: {
      port: hc.port ?? tcp[0]!.port,
      intervalMs: hc.intervalSeconds * MS_PER_S,
      // A timeout as long as the interval would overlap the next probe: capped just below it.
      timeoutMs: (hc.timeoutSeconds < hc.intervalSeconds ? hc.timeoutSeconds : hc.intervalSeconds * TIMEOUT_CAP) * MS_PER_S,
      unhealthyThreshold: hc.unhealthyThreshold,
      healthyThreshold: hc.healthyThreshold,
    },
  };
}

/** A timeout not below the interval (only a file can say so: the CRD refuses it) waits this share of the interval. */
const TIMEOUT_CAP = 0.9;

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The key of one probed backend of one VIP: "namespace/name|ip" (standalone: "name|ip"). */
export const healthTargetKey = (vip: string, ip: string) => `${vip}|${ip}`;
