/** Which images an XdpBalancer may run (src/controller/image-allowlist.ts). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ImageAllowlist, imageRepository } from '../../src/controller/image-allowlist.js';

describe('image allowlist', () => {
  test('the repository of an image: tag and digest go, a registry port stays', () => {
    for (const [image, repo] of [
      ['xdplb:0.1.0', 'xdplb'],
      ['xdplb', 'xdplb'],
      ['registry.example/xdplb:1', 'registry.example/xdplb'],
      ['registry.example:5000/team/xdplb:1', 'registry.example:5000/team/xdplb'],
      ['registry.example:5000/team/xdplb', 'registry.example:5000/team/xdplb'],
      ['registry.example/xdplb@sha256:abcd', 'registry.example/xdplb'],
      ['registry.example:5000/xdplb:1@sha256:abcd', 'registry.example:5000/xdplb'],
    ] as const) assert.equal(imageRepository(image), repo, image);
  });

  test('a repository allows its tags and digests, not a repository whose name it begins', () => {
    const a = ImageAllowlist.ofRepository('registry.example/xdplb:0.1.0', 'own');
    assert.deepEqual(a.entries, ['registry.example/xdplb']);
    for (const ok of ['registry.example/xdplb', 'registry.example/xdplb:0.2.0', 'registry.example/xdplb@sha256:abcd']) assert.ok(a.allows(ok), ok);
    for (const no of ['registry.example/xdplb-evil:1', 'registry.example/xdplbx', 'evil.example/xdplb:1', 'registry.example/xdplb/other:1', 'xdplb:1', ''])
      assert.ok(!a.allows(no), no);
  });

  test('--allowed-images: repositories, prefixes ending in a slash, exact images; commas and blanks', () => {
    const a = ImageAllowlist.parse(' registry.example/xdplb , mirror.example/team/,xdplb:dev ');
    assert.deepEqual(a.entries, ['registry.example/xdplb', 'mirror.example/team/', 'xdplb:dev']);
    for (const ok of ['registry.example/xdplb:1', 'mirror.example/team/xdplb:9', 'mirror.example/team/sub/x@sha256:ab', 'xdplb:dev'])
      assert.ok(a.allows(ok), ok);
    for (const no of ['mirror.example/teamx/xdplb:1', 'mirror.example/xdplb:1', 'xdplb:other', 'xdplb']) assert.ok(!a.allows(no), no);
    assert.throws(() => ImageAllowlist.parse(' , '), /--allowed-images names no image/);
    assert.throws(() => ImageAllowlist.parse('a b'), /"a b" is not an image/);
  });

  test('a refusal names the image, what is allowed and what to do; none allows nothing', () => {
    const a = ImageAllowlist.parse('registry.example/xdplb');
    assert.equal(a.refusal('registry.example/xdplb:2'), null);
    assert.equal(a.refusal('evil.example/miner:1'), 'image "evil.example/miner:1" is not allowed: the controller runs agents from only ' +
      'registry.example/xdplb (--allowed-images); use an allowed image, or have the cluster admin add it to the controller\'s ' +
      '--allowed-images (XDPLB_ALLOWED_IMAGES)');
    const none = ImageAllowlist.none('outside a pod');
    assert.ok(!none.allows('registry.example/xdplb:1'));
    assert.match(none.refusal('x:1')!, /runs agents from no image \(outside a pod\)/);
  });
});
