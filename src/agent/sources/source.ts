/**
 * Where an agent's desired VIPs come from: a YAML file (standalone) or the
 * LoadBalancerVips of one balancer (cluster). Both go through the same steps,
 * so the agent is wired one way:
 *
 *   start() -> agent.open() -> initial(agent) -> agent.run(...) -> follow(agent) ... stop()
 */
import type { VipSpec } from '../dataplane/desired-state.js';
import type { DataplaneAccept } from './cluster-vips.js';

/** What a source drives: the agent. */
export interface Programmer {
  /** Which of these VIPs the dataplane would program together, and why it refuses the others. */
  accept: DataplaneAccept;
  /** Programs the VIPs as a diff; rejects, keeping the running state, when the dataplane refuses them. */
  setVips(vips: VipSpec[]): Promise<void>;
  /** L2 mode: the programmed VIP addresses the controller names this node for (status.l2.node). */
  setL2Addresses?(addresses: string[]): void;
}

export interface VipSource {
  /** "standalone" or "cluster", for the log. */
  readonly mode: string;
  /**
   * Starts reading the source, before the dataplane is touched: a file is
   * read and validated (an invalid one throws); a cluster list is begun.
   * (The file source also resolves to the VIPs it read.)
   */
  start(): Promise<unknown>;
  /** The VIPs to program first, once the source knows them (the first cluster list may still be retrying). */
  initial(programmer: Programmer): Promise<VipSpec[]>;
  /** The initial VIPs are programmed: report them, and program every later change into `programmer`. */
  follow(programmer: Programmer): Promise<void>;
  /** What the "running" log line says about the source. */
  describe(): Record<string, unknown>;
  stop(): Promise<void> | void;
  /** The agent leaves this node for good (it detaches): remove what the source published about it. */
  withdrawReport?(): Promise<void>;
}
