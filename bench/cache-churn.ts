/** Agent memory under churn: the validated-VIP and address caches, each run in its own process. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { VIP_CACHE_BUDGET_BYTES } from '../src/agent/dataplane/desired-state.js';

const CHILD = fileURLToPath(new URL('./cache-churn-run.js', import.meta.url));
const MIB = 2 ** 20;

interface Run {
  mode: string;
  steps: number;
  floor: number;
  retained: number;
  peakWeight: number;
  parseCache: { entries: number };
}

export function cacheChurn(): string {
  const rows = [['pool', 2000], ['pool', 4000], ['distinct', 500]].map(([mode, steps]) => {
    const r = spawnSync(process.execPath, ['--expose-gc', CHILD, String(mode), String(steps)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cache churn (${mode}, ${steps}) failed: ${r.stderr}`);
    const x = JSON.parse(r.stdout.trim().split('\n').pop()!) as Run;
    return `| ${x.mode} | ${x.steps} | ${(x.retained / MIB).toFixed(1)} MiB | ${(x.floor / MIB).toFixed(2)} MiB | ${(x.retained / x.floor).toFixed(0)}x | ` +
      `${(x.peakWeight / MIB).toFixed(1)} of ${VIP_CACHE_BUDGET_BYTES / MIB} MiB | ${x.parseCache.entries} |`;
  });
  return [
    'Agent caches under churn: a 1000-real VIP validated once per step, in a fresh process per row; heap after a full collection.',
    'pool: each step shifts the reals through a pool of 4000 addresses; distinct: every step brings 1000 new addresses.',
    '',
    '| churn | steps | heap retained | floor (one validated VIP) | vs floor | VIP cache peak (estimate) of budget | address cache entries |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}
