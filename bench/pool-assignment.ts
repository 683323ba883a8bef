/**
 * The controller's address assignment alone: 10,000 VIPs (Services of type
 * LoadBalancer) each given an address from one IPv4 /16 pool. Per VIP:
 * assignAddress(), then used.add(address, vipKey), as assignment.ts's header
 * asks of its caller. 100 node addresses (BENCH_POOL_NODES) and one node's pod
 * CIDR (a /24) lie in the pool, so the lowest-first search must jump them.
 * Pure computation: no API, no BPF. Every round's result is checked; a wrong
 * address aborts the run.
 */
import type { V1Node, V1Service } from '@kubernetes/client-node';
import { assignAddress, type AssignRequest, UsedAddresses } from '../src/controller/pools/assignment.js';
import { parseCidr, toNumeric } from '../src/controller/pools/cidr.js';
import { type Forbidden, forbiddenAddresses, NOTHING_FORBIDDEN } from '../src/controller/pools/forbidden.js';
import { resolvePools } from '../src/controller/pools/pool-overlap.js';
import type { Pool } from '../src/controller/pools/pool.js';
import { node, ns, poolResource, tenant } from '../test/unit/pools/pool-fixtures.js';
import { collector, median, retainedHeap, timeMs } from './stats.js';

const VIPS = 10_000;
const RELEASED = VIPS / 2;
const ROUNDS = 7;
/** Nodes whose InternalIP lies in the pool: BENCH_POOL_NODES, 1 to 1000 (default 100). */
const NODES = Number(process.env.BENCH_POOL_NODES ?? 100);
const MAX_NODES = 1000;
/** Nodes 1-99 have a pod CIDR outside the pool, 198.19.k.0/24; further nodes none (their CNI allocates pod addresses itself). */
const NODES_WITH_POD_CIDR = 100;
const OTHER_POOLS = 19;

const POOL = parseCidr('198.18.0.0/16');
/** Node 0's pod CIDR, inside the pool (offsets 5120-5375): a misconfiguration forbidden catches. */
const POD_CIDR_IN_POOL = '198.18.20.0/24';
const POD_CIDR_OFFSETS = { first: 20 * 256, last: 20 * 256 + 255 };

/** Offset in the pool -> dotted quad. */
const poolAddress = (offset: number) => `198.18.${offset >> 8}.${offset & 255}`;

/** Node k's InternalIP: spread evenly over the first 10,000 addresses (every 100th from offset 50 for 100 nodes), moved past the in-pool pod CIDR. */
const nodeOffset = (k: number) => {
  const spacing = Math.floor(VIPS / NODES);
  const o = (spacing >> 1) + spacing * k;
  return o < POD_CIDR_OFFSETS.first ? o : o + 256;
};

const shop = ns('shop', { 'xdplb.dev/tenant': 'shop' });
const request = (vipKey: string): AssignRequest => ({ vipKey, namespace: shop, balancer: 'default', family: 4 });

function clusterNodes(): V1Node[] {
  // The pod CIDRs outside the pool are forbidden too, but never met by the search.
  const podCIDRs = (k: number) => (k === 0 ? [POD_CIDR_IN_POOL] : k < NODES_WITH_POD_CIDR ? [`198.19.${k}.0/24`] : []);
  return Array.from({ length: NODES }, (_, k) => node(`worker-${k}`, [['InternalIP', poolAddress(nodeOffset(k))], ['Hostname', `worker-${k}`]], podCIDRs(k)));
}

const clusterServices = (): V1Service[] => [
  { metadata: { namespace: 'default', name: 'kubernetes' }, spec: { clusterIP: '198.19.128.1', clusterIPs: ['198.19.128.1'] } },
  { metadata: { namespace: 'kube-system', name: 'kube-dns' }, spec: { clusterIP: '198.19.128.10', clusterIPs: ['198.19.128.10'] } },
];

/** The cluster's forbidden addresses: its nodes' addresses and pod CIDRs, two Services' ClusterIPs. */
export const benchForbidden = (): Forbidden => forbiddenAddresses({ nodes: clusterNodes(), services: clusterServices() });

/**
 * The first n addresses assignment must hand out, in order, computed without
 * the pool modules: the pool's addresses from the lowest, but its network
 * address, the node addresses and the in-pool pod CIDR.
 */
export function expectedAddresses(n: number): string[] {
  const nodes = new Set(Array.from({ length: NODES }, (_, k) => nodeOffset(k)));
  const out: string[] = [];
  for (let o = 1; out.length < n && o < 65535; o++) {
    if (!nodes.has(o) && (o < POD_CIDR_OFFSETS.first || o > POD_CIDR_OFFSETS.last)) out.push(poolAddress(o));
  }
  return out;
}

/** Throws unless the addresses are distinct, in the pool but not its network or broadcast address, not forbidden, and exactly `expected`. */
export function checkAssigned(what: string, addresses: readonly string[], forbidden: Forbidden, expected: readonly string[]): void {
  const fail = (why: string): never => {
    throw new Error(`pool assignment bench, ${what}: ${why}`);
  };
  if (new Set(addresses).size !== addresses.length) fail('an address was handed out twice');
  for (const a of addresses) {
    const ip = toNumeric(a);
    if (ip.family !== 4 || ip.value < POOL.first || ip.value > POOL.last) fail(`${a} is outside ${POOL.text}`);
    if (ip.value === POOL.first || ip.value === POOL.last) fail(`${a} is the pool's network or broadcast address`);
    const never = forbidden.reasonFor(ip);
    if (never) fail(`${a} ${never}`);
  }
  if (addresses.length !== expected.length) fail(`${addresses.length} addresses, expected ${expected.length}`);
  const i = addresses.findIndex((a, j) => a !== expected[j]);
  if (i >= 0) fail(`address ${i} is ${addresses[i]}, expected ${expected[i]} (the lowest free one)`);
}

/** Assigns and records, one by one; throws on a refusal or on an address from another pool. */
export function assignAll(keys: readonly string[], pools: readonly Pool[], used: UsedAddresses, forbidden: Forbidden, pool: string): string[] {
  const out: string[] = [];
  for (const key of keys) {
    const r = assignAddress(request(key), pools, used, forbidden);
    if (!r.ok) throw new Error(`pool assignment bench: ${key} refused: ${r.reason}`);
    if (r.pool !== pool) throw new Error(`pool assignment bench: ${key} got ${r.address} from pool ${r.pool}, expected ${pool}`);
    used.add(r.address, key);
    out.push(r.address);
  }
  return out;
}

/**
 * The floor: a counter from the pool's first assignable address, the address
 * text built from it with a template string, and one Map.set(address, vipKey)
 * per VIP. No pools, no forbidden ranges, no lookups.
 */
function counterFloor(keys: readonly string[]): Map<string, string> {
  const held = new Map<string, string>();
  let next = 1;
  for (const key of keys) held.set(poolAddress(next++), key);
  return held;
}

interface Round {
  floor: number;
  assign: number;
  noForbidden: number;
  twentyPools: number;
  release: number;
  reassign: number;
}

export async function poolAssignment(): Promise<string> {
  if (!Number.isInteger(NODES) || NODES < 1 || NODES > MAX_NODES) throw new Error(`BENCH_POOL_NODES=${process.env.BENCH_POOL_NODES}: a whole number from 1 to ${MAX_NODES}`);
  const forbidden = benchForbidden();
  const single = resolvePools([poolResource('pool-19', [POOL.text], { namespaceSelector: tenant('shop') })]);
  // 19 older pools, earlier by name, for other tenants, then the one that allows namespace shop.
  const twenty = resolvePools([
    ...Array.from({ length: OTHER_POOLS }, (_, i) => poolResource(`pool-${String(i).padStart(2, '0')}`, [`198.19.${200 + i}.0/24`], { age: i, namespaceSelector: tenant(`team-${i}`) })),
    poolResource('pool-19', [POOL.text], { age: OTHER_POOLS, namespaceSelector: tenant('shop') }),
  ]);
  const refused = [...single, ...twenty].filter((p) => p.refused);
  if (refused.length > 0) throw new Error(`pool assignment bench: pools refused: ${refused.map((p) => `${p.name}: ${p.refused}`).join('; ')}`);

  const keys = Array.from({ length: VIPS }, (_, i) => `shop/svc-${i}`);
  const newKeys = Array.from({ length: RELEASED }, (_, i) => `shop/new-${i}`);
  const expected = expectedAddresses(VIPS);
  const expectedPlain = Array.from({ length: VIPS }, (_, i) => poolAddress(i + 1));

  const round = (): Round => {
    let held = new Map<string, string>();
    const floor = timeMs(() => (held = counterFloor(keys)));
    if (held.size !== VIPS) throw new Error(`pool assignment bench: the floor held ${held.size} addresses`);

    let plain: string[] = [];
    const noForbidden = timeMs(() => (plain = assignAll(keys, single, new UsedAddresses(), NOTHING_FORBIDDEN, 'pool-19')));
    checkAssigned('nothing forbidden', plain, NOTHING_FORBIDDEN, expectedPlain);

    let viaTwenty: string[] = [];
    const twentyPools = timeMs(() => (viaTwenty = assignAll(keys, twenty, new UsedAddresses(), forbidden, 'pool-19')));
    checkAssigned('20 pools', viaTwenty, forbidden, expected);

    const used = new UsedAddresses();
    let addresses: string[] = [];
    const assign = timeMs(() => (addresses = assignAll(keys, single, used, forbidden, 'pool-19')));
    checkAssigned('one pool', addresses, forbidden, expected);

    // Every second VIP deleted: holes all over the used range; new VIPs must fill them lowest first.
    const gone = keys.flatMap((key, i) => (i % 2 === 0 ? [{ key, address: addresses[i]! }] : []));
    const release = timeMs(() => {
      for (const { key, address } of gone) used.remove(address, key);
    });
    if (used.size !== VIPS - RELEASED) throw new Error(`pool assignment bench: ${used.size} addresses in use after releasing ${RELEASED}`);
    let refilled: string[] = [];
    const reassign = timeMs(() => (refilled = assignAll(newKeys, single, used, forbidden, 'pool-19')));
    checkAssigned('re-assigned', refilled, forbidden, gone.map((g) => g.address));
    if (used.size !== VIPS) throw new Error(`pool assignment bench: ${used.size} addresses in use after re-assigning`);
    return { floor, assign, noForbidden, twentyPools, release, reassign };
  };

  round(); // warm-up: compiled code, as in a controller that has been running
  const rounds = Array.from({ length: ROUNDS }, round);

  const gc = collector();
  const usedHeap = retainedHeap(gc, () => {
    const used = new UsedAddresses();
    assignAll(keys, single, used, forbidden, 'pool-19');
    return used;
  });
  const floorHeap = retainedHeap(gc, () => counterFloor(keys));
  gc();
  const heapAfter = process.memoryUsage().heapUsed;

  const floorPerOp = median(rounds.map((r) => r.floor)) / VIPS;
  const row = (what: string, ops: number, pick: (r: Round) => number) => {
    const ms = rounds.map(pick);
    const med = median(ms);
    const perOp = med / ops;
    return `| ${what} | ${ops.toLocaleString('en')} | ${med.toFixed(1)} | ${Math.min(...ms).toFixed(1)}–${Math.max(...ms).toFixed(1)} | ${(perOp * 1000).toFixed(2)} | ${(perOp / floorPerOp).toFixed(1)}x |`;
  };
  const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;
  return [
    `Address assignment (assignAddress + UsedAddresses.add per VIP; pool ${POOL.text}; forbidden: ${NODES} node InternalIPs in the pool, node 0's pod CIDR ${POD_CIDR_IN_POOL} in the pool, ${Math.min(NODES, NODES_WITH_POD_CIDR) - 1} pod CIDRs and 2 ClusterIPs outside it; median of ${ROUNDS} rounds after a warm-up; every round's addresses checked).`,
    `Floor: per VIP a counter incremented, the address text built from it with a template string, and one Map.set(address, vipKey); no pools, no forbidden ranges. "vs floor" compares time per operation.`,
    '',
    '| case | operations | median ms | range ms | µs per operation | vs floor |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    row('floor: counter + template string + Map.set', VIPS, (r) => r.floor),
    row(`assign, one /16 pool, ${NODES} node IPs + a /24 pod CIDR to jump`, VIPS, (r) => r.assign),
    row('assign, one /16 pool, nothing forbidden', VIPS, (r) => r.noForbidden),
    row(`assign, ${OTHER_POOLS + 1} pools (only the last allows the namespace), same forbidden`, VIPS, (r) => r.twentyPools),
    row('release every second VIP (UsedAddresses.remove)', RELEASED, (r) => r.release),
    row('re-assign into the holes (lowest first), same forbidden', RELEASED, (r) => r.reassign),
    '',
    `Heap after a full collection: UsedAddresses holding ${VIPS.toLocaleString('en')} VIPs ${kib(usedHeap.bytes)}; the floor's Map ${kib(floorHeap.bytes)}; the whole process ${(heapAfter / 2 ** 20).toFixed(1)} MiB.`,
  ].join('\n');
}
