/** The standalone file's healthCheck block, checked as the CRD checks spec.healthCheck (the same bounds, from src/api/health-check.ts). */
import { HEALTH_CHECK_BOUNDS, type HealthCheckSpec } from '../../api/health-check.js';
import { MAX_PORT, MIN_PORT } from '../../api/types.js';

interface Problem {
  path: string;
  reason: string;
}

const KEYS = ['enabled', 'port', 'intervalSeconds', 'timeoutSeconds', 'unhealthyThreshold', 'healthyThreshold'] as const;

/** The block as given, with every problem pushed onto `problems` (the port's tie to the VIP's TCP ports is planHealthCheck's). */
export function parseHealthCheck(raw: unknown, at: string, problems: Problem[]): HealthCheckSpec {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.push({ path: at, reason: 'must be a mapping' });
    return {};
  }
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!(KEYS as readonly string[]).includes(k)) problems.push({ path: `${at}.${k}`, reason: `unknown field (allowed: ${KEYS.join(', ')})` });
  const out: HealthCheckSpec = {};
  if (o.enabled !== undefined) {
    if (typeof o.enabled !== 'boolean') problems.push({ path: `${at}.enabled`, reason: 'must be true or false' });
    else out.enabled = o.enabled;
  }
  const int = (k: keyof typeof HEALTH_CHECK_BOUNDS | 'port', min: number, max: number) => {
    const v = o[k];
    if (v === undefined) return;
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) problems.push({ path: `${at}.${k}`, reason: `${JSON.stringify(v)} is not an integer in ${min}..${max}` });
    else out[k] = v as number;
  };
  int('port', MIN_PORT, MAX_PORT);
  for (const k of Object.keys(HEALTH_CHECK_BOUNDS) as (keyof typeof HEALTH_CHECK_BOUNDS)[]) int(k, HEALTH_CHECK_BOUNDS[k].min, HEALTH_CHECK_BOUNDS[k].max);
  if (out.timeoutSeconds !== undefined && out.intervalSeconds !== undefined && out.timeoutSeconds >= out.intervalSeconds) {
    problems.push({ path: `${at}.timeoutSeconds`, reason: 'must be less than intervalSeconds' });
  }
  return out;
}
