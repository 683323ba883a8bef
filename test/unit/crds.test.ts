/** The CRDs agree with the TypeScript API, and their printer columns name fields that exist. */
import { QUIC_MAX_SERVER_ID, QUIC_MIN_SERVER_ID } from '../../src/bpf/consts.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as yaml from 'js-yaml';
import { BALANCER_LABEL } from '../../src/api/agent-pod.js';
import { backendsRevision } from '../../src/api/backends-revision.js';
import { type ReportedVip, XNR_KIND, XNR_PLURAL } from '../../src/api/xdpnodereport.js';
import { agentDaemonSet } from '../../src/controller/agent-daemonset.js';
import { HEALTH_CHECK_BOUNDS, HEALTH_CHECK_DEFAULTS } from '../../src/api/health-check.js';
import {
  BFD_MIN_INTERVAL_MS, BFD_MULTIPLIER, DEFAULT_BFD_MIN_INTERVAL_MS, DEFAULT_BFD_MULTIPLIER, DEFAULT_DRAIN_SECONDS, DEFAULT_METRICS_PORT,
  MAX_REPORTED_UNHEALTHY,
} from '../../src/api/xdpbalancer.js';
import {
  BACKEND_ADDRESSINGS, DEFAULT_BACKEND_ADDRESSING, GROUP, LBVIP_KIND, LBVIP_PLURAL, MAX_STATUS_BACKENDS, VERSION,
} from '../../src/api/loadbalancervip.js';
import { MAX_ASN } from '../../src/agent/announce/bgp-settings.js';

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  required?: string[];
  maxItems?: number;
  maxLength?: number;
  maximum?: number;
  minimum?: number;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  'x-kubernetes-validations'?: { rule: string }[];
}
interface Crd {
  spec: {
    group: string;
    names: { kind: string; plural: string; shortNames?: string[] };
    scope: string;
    versions: { name: string; served: boolean; storage: boolean; subresources?: { status?: object };
      additionalPrinterColumns?: { name: string; jsonPath: string }[]; schema: { openAPIV3Schema: Schema } }[];
  };
}

/** Kubernetes' limit on a label value. */
const LABEL_VALUE_MAX = 63;

const load = (name: string) =>
  yaml.load(readFileSync(fileURLToPath(new URL(`../../../crds/${name}`, import.meta.url)), 'utf8')) as Crd;

/** Follows a printer column's JSONPath (.a.b[*].c, .a[?(...)].b) through the schema. */
function resolves(schema: Schema, jsonPath: string): boolean {
  let s: Schema | undefined = schema;
  for (const part of jsonPath.replace(/\[[^\]]*\]/g, '[]').replace(/^\./, '').split('.')) {
    const m = /^([A-Za-z][A-Za-z0-9]*)(\[.*\])?$/.exec(part);
    if (!m || !s) return false;
    if (m[1] === 'metadata') return true; // the API server's own
    s = s.properties?.[m[1]!];
    if (m[2]) s = s?.items;
  }
  return !!s;
}

for (const [file, kind, plural, scope] of [
  ['loadbalancervips.yaml', LBVIP_KIND, LBVIP_PLURAL, 'Namespaced'],
  ['xdpbalancers.yaml', 'XdpBalancer', 'xdpbalancers', 'Cluster'],
] as const) {
  test(`${file}: names, version, status subresource, printer columns`, () => {
    const crd = load(file);
    assert.equal(crd.spec.group, GROUP);
    assert.equal(crd.spec.names.kind, kind);
    assert.equal(crd.spec.names.plural, plural);
    assert.equal(crd.spec.scope, scope);
    const [v] = crd.spec.versions;
    assert.equal(v!.name, VERSION);
    assert.ok(v!.served && v!.storage);
    assert.ok(v!.subresources?.status, 'status is a subresource: agents and controller write it apart from spec');
    for (const col of v!.additionalPrinterColumns ?? []) {
      assert.ok(resolves(v!.schema.openAPIV3Schema, col.jsonPath), `printer column ${col.name}: ${col.jsonPath} is not in the schema`);
    }
  });
}

test('xdpnodereports.yaml: names, printer columns, and every field an agent writes (src/api/xdpnodereport.ts)', () => {
  const crd = load('xdpnodereports.yaml');
  assert.deepEqual([crd.spec.group, crd.spec.names.kind, crd.spec.names.plural, crd.spec.scope], [GROUP, XNR_KIND, XNR_PLURAL, 'Cluster']);
  const [v] = crd.spec.versions;
  assert.equal(v!.name, VERSION);
  const schema = v!.schema.openAPIV3Schema;
  for (const col of v!.additionalPrinterColumns ?? []) assert.ok(resolves(schema, col.jsonPath), `printer column ${col.name}: ${col.jsonPath}`);
  const entry: Required<ReportedVip> = { namespace: 'shop', name: 'web', uid: 'u', generation: 1, backendsRevision: 'r', reals: 1, error: 'e' };
  assert.deepEqual(Object.keys(schema.properties!.vips!.items!.properties!).sort(), Object.keys(entry).sort());
  const revision = backendsRevision({ status: { backends: [] } }).length;
  assert.ok(revision <= schema.properties!.vips!.items!.properties!.backendsRevision!.maxLength!, 'the API accepts the revision agents report');
  assert.match(readFileSync(fileURLToPath(new URL('../../../crds/kustomization.yaml', import.meta.url)), 'utf8'), /^ {2}- xdpnodereports\.yaml$/m);
});

test('the LoadBalancerVip schema has what the controller and agents write', () => {
  const schema = load('loadbalancervips.yaml').spec.versions[0]!.schema.openAPIV3Schema;
  const status = schema.properties!.status!.properties!;
  for (const field of ['observedGeneration', 'address', 'addressPool', 'readyBackends', 'unlistedBackends', 'programmedNodes', 'conditions', 'backends',
    'addressing', 'backendsRevision']) {
    assert.ok(status[field], `status.${field}`);
  }
  assert.deepEqual(Object.keys(status.backends!.items!.properties!).sort(),
    ['draining', 'drainingSince', 'healthy', 'ip', 'node', 'nodeIP', 'pod', 'quicServerId', 'unhealthyReason', 'unhealthySince', 'weight']);
  const sid = status.backends!.items!.properties!.quicServerId!;
  assert.deepEqual([sid.minimum, sid.maximum], [QUIC_MIN_SERVER_ID, QUIC_MAX_SERVER_ID], 'the server ids the program takes');
  assert.deepEqual(status.addressing!.enum, BACKEND_ADDRESSINGS);
  assert.match(status.nodes!.description!, /^Deprecated/, 'what nodes programmed is in their XdpNodeReports; agents of earlier versions still write here');
  const revision = backendsRevision({ status: { backends: [] } }).length;
  assert.ok(revision <= status.backendsRevision!.maxLength!, 'the API accepts the revision the controller writes');
  // address is assigned when left out; backendSelector or backendService, one of them (a CEL rule).
  assert.deepEqual(schema.properties!.spec!.required, ['ports']);
  assert.equal(status.backends!.maxItems, MAX_STATUS_BACKENDS, 'the controller lists no more backends than the API accepts');
});

test('spec.healthCheck: the defaults and bounds the code applies, and the rules that tie it to the ports', () => {
  const schema = load('loadbalancervips.yaml').spec.versions[0]!.schema.openAPIV3Schema;
  const spec = schema.properties!.spec!;
  const hc = spec.properties!.healthCheck!.properties!;
  assert.equal(hc.enabled!.default, HEALTH_CHECK_DEFAULTS.enabled);
  for (const k of ['intervalSeconds', 'timeoutSeconds', 'unhealthyThreshold', 'healthyThreshold'] as const) {
    assert.deepEqual([hc[k]!.default, hc[k]!.minimum, hc[k]!.maximum], [HEALTH_CHECK_DEFAULTS[k], HEALTH_CHECK_BOUNDS[k].min, HEALTH_CHECK_BOUNDS[k].max], k);
  }
  assert.ok(spec['x-kubernetes-validations']!.some((r) => r.rule.includes('self.healthCheck.port')), 'port must be a TCP port of the VIP');
  assert.ok(spec.properties!.healthCheck!['x-kubernetes-validations']!.some((r) => r.rule.includes('timeoutSeconds < self.intervalSeconds')));
  const xdpb = load('xdpbalancers.yaml').spec.versions[0]!.schema.openAPIV3Schema.properties!.status!.properties!;
  assert.equal(xdpb.nodes!.items!.properties!.health!.properties!.unhealthy!.maxItems, MAX_REPORTED_UNHEALTHY);
  assert.ok(xdpb.probingNodes);
});

test('an XdpBalancer name is refused when its agent pods could not carry it as a label', () => {
  const schema = load('xdpbalancers.yaml').spec.versions[0]!.schema.openAPIV3Schema;
  const rule = schema['x-kubernetes-validations']!.map((r) => /^self\.metadata\.name\.size\(\) <= (\d+)$/.exec(r.rule)).find(Boolean);
  assert.ok(rule, 'a CEL rule on metadata.name at the root');
  const labels = agentDaemonSet({ metadata: { name: 'edge', uid: 'u' }, spec: { image: 'i' } }, 'ns').spec!.template.metadata!.labels!;
  assert.equal(labels[BALANCER_LABEL], 'edge', 'the name is a label value of the agent pods');
  assert.equal(Number(rule[1]), LABEL_VALUE_MAX);
});

/** Every field below `schema`, by path, as kubectl explain walks them. */
function fields(schema: Schema, path: string): [string, Schema][] {
  const out: [string, Schema][] = [];
  for (const [name, s] of Object.entries(schema.properties ?? {})) {
    out.push([`${path}.${name}`, s], ...fields(s, `${path}.${name}`));
    if (s.items) out.push(...fields(s.items, `${path}.${name}[]`));
  }
  return out;
}

for (const file of ['loadbalancervips.yaml', 'xdpbalancers.yaml']) {
  test(`${file}: kubectl explain has a description for every field`, () => {
    const schema = load(file).spec.versions[0]!.schema.openAPIV3Schema;
    const bare = fields(schema, '').filter(([, s]) => !s.description?.trim()).map(([p]) => p);
    assert.deepEqual(bare, [], 'fields without a description');
  });
}

test('the defaults the schemas give are the ones the code falls back to', () => {
  const lbvip = load('loadbalancervips.yaml').spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!.properties!;
  assert.equal(lbvip.balancer!.default, 'default');
  assert.equal(lbvip.lruBypass!.default, false);
  assert.equal(lbvip.icmpEcho!.default, true);
  assert.equal(lbvip.quicConnectionIdRouting!.default, false);
  assert.equal(lbvip.hashing!.properties!.ignoreSourcePort!.default, false);
  const xdpb = load('xdpbalancers.yaml').spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!.properties!;
  assert.equal(xdpb.metricsPort!.default, DEFAULT_METRICS_PORT);
  assert.equal(xdpb.drainSeconds!.default, DEFAULT_DRAIN_SECONDS);
  assert.equal(xdpb.xdpMode!.default, 'auto');
  assert.equal(xdpb.backendAddressing!.default, DEFAULT_BACKEND_ADDRESSING);
  assert.deepEqual(xdpb.backendAddressing!.enum, BACKEND_ADDRESSINGS);
});

test('spec.bgp in the schema: the fields the agent reads, required where the agent needs them', () => {
  const bgp = load('xdpbalancers.yaml').spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!.properties!.bgp!;
  assert.deepEqual(bgp.required, ['localASN', 'peers']);
  assert.deepEqual(Object.keys(bgp.properties!).sort(), ['bfd', 'communities', 'localASN', 'peers', 'routerID']);
  const peer = bgp.properties!.peers!.items!;
  assert.deepEqual(peer.required, ['address', 'asn']);
  assert.deepEqual(Object.keys(peer.properties!).sort(), ['address', 'addressFamilies', 'asn', 'passwordSecretRef', 'port']);
  assert.equal(bgp.properties!.localASN!.maximum, MAX_ASN);
  // BFD: the defaults and bounds the agent applies to a standalone --bgp.
  const bfd = bgp.properties!.bfd!.properties!;
  assert.deepEqual(Object.keys(bfd).sort(), ['minIntervalMilliseconds', 'multiplier']);
  assert.deepEqual([bfd.minIntervalMilliseconds!.default, bfd.minIntervalMilliseconds!.minimum, bfd.minIntervalMilliseconds!.maximum],
    [DEFAULT_BFD_MIN_INTERVAL_MS, BFD_MIN_INTERVAL_MS.min, BFD_MIN_INTERVAL_MS.max]);
  assert.deepEqual([bfd.multiplier!.default, bfd.multiplier!.minimum, bfd.multiplier!.maximum], [DEFAULT_BFD_MULTIPLIER, BFD_MULTIPLIER.min, BFD_MULTIPLIER.max]);
});
