/**
 * --metrics-auth of every daemon (controller, balancer agent, backend agent):
 * `none` serves /metrics to whoever connects, so only on loopback;
 * `kubernetes` serves it only to a bearer token RBAC allows "get /metrics"
 * (TokenReview + SubjectAccessReview, see access-review.ts), on any address.
 * Errors are usage errors: each daemon says them with its usage and exits 2.
 */
import { LOOPBACK_HOSTS, parseHostPort } from './metrics-server.js';
import { type ServingTls, servingTls } from './serving-tls.js';

export const AUTH_MODES = ['none', 'kubernetes'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];

/** The value of --FLAG (an --X-auth flag, or its environment variable); none when not given. */
export function parseAuthMode(flag: string, raw: string | undefined): AuthMode {
  const mode = raw ?? 'none';
  if (!(AUTH_MODES as readonly string[]).includes(mode)) throw new Error(`--${flag} must be one of ${AUTH_MODES.join(', ')}, not "${mode}"`);
  return mode as AuthMode;
}

/** Throws unless /metrics at `address` ('' serves none) is authenticated or on loopback. */
export function checkMetricsExposure(address: string, auth: AuthMode): void {
  if (address && auth === 'none' && !LOOPBACK_HOSTS.has(parseHostPort(address).host)) {
    throw new Error(`--metrics-address ${address} is not on loopback: serve /metrics on other addresses only with --metrics-auth kubernetes`);
  }
}

/**
 * --metrics-auth and --metrics-address of a daemon whose /metrics is meant to be
 * scraped from elsewhere (controller, backend agent): without an address, every
 * interface on `port` with kubernetes, loopback with none.
 */
export function metricsEndpoint(rawAuth: string | undefined, rawAddress: string | undefined, port: number): { auth: AuthMode; address: string } {
  const auth = parseAuthMode('metrics-auth', rawAuth);
  const address = rawAddress ?? `${auth === 'kubernetes' ? '0.0.0.0' : '127.0.0.1'}:${port}`;
  checkMetricsExposure(address, auth);
  return { auth, address };
}

/**
 * The certificate of an endpoint that reviews tokens (they must not cross the network in clear text): the
 * files given (--tls-cert-file, --tls-key-file), else a self-signed one made now. None for `none` (loopback).
 */
export function reviewedEndpointTls(auth: AuthMode, files: { certFile?: string; keyFile?: string }, commonName: string): ServingTls | undefined {
  if (auth !== 'kubernetes') return undefined;
  return servingTls({ ...files, commonName, ipAddresses: ['127.0.0.1', '::1'] });
}
