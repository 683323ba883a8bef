/**
 * Where a backend agent's desired backends come from: the cluster's
 * LoadBalancerVips (delivery Node, the backends on this node), or a YAML file
 * for a node outside a cluster. Both hand the whole list at each change; the
 * backend agent writes only the difference.
 */
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import * as yaml from 'js-yaml';
import { GROUP, LBVIP_PLURAL, type LoadBalancerVip, VERSION } from '../../api/loadbalancervip.js';
import { componentLog } from '../../lib/log.js';
import { trimManagedFields, WatchedCache } from '../../lib/watched-cache.js';
import { WorkQueue } from '../../lib/work-queue.js';
import { backendsOfNode, nodeDeliveredVips } from './cluster-backends.js';
import type { PodBackend } from './service-plan.js';

const log = componentLog('backend-source');

/** Applies a whole desired list; rejects when the pass failed (it is retried). */
export type ApplyBackends = (backends: PodBackend[]) => Promise<unknown>;

export interface BackendSource {
  readonly mode: 'cluster' | 'standalone';
  /** Starts reading (a cluster list is retried until it succeeds; a bad file throws); resolves with the first list. */
  start(): Promise<PodBackend[]>;
  /** Hands every later change to `apply`. */
  follow(apply: ApplyBackends): void;
  describe(): Record<string, unknown>;
  stop(): Promise<void>;
}

/** Events come in bursts (a controller status write per VIP): apply once per burst. */
const SETTLE_MS = 50;
const SYNC = 'sync';
const LIST_PAGE_SIZE = 500;

/**
 * Watches LoadBalancerVips of every namespace and balancer (read-only: a
 * backend node reports nothing; the balancer agents report programming).
 */
export class BackendClusterSource implements BackendSource {
  readonly mode = 'cluster';
  private readonly cache: WatchedCache<LoadBalancerVip>;
  private readonly queue: WorkQueue;
  private apply: ApplyBackends | null = null;

  constructor(kc: KubeConfig, private readonly node: string) {
    const custom = kc.makeApiClient(CustomObjectsApi);
    // One worker: passes never overlap; a failed one is retried with backoff.
    this.queue = new WorkQueue('backend-source', async () => {
      await this.apply!(this.backends());
    }, {}, 1);
    this.cache = new WatchedCache<LoadBalancerVip>(
      kc,
      `/apis/${GROUP}/${VERSION}/${LBVIP_PLURAL}`,
      (page) => custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, ...page }),
      () => this.queue.addAfter(SYNC, SETTLE_MS),
      { trim: trimManagedFields, pageSize: LIST_PAGE_SIZE },
    );
  }

  async start(): Promise<PodBackend[]> {
    await this.cache.start();
    return this.backends();
  }

  follow(apply: ApplyBackends): void {
    this.apply = apply;
    this.queue.add(SYNC); // anything that changed since the first list
    this.queue.start();
  }

  describe(): Record<string, unknown> {
    return { node: this.node, vips: nodeDeliveredVips(this.cache.list()).length };
  }

  async stop(): Promise<void> {
    await this.cache.stop();
    await this.queue.stop();
  }

  private backends(): PodBackend[] {
    return backendsOfNode(this.cache.list(), this.node);
  }
}

/** How often the file is looked at: its inode, size and time are compared, and it is read when they changed. */
const FILE_POLL_MS = 1000;
const BACKEND_KEYS = ['vip', 'vipPort', 'protocol', 'podAddress', 'targetPort', 'nodeAddress', 'weight', 'ignoreSourcePort'];

/**
 * `backends: [{vip, vipPort, protocol?, podAddress, targetPort?, nodeAddress?,
 * weight?, ignoreSourcePort?}]`: the standalone form; nodeAddress (the node's
 * address the balancers encapsulate to) makes a backend Node addressing. Shapes are checked here (a bad file is refused whole);
 * addresses and ports are checked by the plan, which refuses one backend, not the file.
 */
export function parseBackendFile(text: string, source: string): PodBackend[] {
  if (!text.trim()) return []; // an empty file: nothing to serve
  const doc = yaml.load(text) as { backends?: unknown } | null;
  const list = doc?.backends ?? [];
  if (!Array.isArray(list)) throw new Error(`${source}: backends must be a list`);
  return list.map((raw: unknown, i) => {
    const at = `${source}: backends[${i}]`;
    if (typeof raw !== 'object' || raw === null) throw new Error(`${at} must be a mapping {vip, vipPort, protocol, podAddress, targetPort}`);
    const b = raw as Record<string, unknown>;
    const unknown = Object.keys(b).filter((k) => !BACKEND_KEYS.includes(k));
    if (unknown.length) throw new Error(`${at}: unknown field ${unknown.join(', ')} (fields: ${BACKEND_KEYS.join(', ')})`);
    if (typeof b.vip !== 'string' || typeof b.podAddress !== 'string') throw new Error(`${at}: vip and podAddress must be addresses`);
    if (typeof b.vipPort !== 'number' || (b.targetPort !== undefined && typeof b.targetPort !== 'number')) {
      throw new Error(`${at}: vipPort and targetPort must be numbers`);
    }
    const protocol = b.protocol ?? 'TCP';
    if (protocol !== 'TCP' && protocol !== 'UDP') throw new Error(`${at}: protocol must be TCP or UDP`);
    if (b.nodeAddress !== undefined && typeof b.nodeAddress !== 'string') throw new Error(`${at}: nodeAddress must be an address`);
    if (b.weight !== undefined && typeof b.weight !== 'number') throw new Error(`${at}: weight must be a number`);
    if (b.ignoreSourcePort !== undefined && typeof b.ignoreSourcePort !== 'boolean') throw new Error(`${at}: ignoreSourcePort must be true or false`);
    return {
      vip: b.vip, vipPort: b.vipPort, protocol, podAddress: b.podAddress, targetPort: (b.targetPort as number | undefined) ?? b.vipPort,
      ...(b.nodeAddress === undefined ? {} : { nodeAddress: b.nodeAddress }),
      ...(b.weight === undefined ? {} : { weight: b.weight }),
      ...(b.ignoreSourcePort === undefined ? {} : { ignoreSourcePort: b.ignoreSourcePort }),
    };
  });
}

/** The standalone source: a YAML file, looked at every second; an invalid change is logged and the running state stays. */
export class BackendFileSource implements BackendSource {
  readonly mode = 'standalone';
  private readonly path: string;
  private timer: NodeJS.Timeout | null = null;
  private stamp = '';

  constructor(private readonly given: string) {
    this.path = resolve(given);
  }

  async start(): Promise<PodBackend[]> {
    this.stamp = await this.stampNow();
    return parseBackendFile(await readFile(this.path, 'utf8'), this.path);
  }

  follow(apply: ApplyBackends): void {
    this.timer = setInterval(() => void this.reload(apply), FILE_POLL_MS);
  }

  describe(): Record<string, unknown> {
    return { config: this.given };
  }

  stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    return Promise.resolve();
  }

  private async stampNow(): Promise<string> {
    const s = await stat(this.path).catch(() => null);
    return s ? `${s.ino}:${s.size}:${s.mtimeMs}` : 'missing';
  }

  private async reload(apply: ApplyBackends): Promise<void> {
    const now = await this.stampNow();
    if (now === this.stamp) return;
    this.stamp = now;
    try {
      await apply(parseBackendFile(await readFile(this.path, 'utf8'), this.path));
    } catch (err) {
      log.error({ file: this.path, err: (err as Error).message }, 'backend file not applied; keeping the running state');
    }
  }
}
