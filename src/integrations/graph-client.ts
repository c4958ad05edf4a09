import { createPrivateKey, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Response } from 'undici';
import { AppError } from '../lib/errors.js';
import type { EgressPolicy } from './egress.js';

/**
 * A thin Microsoft Graph client for BitLocker keys: client-credentials token (cached until it
 * expires), retries that honour Retry-After (seconds or an HTTP date) on 429/503/504 and back off
 * exponentially with jitter when there is none, @odata.nextLink paging on the configured Graph
 * origin only. No business logic: the graph module decides what to read and what to store. Base
 * URLs come from the connection, so national clouds and the test simulator use the same code.
 *
 * Every request goes through the egress policy and no redirect is followed, so the bearer token and
 * the app secret only ever travel to the configured, checked addresses. What the remote side says
 * is reported as its HTTP status, an error code Keywarden knows and Keywarden's own words: its
 * text is never repeated, because it ends up in sync results that auditors and client viewers read.
 */

export type GraphCredentials = {
  tenantId: string;
  clientId: string;
  /**
   * How the app proves itself: its client secret, or a certificate (RFC 7523 client assertion,
   * signed here with the private key for each token request; `x5tS256` names the certificate).
   */
  credential: { kind: 'secret'; clientSecret: string } | { kind: 'certificate'; privateKeyPem: string; x5tS256: string };
  /** e.g. https://login.microsoftonline.com (US Gov: https://login.microsoftonline.us) */
  loginUrl: string;
  /** e.g. https://graph.microsoft.com (US Gov L4: https://graph.microsoft.us) */
  graphUrl: string;
};

export type GraphKey = { id: string; createdDateTime: string; volumeType: string | number | null; deviceId: string | null; key?: string };
export type GraphKeyReadAudit = {
  id: string;
  activityDateTime: string;
  result?: string;
  initiatedBy?: {
    user?: { userPrincipalName?: string | null; ipAddress?: string | null } | null;
    app?: { appId?: string | null; displayName?: string | null } | null;
  };
  targetResources?: { displayName?: string | null }[];
};

export type GraphDevice = {
  id: string;
  deviceId: string;
  displayName: string;
  operatingSystem?: string | null;
  operatingSystemVersion?: string | null;
  trustType?: string | null;
  approximateLastSignInDateTime?: string | null;
};

/**
 * A Graph or sign-in failure: the HTTP status (0 when no answer came), an error code (a known
 * Microsoft code, or Keywarden's own such as http_500 or redirect) and a message in Keywarden's
 * words. Never a token, a secret or text from the remote answer.
 */
export class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The sign-in endpoint's AADSTS number, when it is one Keywarden knows (see AADSTS_WORDS). */
    readonly aadsts: number | null = null,
  ) {
    super(message);
    this.name = 'GraphError';
  }
}

export type GraphClientOptions = {
  /** Every connection goes through it (Graph and the sign-in endpoint are internet services). */
  egress: EgressPolicy;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  maxRetries?: number;
  userAgent?: string;
  /** Called for every wait, so runs can report how long throttling cost. */
  onWait?: (ms: number, reason: string) => void;
  /**
   * A person's delegated access token (self-service sign-in): used as is, no client-credentials
   * sign-in, and a 401 is final (there is nothing to refresh it with). Never logged or stored.
   */
  accessToken?: string;
};

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Retry-After is either delta-seconds or an HTTP date. */
export function retryAfterMs(header: string | null, now: number): number | null {
  if (!header) return null;
  const secs = Number(header);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** The OAuth error codes of the sign-in endpoint, with what they mean for this connection. */
const SIGN_IN_CODES: Record<string, string> = {
  invalid_client: "refused the application ID or secret: check the app registration's client secret (its value, not its ID) and that it has not expired",
  unauthorized_client: 'does not let this app registration sign in with a client secret in this tenant',
  invalid_request: 'refused the request: check the tenant ID and the sign-in URL of this connection',
  invalid_scope: 'refused the Graph address as a scope: check that the Graph URL belongs to the same cloud as the sign-in URL',
  invalid_grant: 'refused the grant: check the app registration and its admin consent',
  unsupported_grant_type: 'does not accept client credentials at this address: check the sign-in URL',
  temporarily_unavailable: 'is temporarily unavailable: the next sync tries again',
  server_error: 'had a server error: the next sync tries again',
};

/**
 * AADSTS numbers of the sign-in endpoint that say more than the OAuth error code, in Keywarden's
 * words. 7000229, 700016 and 65001 mean the app has no standing in the tenant (consent withdrawn,
 * never given, or the app deleted); the graph module treats them as "consent lost".
 */
export const AADSTS_WORDS: Record<number, string> = {
  7000229: 'has no service principal for this app in the tenant: admin consent was withdrawn (or never given) there',
  700016: 'does not know this application in the tenant: the app registration was deleted, or was never consented to there',
  65001: 'says no administrator has consented to this app in the tenant',
  700027: 'refused the certificate: upload the certificate Keywarden shows (same thumbprint) to the app registration, or check that it has not expired',
  700024: "refused the signed client assertion as outside its valid time: check this server's clock",
  700021: 'refused the signed client assertion: its application ID does not match',
  700023: 'refused the signed client assertion: its audience does not match the sign-in URL',
  7000215: "refused the client secret: check the app registration's client secret (its value, not its ID)",
  7000222: 'refused the client secret because it has expired: add a new one to the app registration',
};

/** The Graph error codes Keywarden recognises; any other code is reported as http_<status>. */
const GRAPH_CODES = new Set([
  'Authorization_RequestDenied',
  'Authorization_IdentityNotFound',
  'InvalidAuthenticationToken',
  'Request_ResourceNotFound',
  'Request_BadRequest',
  'Request_UnsupportedQuery',
  'ResourceNotFound',
  'BadRequest',
  'Forbidden',
  'accessDenied',
  'Unauthorized',
  'NotFound',
  'TooManyRequests',
  'ServiceUnavailable',
  'InternalServerError',
  'generalException',
  'UnknownError',
]);

function graphWords(status: number): string {
  if (status === 400) return 'Microsoft Graph refused the request as invalid';
  if (status === 401) return 'Microsoft Graph did not accept the access token';
  if (status === 403) return 'Microsoft Graph denied access: the app registration lacks a permission this step needs, or its admin consent';
  if (status === 404) return 'Microsoft Graph did not find the requested item';
  if (status === 429 || status === 503 || status === 504) return 'Microsoft Graph stayed throttled or unavailable after every retry';
  if (status >= 500) return `Microsoft Graph had a server error (HTTP ${status})`;
  return `Microsoft Graph answered HTTP ${status}`;
}

/** Answers larger than this are not read: no Graph page comes near it. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

/** The body as text, or null when it is larger than Keywarden reads. */
async function readText(res: Response): Promise<string | null> {
  if (!res.body) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  // Leaving the loop early cancels the stream: the rest is never downloaded.
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Why a connection failed, in Keywarden's words: the egress refusal, or the system's error code. */
function unreachable(e: unknown, service: string, host: string): GraphError {
  if (e instanceof AppError && e.details?.egress) return new GraphError(0, 'refused', e.message);
  const cause = (e as { cause?: { code?: unknown } } | null)?.cause;
  const code = typeof cause?.code === 'string' && /^[A-Z0-9_]{2,40}$/.test(cause.code) ? ` (${cause.code})` : '';
  return new GraphError(0, 'unreachable', `Cannot reach ${service} at ${host}${code}.`);
}

const redirected = (status: number, service: string, field: string) =>
  new GraphError(status, 'redirect', `${service} answered with a redirect, which Keywarden does not follow: check the ${field} of this connection.`);

export function createGraphClient(creds: GraphCredentials, opts: GraphClientOptions) {
  const sleep = opts.sleep ?? defaultSleep;
  const now = opts.now ?? Date.now;
  const maxRetries = opts.maxRetries ?? 8;
  const { egress } = opts;
  const graph = creds.graphUrl.replace(/\/+$/, '');
  const graphOrigin = new URL(graph).origin;
  let token: { value: string; expiresAt: number } | null = null;
  // Graph throttles per app and tenant: when one request is told to wait, every request of this
  // client waits until then, instead of the other workers running into the limit again.
  let notBefore = 0;
  const pause = async () => {
    for (let left = notBefore - now(); left > 0; left = notBefore - now()) await sleep(left);
  };

  /**
   * The client's proof for one token request: the secret, or a fresh client assertion (RFC 7523,
   * as Microsoft's "certificate credentials" describe it): PS256, `x5t#S256`, aud = the token
   * endpoint, iss = sub = the application id, a new jti, valid for 10 minutes.
   */
  async function proof(tokenUrl: string): Promise<Record<string, string>> {
    const c = creds.credential;
    if (c.kind === 'secret') return { client_secret: c.clientSecret };
    const at = Math.floor(now() / 1000);
    let key;
    try {
      key = createPrivateKey(c.privateKeyPem);
    } catch {
      throw new GraphError(0, 'certificate', "The connection's certificate private key cannot be read: upload or generate the certificate again.");
    }
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'PS256', typ: 'JWT', 'x5t#S256': c.x5tS256 })
      .setIssuer(creds.clientId)
      .setSubject(creds.clientId)
      .setAudience(tokenUrl)
      .setJti(randomUUID())
      .setIssuedAt(at)
      .setNotBefore(at)
      .setExpirationTime(at + 600)
      .sign(key);
    return { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion };
  }

  async function getToken(force = false): Promise<string> {
    if (opts.accessToken) return opts.accessToken;
    if (!force && token && token.expiresAt - 60_000 > now()) return token.value;
    const url = `${creds.loginUrl.replace(/\/+$/, '')}/${encodeURIComponent(creds.tenantId)}/oauth2/v2.0/token`;
    const scope = graph.startsWith('https://') ? `${new URL(graph).origin}/.default` : 'https://graph.microsoft.com/.default';
    const signIn = 'The Microsoft sign-in endpoint';
    let res: Response;
    try {
      res = await egress.fetch(
        url,
        {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': opts.userAgent ?? 'Keywarden' },
          body: new URLSearchParams({ grant_type: 'client_credentials', client_id: creds.clientId, ...(await proof(url)), scope }),
        },
        'internet',
        'the Microsoft sign-in endpoint',
      );
    } catch (e) {
      throw unreachable(e, 'the Microsoft sign-in endpoint', new URL(url).host);
    }
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel().catch(() => undefined);
      throw redirected(res.status, signIn, 'sign-in URL');
    }
    const text = await readText(res);
    const body = ((text ? safeJson(text) : null) ?? {}) as { access_token?: unknown; expires_in?: unknown; error?: unknown; error_codes?: unknown };
    if (!res.ok || typeof body.access_token !== 'string' || !body.access_token) {
      // Only the OAuth error code (and a known AADSTS number) is used; the description (and
      // anything else in the answer) is not repeated.
      const code = typeof body.error === 'string' && Object.hasOwn(SIGN_IN_CODES, body.error) ? body.error : null;
      const aadsts = Array.isArray(body.error_codes)
        ? body.error_codes.find((n): n is number => typeof n === 'number' && Object.hasOwn(AADSTS_WORDS, n))
        : undefined;
      if (aadsts !== undefined) throw new GraphError(res.status, code ?? `http_${res.status}`, `${signIn} ${AADSTS_WORDS[aadsts]} (AADSTS${aadsts}).`, aadsts);
      if (code) throw new GraphError(res.status, code, `${signIn} ${SIGN_IN_CODES[code]}.`);
      if (res.ok) throw new GraphError(res.status, 'token_error', `${signIn} answered without an access token.`);
      throw new GraphError(res.status, `http_${res.status}`, `${signIn} refused the sign-in with HTTP ${res.status}.`);
    }
    const expiresIn = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : Number(body.expires_in) || 3600;
    token = { value: body.access_token, expiresAt: now() + expiresIn * 1000 };
    return token.value;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Graph's JSON differs per endpoint; each caller narrows it to its documented shape
  async function call(method: string, pathOrUrl: string): Promise<{ status: number; json: any }> {
    const url = pathOrUrl.startsWith('/') ? `${graph}${pathOrUrl}` : pathOrUrl;
    // A next page elsewhere would receive the bearer token: only the configured Graph origin is asked.
    let origin: string | null = null;
    try {
      origin = new URL(url).origin;
    } catch {
      // an address that does not parse is refused below
    }
    if (origin !== graphOrigin) {
      throw new GraphError(
        0,
        'foreign_link',
        'Microsoft Graph pointed to a next page outside the Graph URL of this connection, which Keywarden does not follow.',
      );
    }
    let refreshed = false;
    for (let attempt = 0; ; attempt++) {
      const bearer = await getToken();
      // Last before sending: a wait another request was just told about applies to this one too.
      await pause();
      let res: Response;
      try {
        res = await egress.fetch(
          url,
          {
            method,
            headers: {
              authorization: `Bearer ${bearer}`,
              accept: 'application/json',
              'user-agent': opts.userAgent ?? 'Keywarden',
              'ocp-client-name': 'Keywarden',
              'ocp-client-version': '1',
            },
          },
          'internet',
          'Microsoft Graph',
        );
      } catch (e) {
        const failure = unreachable(e, 'Microsoft Graph', new URL(url).host);
        if (failure.code === 'refused' || attempt >= maxRetries) throw failure;
        await wait(backoff(attempt), 'network error');
        continue;
      }
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel().catch(() => undefined);
        throw redirected(res.status, 'Microsoft Graph', 'Graph URL');
      }
      if (res.status === 401 && !refreshed && !opts.accessToken) {
        // An expired token mid-run: get a fresh one once, then try again.
        refreshed = true;
        await readText(res).catch(() => undefined);
        await getToken(true);
        continue;
      }
      if ((res.status === 429 || res.status === 503 || res.status === 504) && attempt < maxRetries) {
        const hinted = retryAfterMs(res.headers.get('retry-after'), now());
        await readText(res).catch(() => undefined);
        const ms = hinted ?? backoff(attempt);
        notBefore = Math.max(notBefore, now() + ms);
        opts.onWait?.(ms, `HTTP ${res.status}`);
        continue;
      }
      const text = await readText(res);
      if (text === null) throw new GraphError(res.status, 'too_large', `Microsoft Graph sent an answer larger than Keywarden reads (HTTP ${res.status}).`);
      const json = text ? safeJson(text) : null;
      if (!res.ok) {
        // The error code decides what Keywarden says (e.g. a missing permission); Graph's message is not repeated.
        const code = (json as { error?: { code?: unknown } } | null)?.error?.code;
        throw new GraphError(res.status, typeof code === 'string' && GRAPH_CODES.has(code) ? code : `http_${res.status}`, `${graphWords(res.status)}.`);
      }
      return { status: res.status, json };
    }
  }

  async function wait(ms: number, reason: string) {
    opts.onWait?.(ms, reason);
    await sleep(ms);
  }

  return {
    getToken,

    /** Every key's metadata (never the password), page by page. */
    async *listRecoveryKeys(): AsyncGenerator<GraphKey[]> {
      let next: string | undefined = '/v1.0/informationProtection/bitlocker/recoveryKeys';
      while (next) {
        const { json } = await call('GET', next);
        yield (json?.value ?? []) as GraphKey[];
        next = nextLink(json);
      }
    },

    /** One key with its password. Each call is an audited key read in the tenant: call it once per key. */
    async getRecoveryKey(id: string): Promise<GraphKey> {
      return (await call('GET', `/v1.0/informationProtection/bitlocker/recoveryKeys/${encodeURIComponent(id)}?$select=key`)).json as GraphKey;
    },

    async findDevice(deviceId: string): Promise<GraphDevice | null> {
      const filter = encodeURIComponent(`deviceId eq '${deviceId}'`);
      const select = 'id,deviceId,displayName,operatingSystem,operatingSystemVersion,trustType,approximateLastSignInDateTime';
      const { json } = await call('GET', `/v1.0/devices?$filter=${filter}&$select=${select}`);
      return (json?.value?.[0] as GraphDevice | undefined) ?? null;
    },

    async findManagedDevice(azureAdDeviceId: string): Promise<{ id: string } | null> {
      const filter = encodeURIComponent(`azureADDeviceId eq '${azureAdDeviceId}'`);
      const { json } = await call('GET', `/beta/deviceManagement/managedDevices?$filter=${filter}&$select=id,azureADDeviceId,deviceName`);
      return (json?.value?.[0] as { id: string } | undefined) ?? null;
    },

    async rotateBitLockerKeys(managedDeviceId: string): Promise<void> {
      await call('POST', `/beta/deviceManagement/managedDevices/${encodeURIComponent(managedDeviceId)}/rotateBitLockerKeys`);
    },

    /**
     * The devices the signed-in person owns (`/me/ownedDevices`) or is a registered user of
     * (`/me/registeredDevices`), page by page, with their delegated token (`accessToken`): Graph
     * supports no application permission for these. Only `#microsoft.graph.device` objects count.
     */
    async *listMyDevices(relation: 'ownedDevices' | 'registeredDevices'): AsyncGenerator<{ id: string; deviceId: string | null }[]> {
      let next: string | undefined = `/v1.0/me/${relation}?$select=id,deviceId`;
      while (next) {
        const { json } = await call('GET', next);
        const value = (json?.value ?? []) as { '@odata.type'?: string; id?: unknown; deviceId?: unknown }[];
        yield value
          .filter((o) => o['@odata.type'] === '#microsoft.graph.device' && typeof o.id === 'string')
          .map((o) => ({ id: o.id as string, deviceId: typeof o.deviceId === 'string' ? o.deviceId : null }));
        next = nextLink(json);
      }
    },

    /** "Read BitLocker key" audit events (category KeyManagement), newer than `since` when given. */
    async *listKeyReadAudits(since?: string | null): AsyncGenerator<GraphKeyReadAudit[]> {
      const filter = `activityDisplayName eq 'Read BitLocker key'${since ? ` and activityDateTime gt ${since}` : ''}`;
      let next: string | undefined = `/v1.0/auditLogs/directoryAudits?$filter=${encodeURIComponent(filter)}`;
      while (next) {
        const { json } = await call('GET', next);
        yield json?.value ?? [];
        next = nextLink(json);
      }
    },

    /** GET of one Graph path (on the connection's Graph URL); the caller narrows the documented shape. */
    async getObject(path: string): Promise<unknown> {
      return (await call('GET', path)).json as unknown;
    },

    /** Every page of a Graph collection, following @odata.nextLink on the same origin. */
    async *listPages(path: string): AsyncGenerator<unknown[]> {
      let next: string | undefined = path;
      while (next) {
        const { json } = await call('GET', next);
        yield Array.isArray(json?.value) ? (json.value as unknown[]) : [];
        next = nextLink(json);
      }
    },
  };
}
export type GraphClient = ReturnType<typeof createGraphClient>;

/** Exponential backoff with full jitter: 1 s, 2 s, 4 s … capped at 60 s. */
function backoff(attempt: number): number {
  return Math.round(Math.random() * Math.min(60_000, 1000 * 2 ** attempt));
}

/** The next page's address, if any; a next page that is not an address fails the paging. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a Graph page's JSON
function nextLink(json: any): string | undefined {
  const link: unknown = json?.['@odata.nextLink'];
  if (link === undefined || link === null) return undefined;
  if (typeof link !== 'string') throw new GraphError(0, 'foreign_link', 'Microsoft Graph answered with a next page Keywarden cannot read.');
  return link;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
