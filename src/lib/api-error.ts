/**
 * What the API server said when a request failed, readable in a log line.
 * @kubernetes/client-node 2 throws an ApiException whose message nests the
 * response body (a Status object) as escaped JSON, after the HTTP code and
 * the headers; its `code` and `body` (the text of that Status) hold the parts
 * worth reading: the code, the reason and the server's message.
 */

export interface ApiErrorInfo {
  /** HTTP status code, when the error came from the API server. */
  code?: number;
  /** The Status reason (NotFound, Forbidden, Invalid, AlreadyExists, ...). */
  reason?: string;
  /** The server's message, else the error's own. */
  message: string;
  /** The reasons of the Status details' causes (e.g. NamespaceTerminating). */
  causes: string[];
}

interface StatusBody {
  message?: string;
  reason?: string;
  details?: { causes?: { reason?: string }[] };
}

function statusBody(body: unknown): StatusBody | undefined {
  if (typeof body === 'object' && body !== null) return body as StatusBody;
  if (typeof body !== 'string' || !body.startsWith('{')) return undefined;
  try {
    return JSON.parse(body) as StatusBody;
  } catch {
    return undefined;
  }
}

/** A failure without a Status body (a 401, a proxy's page): its text, else the exception's own one-line message. */
function plainMessage(body: unknown, own: string): string {
  if (typeof body === 'string' && body.trim()) return body.trim();
  return /^Message: (.*)$/m.exec(own)?.[1] ?? own;
}

export function apiError(err: unknown): ApiErrorInfo {
  const e = err as { code?: unknown; body?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'number' ? e.code : undefined;
  const status = code === undefined ? undefined : statusBody(e?.body);
  const own = err instanceof Error ? err.message : String(err);
  return {
    code,
    reason: status?.reason,
    message: status?.message ?? (code === undefined ? own : plainMessage(e?.body, own)),
    causes: (status?.details?.causes ?? []).map((c) => c.reason).filter((r): r is string => !!r),
  };
}

/** Log fields for a failed request: `err` is the server's message, with its code and reason beside it. */
export function errorFields(err: unknown): { err: string; code?: number; reason?: string } {
  const { code, reason, message } = apiError(err);
  return { err: message, ...(code === undefined ? {} : { code }), ...(reason === undefined ? {} : { reason }) };
}

/**
 * A write refused because its namespace is being deleted: the API server
 * forbids new objects there (403, cause NamespaceTerminating). Retrying
 * cannot succeed; the namespace and everything in it are going.
 */
export function isNamespaceTerminating(err: unknown): boolean {
  const e = apiError(err);
  return e.code === 403 && (e.causes.includes('NamespaceTerminating') || /because it is being terminated/.test(e.message));
}

export function isNotFound(err: unknown): boolean {
  return apiError(err).code === 404;
}

/**
 * For a write to an object that may be gone, deleted or in a namespace being
 * deleted: false then (its delete event follows; a retry cannot succeed),
 * else the error again.
 */
export function goneOrThrow(err: unknown): false {
  if (isNotFound(err) || isNamespaceTerminating(err)) return false;
  throw err;
}
