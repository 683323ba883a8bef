import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import { FileSource } from '../../src/agent/sources/file-source.js';
import type { Programmer, VipSource } from '../../src/agent/sources/source.js';

const file = (names: string[]) => `vips:\n${names.map((n, i) => `  - { name: ${n}, address: 198.19.0.${10 + i}, ports: [{ port: 80 }], reals: [] }\n`).join('')}`;
const addresses = (vips: VipSpec[]) => vips.map((v) => v.address);

test('the file source as a VIP source: initial state, then each valid change programmed, including one made before follow()', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xdplb-file-source-'));
  const path = join(dir, 'vips.yaml');
  const programmed: string[][] = [];
  const programmer: Programmer = {
    accept: (vips) => ({ accepted: vips.map((_, i) => i), refused: new Map(), general: [] }),
    setVips: async (vips) => {
      programmed.push(addresses(vips));
    },
  };
  let changes = 0;
  const source: VipSource & FileSource = new FileSource(path, { onVips: () => changes++ });
  const replace = async (text: string) => {
    const seen = changes;
    writeFileSync(`${path}.new`, text);
    renameSync(`${path}.new`, path);
    for (let i = 0; i < 250 && changes === seen; i++) await new Promise((r) => setTimeout(r, 20));
    await source.settled();
    assert.ok(changes > seen, 'timed out waiting for the watcher');
  };
  try {
    writeFileSync(path, file(['a']));
    await source.start();
    assert.deepEqual(addresses(await source.initial(programmer)), ['198.19.0.10']);
    await replace(file(['a', 'b'])); // read while the agent is still starting: not lost
    assert.deepEqual(programmed, [], 'nothing is programmed before follow()');
    await source.follow(programmer);
    assert.deepEqual(programmed, [['198.19.0.10', '198.19.0.11']]);
    await replace(file(['a', 'b', 'c']));
    assert.deepEqual(programmed.at(-1), ['198.19.0.10', '198.19.0.11', '198.19.0.12']);
    assert.deepEqual(source.describe(), { config: path });
  } finally {
    await source.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
