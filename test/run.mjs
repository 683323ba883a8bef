// Runs every compiled test (dist/test/**/*.test.js) with node's test runner.
// Kernel tests share bpffs, interfaces and namespaces: one file at a time.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return find(p);
    return p.endsWith('.test.js') ? [p] : [];
  });
}

const only = process.argv.slice(2);
// The kind suite's files need the cluster test/e2e/kind/run.sh sets up: they run
// only when a filter names them (run.sh does).
const KIND_SUITE = join('e2e', 'kind') + '/';
const files = find('dist/test')
  .filter((f) => (only.length === 0 ? true : only.some((o) => f.includes(o))))
  .filter((f) => !f.includes(KIND_SUITE) || only.some((o) => o.includes('e2e/kind')))
  .sort();
if (files.length === 0) {
  console.error('no test files found under dist/test: run "npm run build" first');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--enable-source-maps', '--test', '--test-concurrency=1', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
