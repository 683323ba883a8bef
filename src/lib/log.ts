import { pino, type Logger } from 'pino';

/** The process-wide structured logger; children add a `component` field. */
export const log: Logger = pino({
  name: 'xdplb',
  level: process.env.XDPLB_LOG_LEVEL ?? 'info',
});

export function componentLog(component: string): Logger {
  return log.child({ component });
}
