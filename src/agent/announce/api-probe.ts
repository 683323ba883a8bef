/**
 * Whether the API server still answers this agent. An agent cut off from it
 * keeps serving what it has (rings, drains), but cannot learn that a backend
 * went or a VIP moved: past a bound it should stop drawing new traffic.
 *
 * The watch alone cannot tell: an idle watch looks the same as a dead
 * connection until it times out. So the agent GETs its own XdpBalancer
 * (the one read its RBAC already allows) every API_PROBE_INTERVAL_MS;
 * any HTTP answer, even an error status, means the server is there.
 */
import { apiError } from '../../lib/api-error.js';
import type { BalancerGet } from '../sources/uninstall.js';
import type { HealthCheck } from './health.js';

export const API_PROBE_INTERVAL_MS = 10_000;
/**
 * Default bound: longer than an API server restart or a control-plane
 * upgrade's gap (seconds to a minute), so those never move traffic; short
 * enough that a node cut off from the cluster stops taking new flows for
 * backends that may be gone within two minutes. A cluster-wide API outage
 * longer than this withdraws every node: --bgp-api-loss-seconds 0 turns the
 * check off where that is the worse outcome.
 */
export const DEFAULT_API_LOSS_SECONDS = 120;
const MS_PER_S = 1000;

export const answered = (got: BalancerGet): boolean => 'object' in got || typeof apiError(got.error).code === 'number';

export class ApiProbe implements HealthCheck {
  readonly name = 'API server';
  private lastAnswer: number;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly get: () => Promise<BalancerGet>,
    private readonly boundSeconds: number,
    private readonly intervalMs = API_PROBE_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {
    this.lastAnswer = now();
  }

  start(): void {
    const probe = async () => {
      if (answered(await this.get())) this.lastAnswer = this.now();
    };
    this.timer = setInterval(() => void probe(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Records an answer the agent got some other way (tests, and the first list). */
  sawAnswer(): void {
    this.lastAnswer = this.now();
  }

  problem(): string | null {
    if (this.boundSeconds <= 0) return null;
    const silentS = Math.floor((this.now() - this.lastAnswer) / MS_PER_S);
    if (silentS < this.boundSeconds) return null;
    return `no answer for ${silentS} s (more than --bgp-api-loss-seconds ${this.boundSeconds}): the node may serve stale backends`;
  }
}
