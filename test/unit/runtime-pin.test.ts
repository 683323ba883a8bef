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

test('deploy/Dockerfile builds on the pinned release, from base images given by tag and, once pinned, digest', () => {
  const dockerfile = read('deploy/Dockerfile');
  const v = pinned.replace(/\./g, '\\.');
  // scripts/pin-base-images.sh writes the digests; until it has run where Docker Hub answers, the tag only.
  assert.match(dockerfile, new RegExp(`^ARG BUILD_IMAGE=node:${v}-bookworm(@sha256:[0-9a-f]{64})?$`, 'm'));
  assert.match(dockerfile, new RegExp(`^ARG RUNTIME_IMAGE=node:${v}-bookworm-slim(@sha256:[0-9a-f]{64})?$`, 'm'));
  const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  assert.deepEqual(froms.slice(0, 2), ['${BUILD_IMAGE}', '${RUNTIME_IMAGE}'], 'the build and runtime stages start from the pinned images');
  assert.ok(froms.slice(2).every((f) => f === 'runtime'), 'the other stages start from the runtime stage');
});

test('deploy/Dockerfile installs each Debian package at a pinned version', () => {
  const dockerfile = read('deploy/Dockerfile');
  for (const stage of ['BUILD', 'RUNTIME']) {
    const pins = dockerfile.match(new RegExp(`^ARG ${stage}_PACKAGES="([^"]*)"$`, 'm'))?.[1];
    assert.ok(pins, `ARG ${stage}_PACKAGES="..."`);
    // scripts/pin-debian-packages.sh writes name=version (Debian's version syntax: epoch, upstream, revision).
    for (const p of pins.split(' ')) assert.match(p, /^[a-z0-9][a-z0-9.+-]*=(\d+:)?[0-9][A-Za-z0-9.+~:-]*$/, `${stage}_PACKAGES: ${p}`);
    // The stage installs exactly that list.
    assert.match(dockerfile, new RegExp(`^ARG ${stage}_PACKAGES\n(?:.*\n)*?.*apt-get install -y --no-install-recommends \\$\\{${stage}_PACKAGES\\} `, 'm'));
  }
});

test('the tests run on the pinned release', () => {
  // npm test puts the pinned node first on PATH (scripts/lib/node.sh).
  assert.equal(process.versions.node.split('.')[0], major);
});
