/** Agent reconcile benchmark: each size in its own process. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./agent-reconcile.js', import.meta.url));

interface Result {
  vips: number;
  cold: number;
  change: number;
  noop: number;
  adopt: number;
  firstAfterAdopt: number;
  rssLoaded: number;
  rss: number;
}

export function agentReconcile(): string {
  const rows = [1, 100, 1000].map((n) => {
    const r = spawnSync(process.execPath, ['--expose-gc', CHILD, String(n)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`reconcile benchmark for ${n} VIPs failed: ${r.stderr}`);
    const x = JSON.parse(r.stdout.trim().split('\n').pop()!) as Result;
    return `| ${n} x 100 | ${(x.cold / 1000).toFixed(2)} s | ${x.change.toFixed(1)} ms | ${x.noop.toFixed(1)} ms | ${x.adopt.toFixed(0)} ms + ${x.firstAfterAdopt.toFixed(0)} ms | ${x.rssLoaded.toFixed(0)} MB | ${x.rss.toFixed(0)} MB |`;
  });
  return [
    'Agent reconcile (Dataplane.apply on the real maps, in a fresh process per size; reals drawn from a pool of 4000).',
    '',
    '| VIPs x reals | cold start | one-real change | no change | restart: adopt + first apply | RSS loaded | RSS after |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}
