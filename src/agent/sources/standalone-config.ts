/**
 * The agent's standalone desired state: a YAML file of VIPs in the shape of
 * the LoadBalancerVip spec, with explicit reals instead of a pod selector.
 *
 *   vips:
 *     - name: web
 *       address: 198.19.0.10
 *       ports: [{ port: 80, protocol: TCP }]
 *       hashing: { ignoreSourcePort: false }
 *       lruBypass: false
 *       icmpEcho: true
 *       quicConnectionIdRouting: false
 *       reals: [{ address: 198.18.1.1, weight: 1, quicServerId: 1 }]
 */
import * as yaml from 'js-yaml';
import { isIP } from 'node:net';
import {
  type Backend,
  DEFAULT_WEIGHT,
  MAX_PORT,
  MAX_PORTS_PER_VIP,
  MIN_PORT,
  type VipSpecBase,
} from '../../api/types.js';
import type { VipSpec } from '../dataplane/desired-state.js';
import { isQuicServerId, QUIC_MAX_SERVER_ID, QUIC_MIN_SERVER_ID } from '../../bpf/consts.js';
import type { HealthCheckSpec } from '../../api/health-check.js';
import { parseHealthCheck } from '../health/health-config.js';

export interface StandaloneVip extends VipSpecBase {
  name: string;
  reals: Backend[];
  /** Probes of each real along its path (the LoadBalancerVip's spec.healthCheck); absent: the defaults. */
  healthCheck?: HealthCheckSpec;
}

export interface Problem {
  path: string;
  reason: string;
}

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: Problem[],
  ) {
    super(`${source}: ${problems.map((p) => `${p.path}: ${p.reason}`).join('; ')}`);
    this.name = 'ConfigError';
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkKeys(obj: Record<string, unknown>, allowed: string[], path: string, problems: Problem[]): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) problems.push({ path: `${path}.${k}`, reason: `unknown field (allowed: ${allowed.join(', ')})` });
  }
}

/** Parses and validates the file's text; throws ConfigError naming every problem. */
export function parseStandaloneConfig(text: string, source: string): StandaloneVip[] {
  let docs: unknown[];
  try {
    // loadAll: an empty file (no document) is an empty state, not an error.
    docs = yaml.loadAll(text, { filename: source });
  } catch (err) {
    throw new ConfigError(source, [{ path: '(document)', reason: `not valid YAML: ${(err as Error).message}` }]);
  }
  if (docs.length > 1) throw new ConfigError(source, [{ path: '(document)', reason: `holds ${docs.length} YAML documents; put every VIP in one "vips" list` }]);
  const doc = docs[0];
  const problems: Problem[] = [];
  if (doc === undefined || doc === null) return [];
  if (!isObject(doc)) throw new ConfigError(source, [{ path: '(document)', reason: 'must be a mapping with a "vips" list' }]);
  checkKeys(doc, ['vips'], '', problems);
  const list = doc.vips ?? [];
  if (!Array.isArray(list)) throw new ConfigError(source, [{ path: 'vips', reason: 'must be a list' }]);

  const vips: StandaloneVip[] = [];
  const names = new Set<string>();
  list.forEach((raw, i) => {
    const at = `vips[${i}]`;
    if (!isObject(raw)) {
      problems.push({ path: at, reason: 'must be a mapping' });
      return;
    }
    checkKeys(raw, ['name', 'address', 'ports', 'hashing', 'lruBypass', 'icmpEcho', 'quicConnectionIdRouting', 'reals', 'healthCheck'], at, problems);
    const name = raw.name;
    if (typeof name !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) {
      problems.push({ path: `${at}.name`, reason: `${JSON.stringify(name)} is not a lowercase DNS-style name` });
    } else if (names.has(name)) {
      problems.push({ path: `${at}.name`, reason: `"${name}" is used twice` });
    } else names.add(name);

    if (typeof raw.address !== 'string' || !isIP(raw.address)) {
      problems.push({ path: `${at}.address`, reason: `${JSON.stringify(raw.address)} is not an IPv4 or IPv6 address` });
    }
    const ports: VipSpecBase['ports'] = [];
    if (!Array.isArray(raw.ports) || raw.ports.length === 0 || raw.ports.length > MAX_PORTS_PER_VIP) {
      problems.push({ path: `${at}.ports`, reason: `must be a list of 1 to ${MAX_PORTS_PER_VIP} ports` });
    } else {
      const seen = new Set<string>();
      raw.ports.forEach((p, j) => {
        const pat = `${at}.ports[${j}]`;
        if (!isObject(p)) return void problems.push({ path: pat, reason: 'must be a mapping { port, protocol }' });
        checkKeys(p, ['port', 'protocol'], pat, problems);
        const port = p.port;
        const protocol = p.protocol ?? 'TCP';
        if (!Number.isInteger(port) || (port as number) < MIN_PORT || (port as number) > MAX_PORT) {
          problems.push({ path: `${pat}.port`, reason: `${JSON.stringify(port)} is not an integer in ${MIN_PORT}..${MAX_PORT}` });
        }
        if (protocol !== 'TCP' && protocol !== 'UDP') {
          problems.push({ path: `${pat}.protocol`, reason: `${JSON.stringify(protocol)} is not TCP or UDP` });
          return;
        }
        const key = `${port}/${protocol}`;
        if (seen.has(key)) problems.push({ path: pat, reason: `${key} is listed twice` });
        seen.add(key);
        ports.push({ port: port as number, protocol });
      });
    }
    let hashing: VipSpecBase['hashing'];
    if (raw.hashing !== undefined) {
      if (!isObject(raw.hashing)) problems.push({ path: `${at}.hashing`, reason: 'must be a mapping' });
      else {
        checkKeys(raw.hashing, ['ignoreSourcePort'], `${at}.hashing`, problems);
        const isp = raw.hashing.ignoreSourcePort;
        if (isp !== undefined && typeof isp !== 'boolean') {
          problems.push({ path: `${at}.hashing.ignoreSourcePort`, reason: 'must be true or false' });
        }
        hashing = { ignoreSourcePort: isp === true };
      }
    }
    if (raw.lruBypass !== undefined && typeof raw.lruBypass !== 'boolean') {
      problems.push({ path: `${at}.lruBypass`, reason: 'must be true or false' });
    }
    if (raw.icmpEcho !== undefined && typeof raw.icmpEcho !== 'boolean') {
      problems.push({ path: `${at}.icmpEcho`, reason: 'must be true or false' });
    }
    if (raw.quicConnectionIdRouting !== undefined && typeof raw.quicConnectionIdRouting !== 'boolean') {
      problems.push({ path: `${at}.quicConnectionIdRouting`, reason: 'must be true or false' });
    }
    const reals: Backend[] = [];
    if (!Array.isArray(raw.reals)) problems.push({ path: `${at}.reals`, reason: 'must be a list (it may be empty)' });
    else {
      const serverIds = new Map<unknown, number>();
      raw.reals.forEach((r, j) => {
        const rat = `${at}.reals[${j}]`;
        if (!isObject(r)) return void problems.push({ path: rat, reason: 'must be a mapping { address, weight }' });
        checkKeys(r, ['address', 'weight', 'quicServerId'], rat, problems);
        if (typeof r.address !== 'string' || !isIP(r.address)) {
          problems.push({ path: `${rat}.address`, reason: `${JSON.stringify(r.address)} is not an IPv4 or IPv6 address` });
        }
        const weight = r.weight ?? DEFAULT_WEIGHT;
        if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) {
          problems.push({ path: `${rat}.weight`, reason: `${JSON.stringify(weight)} is not a number >= 0` });
        }
        const sid = r.quicServerId;
        if (sid !== undefined && !isQuicServerId(sid)) {
          problems.push({ path: `${rat}.quicServerId`, reason: `${JSON.stringify(sid)} is not an integer in ${QUIC_MIN_SERVER_ID}..${QUIC_MAX_SERVER_ID}` });
        } else if (sid !== undefined && serverIds.has(sid)) {
          problems.push({ path: `${rat}.quicServerId`, reason: `${sid} is also reals[${serverIds.get(sid)}]'s: an id names one real` });
        }
        if (sid !== undefined && !serverIds.has(sid)) serverIds.set(sid, j);
        reals.push({ address: String(r.address), weight: weight as number, ...(sid === undefined ? {} : { quicServerId: sid as number }) });
      });
    }
    vips.push({
      name: String(name),
      address: String(raw.address),
      ports,
      hashing,
      lruBypass: raw.lruBypass === true,
      icmpEcho: raw.icmpEcho !== false,
      ...(raw.quicConnectionIdRouting === true ? { quicConnectionIdRouting: true } : {}),
      reals,
      ...(raw.healthCheck === undefined ? {} : { healthCheck: parseHealthCheck(raw.healthCheck, `${at}.healthCheck`, problems) }),
    });
  });
  if (problems.length) throw new ConfigError(source, problems);
  return vips;
}

/** One dataplane VIP per (address, port, protocol). */
export function toVipSpecs(vips: readonly StandaloneVip[]): VipSpec[] {
  return vips.flatMap((v) =>
    v.ports.map((p) => ({
      address: v.address,
      port: p.port,
      protocol: p.protocol,
      hashNoSrcPort: v.hashing?.ignoreSourcePort ?? false,
      lruBypass: v.lruBypass ?? false,
      icmpEcho: v.icmpEcho ?? true,
      // A LoadBalancerVip's ports share the flag; only its UDP ports can carry QUIC.
      quicConnectionIdRouting: p.protocol === 'UDP' && (v.quicConnectionIdRouting ?? false),
      reals: v.reals.map((r) => (r.quicServerId === undefined ? { address: r.address, weight: r.weight } : { address: r.address, weight: r.weight, quicServerId: r.quicServerId })),
    })),
  );
}
