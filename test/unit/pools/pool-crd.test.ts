/** crds/xdpaddresspools.yaml agrees with src/api/addresspool.ts, is in the kustomization, and describes every field. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as yaml from 'js-yaml';
import { XDPAP_KIND, XDPAP_PLURAL, type XdpAddressPoolSpec, type XdpAddressPoolStatus } from '../../../src/api/addresspool.js';
import { GROUP, VERSION } from '../../../src/api/loadbalancervip.js';

interface Schema {
  description?: string;
  default?: unknown;
  properties?: Record<string, Schema>;
  items?: Schema;
  required?: string[];
}

const read = (path: string) => readFileSync(fileURLToPath(new URL(`../../../../${path}`, import.meta.url)), 'utf8');
const crd = yaml.load(read('crds/xdpaddresspools.yaml')) as {
  spec: { group: string; scope: string; names: { kind: string; plural: string; shortNames: string[]; categories: string[] };
    versions: { name: string; subresources?: { status?: object }; additionalPrinterColumns: { name: string }[]; schema: { openAPIV3Schema: Schema } }[] };
};
const version = crd.spec.versions[0]!;
const root = version.schema.openAPIV3Schema;

test('names, scope, version, status subresource, printer columns', () => {
  assert.equal(crd.spec.group, GROUP);
  assert.equal(version.name, VERSION);
  assert.equal(crd.spec.names.kind, XDPAP_KIND);
  assert.equal(crd.spec.names.plural, XDPAP_PLURAL);
  assert.equal(crd.spec.scope, 'Cluster');
  assert.deepEqual(crd.spec.names.shortNames, ['xdpap']);
  assert.deepEqual(crd.spec.names.categories, ['xdplb']);
  assert.ok(version.subresources?.status);
  assert.deepEqual(version.additionalPrinterColumns.map((c) => c.name), ['CIDRs', 'AutoAssign', 'Accepted', 'InUse', 'Age']);
  assert.match(read('crds/kustomization.yaml'), /^ {2}- xdpaddresspools\.yaml$/m);
});

test('spec and status fields are those of the TypeScript types; the selector is required, autoAssign defaults to true', () => {
  const specFields: Record<keyof XdpAddressPoolSpec, true> = { cidrs: true, namespaceSelector: true, balancers: true, autoAssign: true };
  const statusFields: Record<keyof XdpAddressPoolStatus, true> = { observedGeneration: true, addressesInUse: true, conditions: true };
  const spec = root.properties!.spec!;
  assert.deepEqual(Object.keys(spec.properties!).sort(), Object.keys(specFields).sort());
  assert.deepEqual(Object.keys(root.properties!.status!.properties!).sort(), Object.keys(statusFields).sort());
  assert.deepEqual(spec.required, ['cidrs', 'namespaceSelector']);
  assert.equal(spec.properties!.autoAssign!.default, true);
});

test('every field of the spec says what it is', () => {
  const missing: string[] = [];
  const walk = (s: Schema, path: string) => {
    if (!s.description && !path.endsWith('[]')) missing.push(path);
    for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, `${path}.${k}`);
    if (s.items?.properties) for (const [k, v] of Object.entries(s.items.properties)) walk(v, `${path}[].${k}`);
  };
  walk(root.properties!.spec!, 'spec');
  assert.deepEqual(missing, []);
});
