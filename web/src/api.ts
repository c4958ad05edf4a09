/**
 * The one way the console talks to the server: the public /api/v1, with the session cookie (sent
 * by the browser, httpOnly) and the CSRF token from sign-in on every change. The CSRF token is
 * kept in sessionStorage so a reload keeps working; it is useless without the cookie, and no
 * recovery password or API token is ever stored anywhere but component state.
 *
 * Every path, parameter, body and answer is typed from web/src/api.gen.ts, which is generated from
 * the server's OpenAPI document (`npm run gen:api`; `npm run build` fails when it is stale). The
 * console writes no API shapes of its own: the named types below are picked out of the generated ones.
 */
import createClient, { type MaybeOptionalInit } from 'openapi-fetch';
import type { HttpMethod, PathsWithMethod, ResponseObjectMap, SuccessResponse } from 'openapi-typescript-helpers';
import type { paths } from './api.gen';

const CSRF_KEY = 'kw.csrf';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  readonly fields: { field: string; message: string }[] | undefined;
  constructor(status: number, code: string, message: string, details?: Record<string, unknown>, fields?: { field: string; message: string }[]) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.fields = fields;
  }
}

export const csrf = {
  get: () => sessionStorage.getItem(CSRF_KEY),
  set: (token: string) => sessionStorage.setItem(CSRF_KEY, token),
  clear: () => sessionStorage.removeItem(CSRF_KEY),
};

/**
 * Single sign-on: after the provider's redirect the server hands the new session's CSRF token over
 * once in a short-lived cookie readable by this script (kw_sso_csrf); it moves to sessionStorage
 * and the cookie is removed at once. Returns true when a token was adopted.
 */
export function adoptSsoCsrf(): boolean {
  const m = /(?:^|;\s*)kw_sso_csrf=([^;]+)/.exec(document.cookie);
  if (!m) return false;
  csrf.set(decodeURIComponent(m[1]!));
  document.cookie = 'kw_sso_csrf=; Max-Age=0; path=/; SameSite=Lax';
  return true;
}

/**
 * Self-service recovery (/recover, end users): its own CSRF token, handed over once by the sign-in
 * callback in `kw_recover_csrf` and kept apart from the console's; sent only to /api/v1/recover/….
 */
const RECOVER_CSRF_KEY = 'kw.recover.csrf';
export const recoverCsrf = {
  get: () => sessionStorage.getItem(RECOVER_CSRF_KEY),
  clear: () => sessionStorage.removeItem(RECOVER_CSRF_KEY),
  adopt(): void {
    const m = /(?:^|;\s*)kw_recover_csrf=([^;]+)/.exec(document.cookie);
    if (!m) return;
    sessionStorage.setItem(RECOVER_CSRF_KEY, decodeURIComponent(m[1]!));
    document.cookie = 'kw_recover_csrf=; Max-Age=0; path=/recover; SameSite=Lax';
  },
};
export const recoverStartUrl = '/api/v1/recover/start';

/** Where a "Sign in with …" button (a plain navigation, not a fetch) and an SSO step-up go. */
export const ssoStartUrl = (providerId: string) => `/api/v1/auth/sso/${encodeURIComponent(providerId)}/start`;
export const ssoStepUpUrl = (returnTo: string) => `/api/v1/auth/sso/step-up?returnTo=${encodeURIComponent(returnTo)}`;

/** Called when any request answers 401: the app goes back to sign-in. */
let onUnauthenticated: () => void = () => {};
export function setUnauthenticatedHandler(fn: () => void): void {
  onUnauthenticated = fn;
}

/** Every error answer of the API (src/http/schemas.ts ErrorBody), as documented on any route. */
type ErrorBody = paths['/api/v1/me']['get']['responses'][401]['content']['application/json'];

/** Sign-in, setup and the first /me answer 401 as part of their flow: no redirect for these. */
const QUIET_401 = 'x-kw-quiet-401';

const client = createClient<paths>({
  baseUrl: '',
  credentials: 'same-origin',
  cache: 'no-store',
  headers: { accept: 'application/json' },
  // Empty filters are left out of the URL, as a person would type it.
  querySerializer: (query) => {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v === undefined || v === null || v === '') continue;
      if (Array.isArray(v)) for (const item of v as unknown[]) u.append(k, String(item));
      else u.set(k, String(v));
    }
    return u.toString();
  },
});

client.use({
  onRequest({ request }) {
    if (request.method !== 'GET') {
      const token = new URL(request.url).pathname.startsWith('/api/v1/recover/') ? recoverCsrf.get() : csrf.get();
      if (token) request.headers.set('x-csrf-token', token);
    }
    return request;
  },
  async onResponse({ request, response }) {
    if (response.ok) return response;
    const b = (safeJson(await response.text()) ?? {}) as Partial<ErrorBody>;
    if (response.status === 401 && !request.headers.has(QUIET_401)) onUnauthenticated();
    throw new ApiError(response.status, b.error ?? 'error', b.message ?? `The server answered ${response.status}.`, b.details, b.fields);
  },
  onError({ error }) {
    if (error instanceof ApiError) return error;
    return new ApiError(0, 'network', 'The Keywarden server cannot be reached. Check your connection, then try again.');
  },
});

function safeJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ typed calls
type Paths<M extends HttpMethod> = PathsWithMethod<paths, M>;
/** What an operation answers on success (JSON). */
export type Answer<P extends keyof paths, M extends HttpMethod> =
  paths[P] extends Record<M, infer Op>
    ? ResponseObjectMap<Op> extends infer R extends Record<string | number, unknown>
      ? SuccessResponse<R, 'application/json'>
      : never
    : never;
/** The JSON body an operation takes. */
export type Body<P extends keyof paths, M extends HttpMethod> =
  paths[P] extends Record<M, infer Op> ? (Op extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never) : never;
/** The query parameters an operation takes. */
export type Query<P extends keyof paths, M extends HttpMethod> =
  paths[P] extends Record<M, infer Op> ? (Op extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never) : never;

type Init<P extends keyof paths, M extends HttpMethod> = MaybeOptionalInit<paths[P], M>;
type InitArg<I> = undefined extends I ? [init?: I & { quiet401?: boolean }] : [init: I & { quiet401?: boolean }];

type Call = (url: string, init?: Record<string, unknown>) => Promise<{ data?: unknown; response: Response }>;

function call(method: Call, url: string, init: (Record<string, unknown> & { quiet401?: boolean }) | undefined) {
  const { quiet401, ...rest } = init ?? {};
  const headers = quiet401 ? { [QUIET_401]: '1' } : undefined;
  return method(url, { ...rest, headers }).then((r) => r.data);
}

/**
 * `api.get('/api/v1/clients/{clientId}', { params: { path: { clientId } } })` answers the client, typed;
 * any answer other than 2xx is thrown as ApiError (401 also sends the app to sign-in unless quiet401).
 */
export const api = {
  get: <P extends Paths<'get'>>(url: P, ...init: InitArg<Init<P, 'get'>>) =>
    call(client.GET as unknown as Call, url, init[0] as Record<string, unknown>) as Promise<Answer<P, 'get'>>,
  post: <P extends Paths<'post'>>(url: P, ...init: InitArg<Init<P, 'post'>>) =>
    call(client.POST as unknown as Call, url, init[0] as Record<string, unknown>) as Promise<Answer<P, 'post'>>,
  put: <P extends Paths<'put'>>(url: P, ...init: InitArg<Init<P, 'put'>>) =>
    call(client.PUT as unknown as Call, url, init[0] as Record<string, unknown>) as Promise<Answer<P, 'put'>>,
  patch: <P extends Paths<'patch'>>(url: P, ...init: InitArg<Init<P, 'patch'>>) =>
    call(client.PATCH as unknown as Call, url, init[0] as Record<string, unknown>) as Promise<Answer<P, 'patch'>>,
  del: <P extends Paths<'delete'>>(url: P, ...init: InitArg<Init<P, 'delete'>>) =>
    call(client.DELETE as unknown as Call, url, init[0] as Record<string, unknown>) as Promise<Answer<P, 'delete'>>,
  /**
   * A file download (CSV, PDF): fetched with the cookie, then saved through a temporary link.
   * The path is one the server documents; the query is that operation's.
   */
  async download<P extends Paths<'get'>>(
    url: P,
    init: { params?: { path?: Record<string, string>; query?: Query<P, 'get'> } },
    fallbackName: string,
  ): Promise<void> {
    const r = await (client.GET as unknown as Call)(url, { ...init, parseAs: 'blob' });
    const blob = r.data as Blob;
    const name = /filename="([^"]+)"/.exec(r.response.headers.get('content-disposition') ?? '')?.[1] ?? fallbackName;
    const href = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = href;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10_000);
  },
  /**
   * A file the server answers to a POST (a break-glass bundle): what is secret travels in the body,
   * never in the URL. Answers the saved file's name and size.
   */
  async downloadPost<P extends Paths<'post'>>(
    url: P,
    init: { params?: { path?: Record<string, string> }; body: Body<P, 'post'> },
    fallbackName: string,
  ): Promise<{ name: string; bytes: number }> {
    const r = await (client.POST as unknown as Call)(url, { ...init, parseAs: 'blob' });
    const blob = r.data as Blob;
    const name = /filename="([^"]+)"/.exec(r.response.headers.get('content-disposition') ?? '')?.[1] ?? fallbackName;
    const href = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = href;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10_000);
    return { name, bytes: blob.size };
  },
  /**
   * A multipart upload (key files): the form goes as it is (the browser sets its boundary), with
   * the same CSRF, 401 and error handling as every other call; the answer is the operation's, typed.
   */
  upload: <P extends Paths<'post'>>(url: P, form: FormData) => call(client.POST as unknown as Call, url, { body: form }) as Promise<Answer<P, 'post'>>,
};

// ------------------------------------------------------------------ named shapes, picked from the generated ones
type Item<T> = T extends readonly (infer I)[] ? I : never;

export type Me = Answer<'/api/v1/me', 'get'>;
export type Permission = Me['permissions'][number];
export type User = Answer<'/api/v1/users/{userId}', 'get'>;
export type Role = User['role'];
export type Client = Item<Answer<'/api/v1/clients', 'get'>>;
export type KeySummary = Item<Answer<'/api/v1/keys', 'get'>>;
export type AuditEvent = Item<Answer<'/api/v1/audit', 'get'>>;
/** What the agent can be asked to do on a device (docs/agent-protocol.md). */
export type JobKind = Body<'/api/v1/devices/{deviceId}/jobs', 'post'>['kind'];
/** The encryption method enable-encryption asks Windows for; 'default' leaves it to Windows. */
export type EncryptionMethodChoice = NonNullable<Body<'/api/v1/devices/{deviceId}/jobs', 'post'>['encryptionMethod']>;
export type Job = Item<Answer<'/api/v1/devices/{deviceId}/jobs', 'get'>>;
/** A job in a client's list: the same, with its device. */
export type ClientJob = Item<Answer<'/api/v1/clients/{clientId}/agent-jobs', 'get'>>;
/** POST /clients/{id}/agent-jobs: what was (or, with dryRun, would be) queued, and why the rest was not. */
export type BulkQueueResult = Answer<'/api/v1/clients/{clientId}/agent-jobs', 'post'>;
export type AgentHealth = Answer<'/api/v1/agent/health', 'get'>;
/** GET /agent/files (public): the rollout kit the server serves, byte for byte the repository's files. */
export type AgentFiles = Answer<'/api/v1/agent/files', 'get'>;
