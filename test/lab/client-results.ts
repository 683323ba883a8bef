/** What the lab's client program (programs/client.js) answers, per mode, and what the tests require of it. */

export interface ConnectResult {
  byReal: Record<string, number>;
  failures: number;
  errors: string[];
}
export interface UdpResult {
  byPort: Record<string, string>;
  failures: number;
  errors: string[];
}
export interface LongResult {
  real: string;
  sent: number;
  received: number;
  error: string;
}
export interface LargeResult {
  real: string;
  sent: number;
  /** Bytes of the line the real echoed, once whole; 0 if it never came. */
  received: number;
  error: string;
}
export interface ContinuousResult {
  ok: number;
  failures: number;
  errors: string[];
}

/**
 * Messages a long-lived connection must have exchanged to count as having lived
 * through the change: a few, not what its interval would give in the time (a
 * loaded 2-core machine starves the client; load averages of 20 were seen).
 */
export const LONG_LIVED_MIN_MESSAGES = 5;
