/** The Node.js release is pinned once, in .node-version; everything that names a runtime must agree. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const root = new URL('../../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');
const pinned = read('.node-version').trim();
const major = pinned.split('.')[0]!;

test('.node-version holds one exact release', () => {
  assert.match(pinned, /^\d+\.\d+\.\d+$/);
});

test('package.json engines allow the pinned release line only', () => {
  const pkg = JSON.parse(read('package.json')) as { engines: { node: string } };
  assert.equal(pkg.engines.node, `^${pinned}`);
});

test('deploy/Dockerfile builds on the pinned release', () => {
  const dockerfile = read('deploy/Dockerfile');
  assert.match(dockerfile, new RegExp(`^ARG NODE_VERSION=${pinned.replace(/\./g, '\\.')}$`, 'm'));
  const froms = [...dockerfile.matchAll(/^FROM node:(\S+)/gm)].map((m) => m[1]);
  assert.ok(froms.length >= 2, 'the build and runtime stages start from node images');
  for (const f of froms) assert.match(f!, /^\$\{NODE_VERSION\}-/);
});

test('the tests run on the pinned release', () => {
  // npm test puts the pinned node first on PATH (scripts/lib/node.sh).
  assert.equal(process.versions.node.split('.')[0], major);
});
