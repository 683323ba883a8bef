/**
 * Who may read an agent's endpoints, decided the way kube-rbac-proxy decides:
 * the caller's bearer token is checked by a TokenReview, what it asks for by
 * a SubjectAccessReview, both against the API server, so RBAC is the one
 * place that says who may scrape /metrics or trace which namespace's VIPs.
 * Answers (allowed and denied alike) are kept for a short while, and at most
 * so many of them, so a scrape every 15 s or a reconnecting client costs no
 * API request each time, and a revoked binding takes effect within the TTL.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';

/** Who a token belongs to (TokenReview's status.user). */
export interface Caller {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

/** A request on a resource (SubjectAccessReview's resourceAttributes); namespace "" means every namespace. */
export interface ResourceAccess {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/** A request on a path that is no resource (nonResourceAttributes), e.g. get /metrics. */
export interface PathAccess {
  verb: string;
  path: string;
}

export type Access = ResourceAccess | PathAccess;

export interface AccessReviewer {
  /** The token's owner, null when the API server does not accept the token. */
  authenticate(token: string): Promise<Caller | null>;
  allowed(caller: Caller, access: Access): Promise<boolean>;
}

export const DEFAULT_REVIEW_TTL_MS = 10_000;
export const DEFAULT_REVIEW_CACHE_ENTRIES = 4096;

/** A map whose entries expire after ttlMs and that forgets its oldest entries beyond `max`. */
export class ExpiringCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();

  constructor(private readonly ttlMs: number, private readonly max: number, private readonly now = Date.now) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  set(key: string, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, { value, expires: this.now() + this.ttlMs });
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
  }
}

/** Memoizes concurrent and recent answers of `compute` by key. */
function cached<V>(cache: ExpiringCache<Promise<V>>, key: string, compute: () => Promise<V>): Promise<V> {
  const hit = cache.get(key);
  if (hit) return hit;
  const p = compute();
  cache.set(key, p);
  // A failed review (API server unreachable) is not an answer: ask again next time.
  p.catch(() => {
    if (cache.get(key) === p) cache.delete(key);
  });
  return p;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export interface KubeAccessReviewerOptions {
  ttlMs?: number;
  maxEntries?: number;
  /** TokenReview audiences the token must hold; default: the API server's own. */
  audiences?: string[];
}

/** TokenReview and SubjectAccessReview through the API server (the caller of these needs system:auth-delegator). */
export class KubeAccessReviewer implements AccessReviewer {
  private readonly authn: AuthenticationV1Api;
  private readonly authz: AuthorizationV1Api;
  private readonly tokens: ExpiringCache<Promise<Caller | null>>;
  private readonly decisions: ExpiringCache<Promise<boolean>>;
  reviews = 0;

  constructor(kc: KubeConfig, private readonly opts: KubeAccessReviewerOptions = {}) {
    this.authn = kc.makeApiClient(AuthenticationV1Api);
    this.authz = kc.makeApiClient(AuthorizationV1Api);
    const ttl = opts.ttlMs ?? DEFAULT_REVIEW_TTL_MS;
    const max = opts.maxEntries ?? DEFAULT_REVIEW_CACHE_ENTRIES;
    this.tokens = new ExpiringCache(ttl, max);
    this.decisions = new ExpiringCache(ttl, max);
  }

  authenticate(token: string): Promise<Caller | null> {
    // Keyed by a hash: the cache holds no usable credential.
    return cached(this.tokens, sha256(token), async () => {
      this.reviews++;
      const r = await this.authn.createTokenReview({ body: { spec: { token, audiences: this.opts.audiences } } });
      const u = r.status?.user;
      if (!r.status?.authenticated || !u?.username) return null;
      return { username: u.username, uid: u.uid, groups: u.groups ?? [], extra: u.extra };
    });
  }

  allowed(caller: Caller, access: Access): Promise<boolean> {
    return cached(this.decisions, sha256(JSON.stringify([caller, access])), async () => {
      this.reviews++;
      const attrs = 'path' in access
        ? { nonResourceAttributes: { path: access.path, verb: access.verb } }
        : { resourceAttributes: { ...access, namespace: access.namespace ?? '' } };
      const r = await this.authz.createSubjectAccessReview({
        body: { spec: { user: caller.username, uid: caller.uid, groups: caller.groups, extra: caller.extra, ...attrs } },
      });
      return r.status?.allowed === true && r.status.denied !== true;
    });
  }
}

/** The bearer token of a request's Authorization header, if it has one. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m?.[1];
}

/** Why a request was refused: 401 (no or a bad token), 403 (not allowed) or 503 (the API server did not answer). */
export class AccessDenied extends Error {
  constructor(readonly status: 401 | 403 | 503, message: string) {
    super(message);
    this.name = 'AccessDenied';
  }
}

/** The request's caller; throws AccessDenied (401, 503) when there is none. */
export async function callerOf(reviewer: AccessReviewer, req: IncomingMessage): Promise<Caller> {
  const token = bearerToken(req);
  if (!token) throw new AccessDenied(401, 'no bearer token: send "Authorization: Bearer TOKEN" (a token the API server accepts)');
  let caller: Caller | null;
  try {
    caller = await reviewer.authenticate(token);
  } catch (err) {
    throw new AccessDenied(503, `cannot review the token: ${(err as Error).message}`);
  }
  if (!caller) throw new AccessDenied(401, 'the API server does not accept this token');
  return caller;
}

/** Whether the caller may do `access`; throws AccessDenied(503) when the API server did not answer. */
export async function check(reviewer: AccessReviewer, caller: Caller, access: Access): Promise<boolean> {
  try {
    return await reviewer.allowed(caller, access);
  } catch (err) {
    throw new AccessDenied(503, `cannot review access: ${(err as Error).message}`);
  }
}

export function describeAccess(a: Access): string {
  if ('path' in a) return `${a.verb} ${a.path}`;
  const res = `${a.resource}${a.subresource ? `/${a.subresource}` : ''}${a.group ? `.${a.group}` : ''}`;
  return `${a.verb} ${res}${a.name ? ` "${a.name}"` : ''} ${a.namespace ? `in namespace ${a.namespace}` : 'in all namespaces (cluster-wide)'}`;
}
